"""SIGTERM and SIGINT as a request to stop (``syncd run`` and the daemon)."""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable

__all__ = ["catch_stop_signals"]


def catch_stop_signals(stop: threading.Event,
                       noticed: Callable[[str], None] | None = None) -> Callable[[], None]:
    """SIGTERM/SIGINT set ``stop`` (after ``noticed(signal name)``) instead of killing the
    process; returns the undo, which puts the previous handlers back. Signals can only be
    caught in the main thread: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, _frame: Any) -> None:
        if noticed is not None:
            noticed(signal.Signals(signum).name)
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return restore
