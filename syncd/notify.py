"""The systemd notify protocol (``sd_notify``), spoken directly over ``$NOTIFY_SOCKET``.

Messages are ``KEY=VALUE`` lines in one datagram on an ``AF_UNIX``/``SOCK_DGRAM`` socket.
A path starting with ``@`` is an abstract socket. Without ``$NOTIFY_SOCKET`` (not started
by systemd with ``Type=notify``) every call is a no-op, so the daemon runs the same way
everywhere. ``$WATCHDOG_USEC`` (microseconds) tells how often systemd expects ``WATCHDOG=1``;
it applies only when ``$WATCHDOG_PID`` is unset or names this process.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Mapping

__all__ = ["Notifier", "watchdog_interval"]


class Notifier:
    """Send notify messages to systemd (or to any ``AF_UNIX`` datagram socket, in tests)."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self.address = address or None
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` fields in one datagram; True if it was sent.

        Newlines in values are replaced by spaces (one-line ``STATUS=``). Failures are
        swallowed: systemd being unreachable must never stop the daemon.
        """
        if self.address is None:
            return False
        text = "\n".join(f"{k}={str(v).replace(chr(10), ' ')}" for k, v in fields.items())
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto(text.encode("utf-8"), target)
            return True
        except OSError:
            return False

    def ready(self, status: str | None = None) -> bool:
        return self.send(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def stopping(self, status: str | None = None) -> bool:
        return self.send(STOPPING=1, **({"STATUS": status} if status else {}))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> timedelta | None:
    """The watchdog timeout systemd set for this process (``WatchdogSec=``), or None."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return timedelta(microseconds=int(usec))
