"""SQLite session files: refusing what is not ours, one lock per file, crash-safe pragmas.

Everything here runs before (or beneath) SQLAlchemy: the file's header, its lock and its
integrity are checked on the raw file so that a foreign, truncated or locked file is refused
without SQLite ever writing to it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import sys
import tempfile
from pathlib import Path
from typing import IO

from engine import file_lock
from engine.errors import InspectorError

SCHEMA_VERSION = 2
APPLICATION_ID = 0x47434931  # "GCI1": marks the file as ours, so a foreign SQLite DB is refused
_SQLITE_MAGIC = b"SQLite format 3\x00"
_TABLES = {"meta", "images", "verdicts", "history"}


# --- checks before SQLite touches the file --------------------------------------------------


def _check_header(path: Path) -> None:
    """Refuse files that are not SQLite or are shorter than their header says (truncated)."""
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
        size = path.stat().st_size
    except OSError as exc:
        raise InspectorError(f"cannot read session '{path}': {exc.strerror or exc}") from exc
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise InspectorError(
            f"'{path}' is not a Grad-CAM Inspector session (not an SQLite file); "
            "choose another session file"
        )
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    change_counter, pages, valid_for = (
        struct.unpack(">I", header[o : o + 4])[0] for o in (24, 28, 92)
    )
    truncated = size % page_size != 0 or (valid_for == change_counter and size < pages * page_size)
    if truncated:
        raise InspectorError(
            f"session '{path}' is truncated ({size} bytes); restore it from a backup "
            "or start a new session file"
        )


def _is_fresh(path: Path) -> bool:
    """No file, or an empty one with no changes beside it: nothing is lost by creating here."""
    if not path.exists():
        return True
    return path.stat().st_size == 0 and not _pending_side_files(path)


def _writable_check(path: Path) -> None:
    # SQLite writes a '-journal' beside the session during each commit: the folder must be
    # writable as well as the file.
    for target in (path, path.parent):
        if target.exists() and not os.access(target, os.R_OK | os.W_OK):
            raise InspectorError(
                f"session '{path}' is read-only ('{target}' is not writable); "
                "make it writable or choose another session location"
            )


def _lock(path: Path, read_only: bool) -> IO[bytes]:
    """Hold a lock on the session file itself, so every name and link of it shares one lock
    (a '<name>.lock' beside it let a hard link or symlink in); the OS drops it if we die.

    Writers lock exclusively (creating an empty file for a new session); a read-only open
    takes a shared lock, so it waits for no reader but refuses while a writer has the file.
    """
    try:
        if read_only:
            handle = path.open("rb")
        else:
            _writable_check(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("ab")
    except OSError as exc:
        raise InspectorError(
            f"cannot open session '{path}': {exc.strerror or exc} (the folder must be writable); "
            "choose a session location you can write to"
        ) from exc
    try:
        if read_only and sys.platform != "win32":
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        else:
            file_lock.try_lock(handle)
    except OSError as exc:
        handle.close()
        raise InspectorError(
            f"session '{path}' is open in another window or process; close it there first"
        ) from exc
    return handle


def _pending_side_files(path: Path) -> list[Path]:
    """A '-wal' or '-journal' with content: changes that are not (or not yet) in the file."""
    side = (path.with_name(path.name + suffix) for suffix in ("-wal", "-journal"))
    return [p for p in side if p.exists() and p.stat().st_size > 0]


def _read_only_uri(path: Path) -> str:
    # immutable: SQLite neither locks nor looks for journals, so nothing is ever written, even
    # on read-only media. Safe because we hold the file's lock and no side file is pending.
    return f"{path.absolute().as_uri()}?mode=ro&immutable=1"


def _check_untouched(path: Path) -> bool:
    """_validate without ever writing to path: on an immutable read-only open, or, when a
    '-wal' or '-journal' holds changes, on a private copy (recovering them writes the file)."""
    pending = _pending_side_files(path)
    with tempfile.TemporaryDirectory(prefix="gci-session-") as scratch:
        target, uri = path, True
        if pending:
            target, uri = Path(scratch) / path.name, False
            for source in (path, *pending):
                shutil.copyfile(source, Path(scratch) / source.name)
        try:
            conn = sqlite3.connect(_read_only_uri(target) if uri else target, uri=uri)
        except sqlite3.Error as exc:
            raise InspectorError(f"cannot open session '{path}': {exc}") from exc
        try:
            return _validate(conn, path)
        finally:
            conn.close()


def _connect(path: Path, read_only: bool) -> sqlite3.Connection:
    if read_only and _pending_side_files(path):
        raise InspectorError(
            f"session '{path}' has changes in a '-wal' or '-journal' file beside it that only "
            "a writable open can bring in; open it once where it can be written"
        )
    try:
        # Autocommit mode: every change runs in an explicit transaction of our own (_write).
        if read_only:
            return sqlite3.connect(_read_only_uri(path), uri=True, isolation_level=None)
        return sqlite3.connect(path, isolation_level=None, timeout=0)
    except sqlite3.Error as exc:
        raise InspectorError(f"cannot open session '{path}': {exc}") from exc


def _validate(conn: sqlite3.Connection, path: Path) -> bool:
    """True for an existing session of ours, False for an empty database; raise otherwise."""
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise InspectorError(
            f"session '{path}' is damaged or not a session ({exc}); choose another session file"
        ) from exc
    if app_id == 0 and version == 0 and not tables:
        return False
    if app_id != APPLICATION_ID:
        raise InspectorError(
            f"'{path}' is an SQLite database but not a Grad-CAM Inspector session; "
            "choose another session file"
        )
    if version > SCHEMA_VERSION:
        raise InspectorError(
            f"session '{path}' was written by a newer Grad-CAM Inspector (schema {version}, "
            f"this one reads up to {SCHEMA_VERSION}); update the application"
        )
    if check != "ok" or not _TABLES.issubset(tables):
        raise InspectorError(
            f"session '{path}' is damaged ({check}); restore it from a backup "
            "or start a new session file"
        )
    return True


def _set_pragmas(conn: sqlite3.Connection, path: Path) -> None:
    try:
        # A rollback journal, not WAL: after each commit the file itself holds every verdict,
        # so copying the one file copies the session (a WAL kept them in '<name>-wal', per
        # name). Switching an older WAL session folds its WAL into the file once.
        mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        if str(mode).lower() != "delete":
            raise sqlite3.OperationalError(f"journal mode stays '{mode}'")
        # FULL fsyncs the journal and the file at every commit: a verdict shown as recorded
        # survives SIGKILL and a power cut; at one commit per key press the milliseconds
        # cost nothing.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error as exc:
        raise InspectorError(f"cannot write session '{path}': {exc}") from exc


def open_file(
    path: Path, create: bool, read_only: bool
) -> tuple[sqlite3.Connection, IO[bytes], bool]:
    """Lock, check and connect to a session file: (connection, lock, whether a session exists).

    create False refuses a missing or empty file. A read-only open reads the file once into
    memory (never writing it, even to bring an older schema up to date) and works on that copy.
    """
    if not create and _is_fresh(path):
        raise InspectorError(f"there is no session at '{path}'; check the path")
    lock = _lock(path, read_only)
    try:
        # Looked at under the lock: another process may have been creating it a moment ago.
        fresh = _is_fresh(path)
        if fresh and not create:
            raise InspectorError(f"there is no session at '{path}'; check the path")
        if not fresh:
            _check_header(path)
        existing = False if fresh else _check_untouched(path)
        if not existing and not create:
            raise InspectorError(f"'{path}' is an empty database, not a session; check the path")
        conn = _connect(path, read_only)
        try:
            if read_only:
                return _snapshot(conn, path), lock, existing
            _set_pragmas(conn, path)
            return conn, lock, existing
        except BaseException:
            conn.close()
            raise
    except BaseException:
        lock.close()
        raise


def _snapshot(conn: sqlite3.Connection, path: Path) -> sqlite3.Connection:
    memory = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.backup(memory)
    except sqlite3.Error as exc:
        memory.close()
        raise InspectorError(f"cannot read session '{path}': {exc}") from exc
    finally:
        conn.close()
    memory.execute("PRAGMA foreign_keys=ON")
    return memory


def mark(conn: sqlite3.Connection) -> None:
    """Stamp the file as a session of this schema (inside the creating or upgrading transaction);
    an older application reads user_version and refuses a schema newer than its own."""
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
