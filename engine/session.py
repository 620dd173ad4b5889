"""Inspection sessions: verdicts, notes and their history in one locked, crash-safe SQLite file."""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import re
import shutil
import sqlite3
import struct
import sys
import tempfile
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Self

import engine
from engine import file_lock
from engine.errors import InspectorError, first_line
from engine.resources import user_data_dir
from engine.summary import ClassCounts, verdict_table

SCHEMA_VERSION = 1
APPLICATION_ID = 0x47434931  # "GCI1": marks the file as ours, so a foreign SQLite DB is refused
DEFAULT_LABELS = (
    "right class, heat on the defect",
    "right class, heat elsewhere",
    "wrong class",
    "unsure",
)
CODES = (1, 2, 3, 4)
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (
    rel_path TEXT PRIMARY KEY,
    ground_truth TEXT,
    predicted TEXT,
    confidence REAL,
    pointing_hit INTEGER,
    energy_in_box REAL
);
CREATE TABLE verdicts (
    rel_path TEXT PRIMARY KEY REFERENCES images(rel_path),
    code INTEGER CHECK (code IS NULL OR code BETWEEN 1 AND 4),
    corrected TEXT,
    note TEXT,
    reviewer TEXT NOT NULL,
    time TEXT NOT NULL
);
CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rel_path TEXT NOT NULL REFERENCES images(rel_path),
    action TEXT NOT NULL CHECK (action IN ('verdict', 'note', 'undo')),
    undoes INTEGER REFERENCES history(id),
    reviewer TEXT NOT NULL,
    time TEXT NOT NULL,
    old_code INTEGER, old_corrected TEXT, old_note TEXT,
    new_code INTEGER, new_corrected TEXT, new_note TEXT
);
"""
# Added after schema 1 and created on open, so older sessions gain it and older versions of the
# application, which list their tables, still open the file; `time` ties a row to the verdict it
# was recorded with (a verdict written by an older version leaves the row stale, then unused).
_VIEWS_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdict_views (
    rel_path TEXT PRIMARY KEY REFERENCES images(rel_path),
    layer TEXT NOT NULL,
    method TEXT NOT NULL,
    target TEXT NOT NULL,
    blur_sigma REAL NOT NULL,
    time TEXT NOT NULL
)
"""
_TABLES = {"meta", "images", "verdicts", "history"}
# Values recorded when the session began; a later open with other values gets a warning.
_CONTEXT_KEYS = ("folder", "profile_path", "weights_sha256", "layer", "method", "engine_version")


@dataclass(frozen=True)
class Verdict:
    """An image's current review state; code None means a note without a verdict (unreviewed)."""

    rel_path: str
    code: int | None
    corrected: str | None
    note: str | None
    reviewer: str
    time: str


@dataclass(frozen=True)
class VerdictView:
    """What the reviewer looked at when giving a verdict: the map to draw again in the report."""

    layer: str
    method: str
    target: str | int = "pred"  # "pred" or a class index, as the window's target
    blur_sigma: float = 0.0


@dataclass(frozen=True)
class HistoryEntry:
    """One change to an image's review state (who, when, old, new); undo adds an entry too."""

    id: int
    rel_path: str
    action: str
    undoes: int | None
    reviewer: str
    time: str
    old: tuple[int | None, str | None, str | None]
    new: tuple[int | None, str | None, str | None]


@dataclass(frozen=True)
class ReviewedImage:
    """An image's model result joined with its review state, as the report lists it."""

    rel_path: str
    ground_truth: str | None
    predicted: str | None
    confidence: float | None
    pointing_hit: bool | None
    energy_in_box: float | None
    verdict: Verdict | None


@dataclass(frozen=True)
class SessionContext:
    """What the verdicts are made against: the image folder and the model that judges them."""

    folder: str | Path
    profile_path: str | Path | None
    weights_sha256: str
    layer: str
    method: str

    def meta(self) -> dict[str, str]:
        """As stored in the session's meta table: paths resolved, with the engine's version."""
        profile = self.profile_path
        return {
            "folder": str(Path(self.folder).expanduser().resolve()),
            "profile_path": str(Path(profile).expanduser().resolve()) if profile else "",
            "weights_sha256": self.weights_sha256,
            "layer": self.layer,
            "method": self.method,
            "engine_version": engine.__version__,
        }


@dataclass(frozen=True)
class SessionInfo:
    """What a session was started against, and its verdict labels."""

    path: Path
    folder: str
    profile_path: str
    weights_sha256: str
    layer: str
    method: str
    engine_version: str
    created: str
    updated: str
    labels: tuple[str, str, str, str]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def default_session_path(folder: str | Path, profile_path: str | Path | None) -> Path:
    """One session file per (folder, profile) under the user's data dir, never the image folder."""
    folder_key = str(Path(folder).expanduser().resolve())
    profile_key = str(Path(profile_path).expanduser().resolve()) if profile_path else ""
    digest = hashlib.sha256(f"{folder_key}\0{profile_key}".encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(folder_key).name)[:40] or "root"
    return user_data_dir() / "sessions" / f"{slug}-{digest}.sqlite"


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


def _create(
    conn: sqlite3.Connection, path: Path, context: dict[str, str], labels: Sequence[str] | None
) -> None:
    """Schema, markers and meta in one transaction: a crash leaves an empty file, never half."""
    chosen = _labels(labels) if labels is not None else DEFAULT_LABELS
    now = _now()
    meta = {**context, "created": now, "updated": now, "labels": json.dumps(chosen)}
    try:
        conn.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise InspectorError(f"cannot write session '{path}': {exc}") from exc


def _add_views_table(conn: sqlite3.Connection, path: Path) -> None:
    try:
        conn.execute(_VIEWS_SCHEMA)
    except sqlite3.Error as exc:
        raise InspectorError(f"cannot write session '{path}': {exc}") from exc


def _rel_path(rel_path: str) -> str:
    posix = PurePosixPath(str(rel_path).replace("\\", "/"))
    if not str(rel_path) or posix.is_absolute() or ".." in posix.parts:
        raise InspectorError(f"image path '{rel_path}' must be relative to the session folder")
    return str(posix)


def _labels(labels: Sequence[str]) -> tuple[str, str, str, str]:
    cleaned = tuple(str(label).strip() for label in labels)
    if len(cleaned) != 4 or not all(cleaned):
        raise InspectorError(f"a session needs 4 non-empty verdict labels, got {list(labels)}")
    return cleaned  # type: ignore[return-value]


# --- the session ----------------------------------------------------------------------------


class Session:
    """An open inspection session; holds the file's lock until close().

    Use it from the thread that opened it (sqlite3's default check_same_thread).
    """

    def __init__(
        self, path: Path, conn: sqlite3.Connection, lock: IO[bytes], reviewer: str
    ) -> None:
        self.path = path
        self.reviewer = reviewer
        self.warnings: tuple[str, ...] = ()
        self._conn: sqlite3.Connection | None = conn
        self._lock = lock
        # The Summary tab reads class_counts() and records() after every verdict; one read
        # serves both (5,000 images take ~14 ms to read). Every write drops it.
        self._records: tuple[ReviewedImage, ...] | None = None
        # Undo only reaches changes made since this open, never another sitting's verdicts.
        self._undo_floor = conn.execute("SELECT COALESCE(MAX(id), 0) FROM history").fetchone()[0]

    @classmethod
    def open(
        cls,
        path: str | Path,
        context: SessionContext,
        reviewer: str | None = None,
        labels: Sequence[str] | None = None,
    ) -> Session:
        """Create or resume the session at path; `warnings` says what changed since it began."""
        return cls._attach(Path(path).expanduser().absolute(), context.meta(), labels, reviewer)

    @classmethod
    def open_existing(
        cls, path: str | Path, reviewer: str | None = None, read_only: bool = False
    ) -> Session:
        """Resume a session without a model to compare against (reports, the command line).

        read_only opens it without ever writing (it may sit on read-only media); writes refuse.
        """
        return cls._attach(Path(path).expanduser().absolute(), None, None, reviewer, read_only)

    @classmethod
    def _attach(
        cls,
        path: Path,
        context: dict[str, str] | None,
        labels: Sequence[str] | None,
        reviewer: str | None,
        read_only: bool = False,
    ) -> Session:
        """Lock, validate and open path; context None means the session must already exist."""
        fresh = _is_fresh(path)
        if fresh and context is None:
            raise InspectorError(f"there is no session at '{path}'; check the path")
        if not fresh:
            _check_header(path)
        lock = _lock(path, read_only)
        try:
            existing = False if fresh else _check_untouched(path)
            if not existing and context is None:
                raise InspectorError(
                    f"'{path}' is an empty database, not a session; check the path"
                )
            conn = _connect(path, read_only)
            try:
                if not read_only:
                    _set_pragmas(conn, path)
                if context is not None and not existing:
                    _create(conn, path, context, labels)
                if not read_only:
                    _add_views_table(conn, path)
                session = cls(path, conn, lock, reviewer or _default_reviewer())
                if existing:
                    session.warnings = session._compare(context, labels)
                return session
            except BaseException:
                conn.close()
                raise
        except BaseException:
            lock.close()
            raise

    def _compare(
        self, context: dict[str, str] | None, labels: Sequence[str] | None
    ) -> tuple[str, ...]:
        if labels is not None:
            self.set_labels(labels)
        if context is None:
            return ()
        stored = self._meta()
        return tuple(
            f"{key.replace('_', ' ')} changed since the session began on {stored['created']}: "
            f"was '{stored.get(key, '')}', now '{value}'; verdicts were made against the old one"
            for key, value in context.items()
            if stored.get(key, "") != value
        )

    # --- transactions ---

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise InspectorError(f"session '{self.path}' is closed; open it again")
        return self._conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction; when it returns, the change is on disk."""
        conn = self._db
        self._records = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('updated', ?)", (_now(),))
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise InspectorError(f"cannot write session '{self.path}': {exc}") from exc
            raise

    def _rows(self, sql: str, args: Sequence[object] = ()) -> list[tuple]:
        """A query's rows; a row SQLite cannot read (a flipped byte in its text) is refused."""
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._damaged(first_line(exc)) from exc

    def _damaged(self, what: str) -> InspectorError:
        return InspectorError(
            f"session '{self.path}' has a damaged row ({what}); "
            "restore it from a backup or start a new session file"
        )

    def _meta(self) -> dict[str, str]:
        rows = self._rows("SELECT key, value FROM meta")
        if not all(isinstance(key, str) and isinstance(value, str) for key, value in rows):
            raise self._damaged("meta holds a value that is not text")
        return dict(rows)

    def _verdict(self, row: tuple) -> Verdict:
        _, code, corrected, note, reviewer, time = row
        if not (
            (code is None or code in CODES)
            and all(_is(text, str) for text in (corrected, note))
            and all(isinstance(text, str) for text in (reviewer, time))
        ):
            raise self._damaged(f"verdict of '{row[0]}' has values of the wrong kind")
        return Verdict(*row)

    # --- model results ---

    def add_images(self, rel_paths: Iterable[str]) -> None:
        """Register images (e.g. the folder listing) so progress counts them before results."""
        rows = [(_rel_path(p),) for p in rel_paths]
        with self._write() as conn:
            conn.executemany("INSERT OR IGNORE INTO images (rel_path) VALUES (?)", rows)

    def record_result(
        self,
        rel_path: str,
        predicted: str | None,
        confidence: float | None,
        ground_truth: str | None = None,
        pointing_hit: bool | None = None,
        energy_in_box: float | None = None,
    ) -> None:
        """Store (or replace) the model's prediction and localisation scores for an image."""
        hit = None if pointing_hit is None else int(pointing_hit)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO images VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(rel_path) DO UPDATE SET"
                " ground_truth=excluded.ground_truth, predicted=excluded.predicted,"
                " confidence=excluded.confidence, pointing_hit=excluded.pointing_hit,"
                " energy_in_box=excluded.energy_in_box",
                (_rel_path(rel_path), ground_truth, predicted, confidence, hit, energy_in_box),
            )

    # --- verdicts ---

    def set_verdict(
        self,
        rel_path: str,
        code: int,
        corrected: str | None = None,
        note: str | None = None,
        view: VerdictView | None = None,
    ) -> Verdict:
        """Record a verdict (1..4); note None keeps the image's existing note, view None the
        map it was given on (if one was recorded)."""
        if code not in CODES:
            raise InspectorError(f"verdict must be one of 1, 2, 3, 4, got {code!r}")
        rel = _rel_path(rel_path)
        old = self.verdict(rel)
        keep_note = old.note if old and note is None else note
        return self._change(rel, "verdict", (code, corrected, keep_note), view=view)

    def set_note(self, rel_path: str, note: str | None) -> Verdict:
        """Set or clear (None or blank) an image's note, keeping its verdict."""
        rel = _rel_path(rel_path)
        old = self.verdict(rel)
        text = note if note and note.strip() else None
        return self._change(
            rel, "note", (old.code, old.corrected, text) if old else (None, None, text)
        )

    def _change(
        self,
        rel: str,
        action: str,
        new: tuple[int | None, str | None, str | None],
        undoes: int | None = None,
        view: VerdictView | None = None,
    ) -> Verdict:
        old = self.verdict(rel)
        old_state = (old.code, old.corrected, old.note) if old else (None, None, None)
        now = _now()
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO images (rel_path) VALUES (?)", (rel,))
            if new == (None, None, None):
                conn.execute("DELETE FROM verdicts WHERE rel_path = ?", (rel,))
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?)",
                    (rel, *new, self.reviewer, now),
                )
            conn.execute(
                "INSERT INTO history (rel_path, action, undoes, reviewer, time, old_code,"
                " old_corrected, old_note, new_code, new_corrected, new_note)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rel, action, undoes, self.reviewer, now, *old_state, *new),
            )
            _store_view(conn, rel, view, old.time if old and undoes is None else None, now)
        return Verdict(rel, *new, self.reviewer, now)

    def undo(self) -> Verdict | None:
        """Revert the latest change made since this open; None when there is nothing to undo."""
        rows = self._rows(
            "SELECT id, rel_path, old_code, old_corrected, old_note FROM history h"
            " WHERE id > ? AND action != 'undo'"
            " AND NOT EXISTS (SELECT 1 FROM history u WHERE u.undoes = h.id)"
            " ORDER BY id DESC LIMIT 1",
            (self._undo_floor,),
        )
        if not rows:
            return None
        entry_id, rel, *old = rows[0]
        return self._change(rel, "undo", tuple(old), undoes=entry_id)  # type: ignore[arg-type]

    def verdict(self, rel_path: str) -> Verdict | None:
        rows = self._rows("SELECT * FROM verdicts WHERE rel_path = ?", (_rel_path(rel_path),))
        return self._verdict(rows[0]) if rows else None

    def verdicts(self) -> dict[str, Verdict]:
        rows = self._rows("SELECT * FROM verdicts ORDER BY rel_path")
        return {row[0]: self._verdict(row) for row in rows}

    def verdict_views(self) -> dict[str, VerdictView]:
        """The map each current verdict was given on, where this version recorded it.

        A session from an older version, opened read-only, has no such table: no views.
        """
        known = self._rows("SELECT 1 FROM sqlite_master WHERE name = 'verdict_views'")
        if not known:
            return {}
        rows = self._rows(
            "SELECT w.rel_path, w.layer, w.method, w.target, w.blur_sigma FROM verdict_views w"
            " JOIN verdicts v ON v.rel_path = w.rel_path AND v.time = w.time"
        )
        return {
            rel: VerdictView(str(layer), str(method), _target(str(target)), float(blur))
            for rel, layer, method, target, blur in rows
        }

    def history(self, rel_path: str | None = None) -> list[HistoryEntry]:
        sql = "SELECT * FROM history"
        args: tuple[str, ...] = ()
        if rel_path is not None:
            sql, args = sql + " WHERE rel_path = ?", (_rel_path(rel_path),)
        rows = self._rows(sql + " ORDER BY id", args)
        return [HistoryEntry(*r[:6], tuple(r[6:9]), tuple(r[9:12])) for r in rows]

    # --- summaries ---

    def records(self) -> list[ReviewedImage]:
        """Every image with its result and review state, ordered by path."""
        if self._records is None:
            self._records = tuple(self._read_records())
        return list(self._records)

    def _read_records(self) -> Iterator[ReviewedImage]:
        verdicts = self.verdicts()
        rows = self._rows("SELECT * FROM images ORDER BY rel_path")
        for rel, truth, pred, conf, hit, energy in rows:
            kinds = (_is(truth, str), _is(pred, str), _is(hit, int))
            if not (all(kinds) and _is(conf, int | float) and _is(energy, int | float)):
                raise self._damaged(f"result of '{rel}' has values of the wrong kind")
            scored = None if hit is None else bool(hit)
            yield ReviewedImage(rel, truth, pred, conf, scored, energy, verdicts.get(rel))

    def progress(self) -> tuple[int, int]:
        """(reviewed, total): images with a verdict, images known to the session."""
        reviewed = self._rows("SELECT COUNT(*) FROM verdicts WHERE code IS NOT NULL")[0][0]
        total = self._rows("SELECT COUNT(*) FROM images")[0][0]
        return reviewed, total

    def class_counts(self) -> list[ClassCounts]:
        """Verdicts per predicted class ('' for images without a prediction yet)."""
        return verdict_table(self.records())

    # --- metadata ---

    @property
    def labels(self) -> tuple[str, str, str, str]:
        try:
            stored = json.loads(self._meta()["labels"])
            return _labels(stored if isinstance(stored, list) else ())
        except (KeyError, ValueError, InspectorError) as exc:
            raise self._damaged("meta 'labels' is not a list of 4 labels") from exc

    def set_labels(self, labels: Sequence[str]) -> None:
        chosen = _labels(labels)
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('labels', ?)", (json.dumps(chosen),))

    def info(self) -> SessionInfo:
        meta = self._meta()
        return SessionInfo(
            self.path,
            *(meta.get(key, "") for key in (*_CONTEXT_KEYS, "created", "updated")),
            self.labels,
        )

    # --- lifetime ---

    def close(self) -> None:
        """Checkpoint and close the database, then release the lock; safe to call twice."""
        if self._conn is None:
            return
        conn, self._conn, self._records = self._conn, None, None
        try:
            conn.close()
        finally:
            self._lock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _is(value: object, kind: type | types.UnionType) -> bool:
    """Whether a stored value is None or of the kind its column holds (SQLite keeps any kind
    in any column: a crafted file can hold text where a number belongs)."""
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def _store_view(
    conn: sqlite3.Connection, rel: str, view: VerdictView | None, kept_from: str | None, now: str
) -> None:
    """Record the verdict's map; without one, the old verdict's map stays with the new time.

    kept_from: the old verdict's time (None after an undo, whose map was not kept).
    """
    if view is not None:
        conn.execute(
            "INSERT OR REPLACE INTO verdict_views VALUES (?, ?, ?, ?, ?, ?)",
            (rel, view.layer, view.method, str(view.target), float(view.blur_sigma), now),
        )
    elif kept_from is not None:
        conn.execute(
            "UPDATE verdict_views SET time = ? WHERE rel_path = ? AND time = ?",
            (now, rel, kept_from),
        )
    else:  # times are milliseconds: a stale map must not match a verdict made in the same one
        conn.execute("DELETE FROM verdict_views WHERE rel_path = ?", (rel,))


def _target(text: str) -> str | int:
    return int(text) if text.isdigit() else text


def _default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"
