"""Reading a ``*_file`` secret (a systemd credential, a mounted secret) safely.

A secret file is a regular file holding one line. It is read with a size cap and a timeout,
so a FIFO, a device (``/dev/zero``), a directory or a file on a hung network mount is a
configuration problem with a reason, never a hang or an unbounded read.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

__all__ = ["read_secret_file", "MAX_SECRET_BYTES", "READ_TIMEOUT_S"]

MAX_SECRET_BYTES = 16 * 1024      # far above any token or key; a bigger file is a mistake
READ_TIMEOUT_S = 5.0


def read_secret_file(path: str | os.PathLike[str], base_dir: Path | None = None, *,
                     timeout: float = READ_TIMEOUT_S) -> str:
    """The one stripped line of the secret file at ``path`` (relative to ``base_dir``).

    Raises ValueError with a readable reason (never the secret): not a regular file, empty,
    larger than :data:`MAX_SECRET_BYTES`, more than one line, not UTF-8, unreadable, or not
    read within ``timeout`` seconds.
    """
    p = Path(path)
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    result: list[bytes | BaseException] = []
    # A read can block in the kernel (a hung NFS mount): do it in a thread we can walk away from.
    reader = threading.Thread(target=_read_capped, args=(p, result), daemon=True,
                              name="secret-file")
    reader.start()
    reader.join(timeout)
    if not result:
        raise ValueError(f'"{p}" was not read within {timeout:g}s')
    outcome = result[0]
    if isinstance(outcome, OSError):
        raise ValueError(f'cannot read "{p}": {outcome.strerror or outcome}')
    if isinstance(outcome, BaseException):
        raise ValueError(f'"{p}": {outcome}')
    return _one_line(p, outcome)


def _read_capped(p: Path, result: list[bytes | BaseException]) -> None:
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; checked as regular below.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        result.append(exc)
        return
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            result.append(ValueError(f"is not a regular file ({_kind(mode)})"))
            return
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= MAX_SECRET_BYTES:
            chunk = os.read(fd, MAX_SECRET_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_SECRET_BYTES:
            result.append(ValueError(f"is larger than {MAX_SECRET_BYTES // 1024} KiB; "
                                     f"a secret file holds one line"))
            return
        result.append(b"".join(chunks))
    except OSError as exc:
        result.append(exc)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"


def _one_line(p: Path, raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f'"{p}" is not UTF-8 text') from None
    text = text.strip()
    if not text:
        raise ValueError(f'"{p}" is empty')
    if len(text.splitlines()) > 1:
        raise ValueError(f'"{p}" holds more than one line; a secret file holds the secret alone')
    if "\x00" in text:
        raise ValueError(f'"{p}" holds a NUL character')
    return text
