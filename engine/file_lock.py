"""Exclusive locks the OS drops when the process dies: a session file, a batch output folder."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from engine.errors import InspectorError

# Windows locks are mandatory, so the locked byte must be one nobody reads: SQLite keeps the
# page at 1 GiB (its "lock-byte page") free of data and locks only its first 512 bytes itself.
WINDOWS_LOCK_OFFSET = 0x40000000 + 1024
OUTPUT_LOCK_NAME = ".gradcam-inspector.lock"


def _flock(handle: IO[bytes]) -> None:
    """POSIX: an exclusive advisory lock on the whole file (any name or link of it), refused at
    once if held elsewhere. flock locks belong to the open file, so a second open in the same
    process is refused too (POSIX record locks, which SQLite uses, are not: they do not meet)."""
    import fcntl

    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _msvcrt_lock(handle: IO[bytes]) -> None:
    """Windows (no flock): a mandatory lock on one byte, which may lie past the end of the file.

    msvcrt.locking locks from the descriptor's position, so it is moved there first; the lock
    goes when the handle is closed or the process ends, like flock.
    """
    import msvcrt

    os.lseek(handle.fileno(), WINDOWS_LOCK_OFFSET, os.SEEK_SET)
    msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]


def lock_function(platform: str) -> Callable[[IO[bytes]], None]:
    """The exclusive non-blocking lock of a platform: raises OSError when it is held."""
    return _msvcrt_lock if platform == "win32" else _flock


try_lock = lock_function(sys.platform)


def lock_output_folder(folder: Path) -> IO[bytes]:
    """Hold the folder's batch lock until the returned handle is closed, or refuse at once.

    The lock file says who holds it (pid, host, start time), so a second run can name the first.
    """
    path = folder / OUTPUT_LOCK_NAME
    try:
        handle = path.open("a+b")
    except OSError as exc:
        raise InspectorError(
            f"cannot lock output folder '{folder}': {exc.strerror or exc}; "
            "choose a folder you can write to"
        ) from exc
    try:
        try_lock(handle)
    except OSError as exc:
        handle.seek(0)
        holder = handle.read(200).decode("utf-8", "replace").strip() or "another run"
        handle.close()
        raise InspectorError(
            f"output folder '{folder}' is in use by another batch run ({holder}); "
            "wait for it to finish or choose another output folder"
        ) from exc
    started = datetime.now(UTC).isoformat(timespec="seconds")
    handle.truncate(0)
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}".encode())
    handle.flush()
    return handle
