"""Inspection sessions: every reviewer's verdicts, notes, adjudications and their history.

One store, two engines: an SQLite file (the embedded default, locked, crash-safe) or a shared
PostgreSQL database (a team session), both through SQLAlchemy Core with one schema and one set of
Alembic migrations (engine/store). Each change is its own transaction.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import types
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Self

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from engine import session_pg, session_sqlite
from engine.errors import InspectorError, first_line
from engine.session_records import (
    CODES,
    DEFAULT_LABELS,
    Adjudication,
    HistoryEntry,
    ImageReview,
    ReviewedImage,
    SessionContext,
    SessionInfo,
    Verdict,
    VerdictView,
    default_reviewer,
    default_session_path,
    disputed,
)
from engine.session_sqlite import APPLICATION_ID, SCHEMA_VERSION
from engine.store import migrate, schema
from engine.summary import ClassCounts, verdict_table

# The records live in engine/session_records (cheap to import); re-exported for callers.
__all__ = [
    "APPLICATION_ID",
    "CODES",
    "DEFAULT_LABELS",
    "SCHEMA_VERSION",
    "Adjudication",
    "HistoryEntry",
    "ImageReview",
    "ReviewedImage",
    "SessionContext",
    "SessionInfo",
    "Verdict",
    "VerdictView",
    "default_reviewer",
    "default_session_path",
    "disputed",
]


# Values recorded when the session began; a later open with other values gets a warning.
_CONTEXT_KEYS = ("folder", "profile_path", "weights_sha256", "layer", "method", "engine_version")
_MARK = ("application", "Grad-CAM Inspector session")  # names a PostgreSQL database as ours
_STORE_LOCK = 0x47434932  # serialises building the schema when several machines open at once


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


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


# --- the two stores -------------------------------------------------------------------------


class _Store:
    """An open store: the SQLAlchemy engine, what holds it (a file's lock, or a team
    reviewer's lock), and how its location reads in messages."""

    def __init__(
        self,
        engine_: Engine,
        location: str,
        path: Path | None,
        file_lock: IO[bytes] | None = None,
        raw: sqlite3.Connection | None = None,
        lock: session_pg.ReviewerLock | None = None,
    ) -> None:
        self.engine = engine_
        self.location = location
        self.path = path
        self.raw = raw
        self.lock = lock  # a team session's reviewer lock (None for a file or a read-only open)
        self._file_lock = file_lock

    @property
    def is_team(self) -> bool:
        return self.path is None

    def close(self) -> None:
        try:
            # The reviewer lock's connection goes back to the pool on close; dispose() then
            # really closes it, which is what releases the lock on the server.
            if self.lock is not None:
                self.lock.close()
            self.engine.dispose()
            if self.raw is not None:
                self.raw.close()
        finally:
            if self._file_lock is not None:
                self._file_lock.close()  # released once SQLite has closed the file

    def error(self, exc: SQLAlchemyError, doing: str = "write") -> InspectorError:
        if self.is_team and isinstance(exc, OperationalError | InterfaceError):
            return session_pg.unreachable(self.location, exc)
        return InspectorError(f"cannot {doing} session '{self.location}': {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    return first_line(getattr(exc, "orig", None) or exc)


def _sqlite_store(path: Path, create: bool, read_only: bool) -> tuple[_Store, bool]:
    raw, lock, existing = session_sqlite.open_file(path, create, read_only)
    # Our own transactions: SQLite's driver must not open them itself, and a writer takes the
    # write lock at BEGIN (IMMEDIATE), so a commit never fails half-way on a busy file.
    engine_ = create_engine("sqlite://", creator=lambda: raw, poolclass=StaticPool)
    begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"
    event.listen(engine_, "begin", lambda conn: conn.exec_driver_sql(begin))
    return _Store(engine_, str(path), path, file_lock=lock, raw=raw), existing


def _team_store(location: str, password: str | None, reviewer: str | None) -> _Store:
    """reviewer None: a read-only open (a report, a merge's source), which writes no verdict
    and so takes no reviewer's lock."""
    engine_ = session_pg.connect(location, password)
    if reviewer is None:
        return _Store(engine_, session_pg.display(location), None)
    try:
        held = session_pg.ReviewerLock(engine_, location, reviewer)
    except BaseException:
        engine_.dispose()
        raise
    return _Store(engine_, session_pg.display(location), None, lock=held)


def _bring_up(
    store: _Store,
    existing: bool,
    context: dict[str, str] | None,
    labels: Sequence[str] | None,
    read_only: bool = False,
) -> None:
    """Build a new store's schema and meta, or bring an existing one to the newest schema:
    one transaction, so a crash leaves the store as it was."""
    try:
        with store.engine.begin() as conn:
            if store.is_team:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _STORE_LOCK})
                existing = _check_team_database(conn, store.location)
                if existing and read_only and migrate.revision(conn) != migrate.HEAD:
                    raise InspectorError(
                        f"team session '{store.location}' has an older schema; open it once "
                        "in the window (which brings it up to date) before reading it"
                    )
            if not existing and context is None:
                raise InspectorError(
                    f"there is no session in '{store.location}'; check the URL or open it "
                    "from the window with a model, which starts one"
                )
            before, after = migrate.upgrade(conn)
            if not existing:
                _write_meta(conn, context or {}, labels)
            if store.raw is not None and before != after:
                session_sqlite.mark(store.raw)
    except SQLAlchemyError as exc:
        raise store.error(exc) from exc


def _check_team_database(conn: Connection, location: str) -> bool:
    """True for a session of ours, False for an empty database; refuse anything else."""
    tables = set(inspect(conn).get_table_names())
    if not tables:
        return False
    marked = (
        "meta" in tables
        and conn.execute(text("SELECT value FROM meta WHERE key = :k"), {"k": _MARK[0]}).scalar()
        == _MARK[1]
    )
    if not marked:
        raise InspectorError(
            f"database '{location}' holds other tables and is not a Grad-CAM Inspector "
            "session; use an empty database for a new team session"
        )
    known = {rev.revision for rev in migrate.script().walk_revisions()}
    current = migrate.revision(conn)
    if current not in known:
        raise InspectorError(
            f"team session '{location}' was written by a newer Grad-CAM Inspector (revision "
            f"{current}); update the application"
        )
    return True


def _write_meta(conn: Connection, context: dict[str, str], labels: Sequence[str] | None) -> None:
    chosen = _labels(labels) if labels is not None else DEFAULT_LABELS
    now = _now()
    meta = {**context, "created": now, "updated": now, "labels": json.dumps(chosen)}
    meta[_MARK[0]] = _MARK[1]
    conn.execute(schema.meta.insert(), [{"key": k, "value": v} for k, v in meta.items()])


# A reviewer's review state of an image: (code, corrected class, note).
_State = tuple[int | None, str | None, str | None]


# --- the session ----------------------------------------------------------------------------


class Session:
    """An open inspection session, seen by one reviewer; holds its lock until close().

    Use it from the thread that opened it. Reads and writes of "verdict" are the reviewer's own;
    everyone's verdicts come from all_verdicts(), others() and records().
    """

    def __init__(self, store: _Store, reviewer: str, read_only: bool = False) -> None:
        self._store: _Store | None = store
        self.path = store.path
        self.location = store.location
        self.is_team = store.is_team
        self.reviewer = reviewer
        self.read_only = read_only
        self.warnings: tuple[str, ...] = ()
        # The Summary tab reads class_counts() and records() after every verdict; one read
        # serves both. Every write drops it (a team session's other reviewers do not: refresh()).
        self._records: tuple[ReviewedImage, ...] | None = None
        # Undo only reaches this reviewer's changes made since this open (their history ids).
        self._undoable: list[int] = []
        # Images known to be in the store: a verdict on one skips registering it again.
        self._known: set[str] = set()
        self._seen: tuple | None = None  # the store's state at the last refresh()

    @classmethod
    def open(
        cls,
        location: str | Path,
        context: SessionContext,
        reviewer: str | None = None,
        labels: Sequence[str] | None = None,
        password: str | None = None,
    ) -> Session:
        """Create or resume the session at location (a file or a postgresql:// URL);
        `warnings` says what changed since it began."""
        return cls._attach(location, context.meta(), labels, reviewer, False, password)

    @classmethod
    def open_existing(
        cls,
        location: str | Path,
        reviewer: str | None = None,
        read_only: bool = False,
        password: str | None = None,
    ) -> Session:
        """Resume a session without a model to compare against (reports, the command line).

        read_only opens it without ever writing (it may sit on read-only media); writes refuse.
        """
        return cls._attach(location, None, None, reviewer, read_only, password)

    @classmethod
    def _attach(
        cls,
        location: str | Path,
        context: dict[str, str] | None,
        labels: Sequence[str] | None,
        reviewer: str | None,
        read_only: bool,
        password: str | None,
    ) -> Session:
        name = _reviewer(reviewer)
        if session_pg.is_team_location(location):
            locked = None if read_only else name
            store, existing = _team_store(str(location), password, locked), True
        else:
            path = Path(location).expanduser().absolute()
            store, existing = _sqlite_store(path, context is not None, read_only)
        try:
            _bring_up(store, existing, context, labels, read_only)
            session = cls(store, name, read_only)
            session.warnings = session._compare(context, labels)
            return session
        except BaseException:
            store.close()
            raise

    def _compare(
        self, context: dict[str, str] | None, labels: Sequence[str] | None
    ) -> tuple[str, ...]:
        if labels is not None and tuple(labels) != self.labels:
            self.set_labels(labels)
        if context is None:
            return ()
        stored = self._meta()
        if self.is_team:  # every machine has its own copy of the images: paths differ
            context = {k: v for k, v in context.items() if k not in ("folder", "profile_path")}
        return tuple(
            f"{key.replace('_', ' ')} changed since the session began on {stored['created']}: "
            f"was '{stored.get(key, '')}', now '{value}'; verdicts were made against the old one"
            for key, value in context.items()
            if stored.get(key, "") != value
        )

    # --- transactions ---

    @property
    def _live(self) -> _Store:
        if self._store is None:
            raise InspectorError(f"session '{self.location}' is closed; open it again")
        return self._store

    @property
    def _db(self) -> sqlite3.Connection:
        """The SQLite connection beneath (tests check the file's integrity through it)."""
        raw = self._live.raw
        if raw is None:
            raise InspectorError("a team session has no SQLite connection")
        return raw

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """One committed transaction; when it returns, the change is stored."""
        store = self._live
        if self.read_only:
            raise InspectorError(
                f"cannot write session '{self.location}': it is open read-only; "
                "open it again where it can be written"
            )
        self._records = None
        try:
            with store.engine.begin() as conn:
                if store.lock is not None:  # before anything is written, in the same transaction
                    store.lock.check(conn)
                yield conn
        except SQLAlchemyError as exc:
            raise store.error(exc) from exc

    def transaction(self) -> contextlib.AbstractContextManager[Connection]:
        """One committed write transaction on the store, for bulk changes (merging)."""
        return self._write()

    def table(self, name: str) -> list[dict[str, object]]:
        """Every row of one of the session's tables, as stored (merging reads them)."""
        table = schema.metadata.tables[name]
        columns = ", ".join(column.name for column in table.columns)
        order = ", ".join(column.name for column in table.primary_key.columns)
        rows = self._rows(f"SELECT {columns} FROM {name} ORDER BY {order}")
        return [dict(zip(table.columns.keys(), row, strict=True)) for row in rows]

    def _rows(self, sql: str, args: dict[str, object] | None = None) -> list[tuple]:
        """A query's rows; a row SQLite cannot read (a flipped byte in its text) is refused."""
        return self._read([(sql, args or {})])[0]

    def _read(self, queries: Sequence[tuple[str, dict[str, object]]]) -> list[list[tuple]]:
        """Several queries on one connection (one checkout: a team server's round trips are
        what the window waits for), each query's rows in order."""
        store = self._live
        try:
            with store.engine.connect() as conn:
                found = [
                    [tuple(row) for row in conn.execute(text(sql), args).fetchall()]
                    for sql, args in queries
                ]
                conn.rollback()
                return found
        except SQLAlchemyError as exc:
            if store.is_team:
                raise store.error(exc, "read") from exc
            raise self._damaged(_reason(exc)) from exc

    def _damaged(self, what: str) -> InspectorError:
        return InspectorError(
            f"session '{self.location}' has a damaged row ({what}); "
            "restore it from a backup or start a new session file"
        )

    def _meta(self) -> dict[str, str]:
        rows = self._rows("SELECT key, value FROM meta")
        if not all(isinstance(key, str) and isinstance(value, str) for key, value in rows):
            raise self._damaged("meta holds a value that is not text")
        return dict(rows)

    def _verdict(self, row: tuple) -> Verdict:
        rel, reviewer, code, corrected, note, time = row
        if not (
            (code is None or code in CODES)
            and all(_is(value, str) for value in (corrected, note))
            and all(isinstance(value, str) for value in (reviewer, time))
        ):
            raise self._damaged(f"verdict of '{rel}' has values of the wrong kind")
        return Verdict(rel, code, corrected, note, reviewer, time)

    # --- model results ---

    def add_images(self, rel_paths: Iterable[str]) -> None:
        """Register images (e.g. the folder listing) so progress counts them before results."""
        rows = [{"r": _rel_path(p)} for p in rel_paths]
        if not rows:
            return
        with self._write() as conn:
            conn.execute(_ADD_IMAGE, rows)
        self._known.update(row["r"] for row in rows)

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
        values = {
            "r": _rel_path(rel_path),
            "t": ground_truth,
            "p": predicted,
            "c": confidence,
            "h": hit,
            "e": energy_in_box,
        }
        with self._write() as conn:
            conn.execute(_RECORD_RESULT, values)

    # --- the reviewer's own verdicts ---

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

        def new(old: Verdict | None) -> _State:
            return code, corrected, old.note if old and note is None else note

        return self._change(_rel_path(rel_path), "verdict", new, view=view)

    def set_note(self, rel_path: str, note: str | None) -> Verdict:
        """Set or clear (None or blank) an image's note, keeping its verdict."""
        text_ = note if note and note.strip() else None

        def new(old: Verdict | None) -> _State:
            return (old.code, old.corrected, text_) if old else (None, None, text_)

        return self._change(_rel_path(rel_path), "note", new)

    def _change(
        self,
        rel: str,
        action: str,
        new_state: Callable[[Verdict | None], _State],
        undoes: int | None = None,
        view: VerdictView | None = None,
    ) -> Verdict:
        """One transaction that reads the reviewer's old state and writes the new one, its
        history entry and its map: a key press is one checkout and a handful of round trips."""
        now = _now()
        key = {"r": rel, "w": self.reviewer}
        with self._write() as conn:
            old = self._old_verdict(conn, rel)
            new = new_state(old)
            if rel not in self._known:
                conn.execute(_ADD_IMAGE, {"r": rel})
            if new == (None, None, None):
                conn.execute(
                    text("DELETE FROM verdicts WHERE rel_path = :r AND reviewer = :w"), key
                )
            else:
                state = dict(zip(("c", "x", "n"), new, strict=True))
                conn.execute(_SET_VERDICT, {**key, **state, "t": now})
            old_state = (old.code, old.corrected, old.note) if old else (None, None, None)
            entry = self._log(conn, rel, action, undoes, now, old_state, new)
            _store_view(conn, key, view, old.time if old and undoes is None else None, now)
        self._known.add(rel)
        if undoes is None:
            self._undoable.append(entry)
        return Verdict(rel, *new, self.reviewer, now)

    def _old_verdict(self, conn: Connection, rel: str) -> Verdict | None:
        """The reviewer's verdict on rel as the writing transaction sees it."""
        sql = f"{_VERDICTS} WHERE rel_path = :r AND reviewer = :w"
        rows = conn.execute(text(sql), {"r": rel, "w": self.reviewer}).all()
        return self._verdict(tuple(rows[0])) if rows else None

    def _log(
        self,
        conn: Connection,
        rel: str,
        action: str,
        undoes: int | None,
        now: str,
        old: tuple[int | None, str | None, str | None],
        new: tuple[int | None, str | None, str | None],
    ) -> int:
        values = {"uid": uuid.uuid4().hex, "rel_path": rel, "action": action, "undoes": undoes}
        values |= {"reviewer": self.reviewer, "time": now}
        for when, state in (("old", old), ("new", new)):
            values |= dict(
                zip((f"{when}_code", f"{when}_corrected", f"{when}_note"), state, strict=True)
            )
        return conn.execute(schema.history.insert().values(values)).inserted_primary_key[0]

    def undo(self) -> Verdict | None:
        """Revert this reviewer's latest change made since this open (a verdict, a note or an
        adjudication); None when there is nothing to undo."""
        if not self._undoable:
            return None
        entry_id = self._undoable[-1]
        rows = self._rows(
            "SELECT rel_path, action, old_code, old_corrected, old_note FROM history WHERE id = :i",
            {"i": entry_id},
        )
        self._undoable.pop()
        if not rows:
            return None
        rel, action, *old = rows[0]
        if action == "adjudicate":
            done = self._adjudicate(rel, tuple(old), undoes=entry_id)  # type: ignore[arg-type]
            return done.as_verdict() if done else Verdict(rel, None, None, None, self.reviewer, "")
        state: _State = tuple(old)  # type: ignore[assignment]
        return self._change(rel, "undo", lambda _: state, undoes=entry_id)

    def verdict(self, rel_path: str) -> Verdict | None:
        """This reviewer's verdict on an image."""
        rows = self._rows(
            f"{_VERDICTS} WHERE rel_path = :r AND reviewer = :w",
            {"r": _rel_path(rel_path), "w": self.reviewer},
        )
        return self._verdict(rows[0]) if rows else None

    def verdicts(self) -> dict[str, Verdict]:
        """This reviewer's verdicts (and notes), by image."""
        rows = self._rows(
            f"{_VERDICTS} WHERE reviewer = :w ORDER BY rel_path", {"w": self.reviewer}
        )
        return {row[0]: self._verdict(row) for row in rows}

    # --- everyone's verdicts ---

    def reviewers(self) -> list[str]:
        """Everyone who gave a verdict or a note in this session, and this reviewer."""
        rows = self._rows("SELECT DISTINCT reviewer FROM verdicts")
        return sorted({str(r[0]) for r in rows} | {self.reviewer})

    def all_verdicts(self) -> dict[str, dict[str, Verdict]]:
        """image -> reviewer -> verdict, for verdicts given (notes alone are left out)."""
        found: dict[str, dict[str, Verdict]] = {}
        for row in self._rows(f"{_VERDICTS} WHERE code IS NOT NULL ORDER BY rel_path, reviewer"):
            verdict = self._verdict(row)
            found.setdefault(verdict.rel_path, {})[verdict.reviewer] = verdict
        return found

    def others(self, rel_path: str) -> list[Verdict]:
        """The other reviewers' verdicts on an image; none in blind mode until this reviewer
        has given theirs."""
        review = self.image_review(rel_path)
        return [] if review.hidden else list(review.others)

    def image_review(self, rel_path: str) -> ImageReview:
        """Everything about one image's review at once, in one checkout (the window reads it
        at every image change). Blind mode is the caller's to apply: see ImageReview.hidden."""
        rel = _rel_path(rel_path)
        verdicts, adjudication, settings = self._read(
            [
                (f"{_VERDICTS} WHERE rel_path = :r ORDER BY reviewer", {"r": rel}),
                (f"{_ADJUDICATIONS} WHERE rel_path = :r", {"r": rel}),
                (
                    "SELECT (SELECT value FROM meta WHERE key = 'blind'),"
                    " (SELECT COUNT(DISTINCT reviewer) FROM verdicts WHERE reviewer != :w)",
                    {"w": self.reviewer},
                ),
            ]
        )
        given = [self._verdict(row) for row in verdicts]
        own = next((v for v in given if v.reviewer == self.reviewer), None)
        others = tuple(v for v in given if v.reviewer != self.reviewer and v.code is not None)
        settled = self._adjudication(adjudication[0]) if adjudication else None
        blind, count = settings[0]
        return ImageReview(own, others, settled, blind == "1", int(count) + 1)

    def disagreements(self) -> set[str]:
        """Images on which at least two reviewers gave different verdicts (settled or not)."""
        return {rel for rel, by in self.all_verdicts().items() if disputed(by.values())}

    def agreement(self):
        """Cohen's and Fleiss' kappa over every reviewer's verdicts, overall and per class."""
        from engine.agreement import agreement

        codes = {
            rel: {who: v.code for who, v in by.items()} for rel, by in self.all_verdicts().items()
        }
        classes = {r.rel_path: r.predicted or "" for r in self.records()}
        return agreement(codes, classes)  # type: ignore[arg-type]

    # --- blind mode ---

    @property
    def blind(self) -> bool:
        """Blind mode: a reviewer sees no one else's verdict on an image before giving theirs."""
        return self._meta().get("blind") == "1"

    def set_blind(self, on: bool) -> None:
        with self._write() as conn:
            conn.execute(_SET_META, {"k": "blind", "v": "1" if on else "0"})

    # --- adjudication ---

    def adjudicate(
        self, rel_path: str, code: int, corrected: str | None = None, note: str | None = None
    ) -> Adjudication:
        """Record this reviewer's final verdict on an image, as its lead."""
        if code not in CODES:
            raise InspectorError(f"verdict must be one of 1, 2, 3, 4, got {code!r}")
        done = self._adjudicate(_rel_path(rel_path), (code, corrected, note))
        assert done is not None
        return done

    def clear_adjudication(self, rel_path: str) -> None:
        """Remove an image's final verdict (the reviewers' own verdicts count again)."""
        self._adjudicate(_rel_path(rel_path), (None, None, None))

    def _adjudicate(
        self,
        rel: str,
        new: tuple[int | None, str | None, str | None],
        undoes: int | None = None,
    ) -> Adjudication | None:
        old = self.adjudication(rel)
        old_state = (old.code, old.corrected, old.note) if old else (None, None, None)
        now = _now()
        with self._write() as conn:
            conn.execute(_ADD_IMAGE, {"r": rel})
            if new[0] is None:
                conn.execute(text("DELETE FROM adjudications WHERE rel_path = :r"), {"r": rel})
            else:
                state = dict(zip(("c", "x", "n"), new, strict=True))
                conn.execute(_ADJUDICATE, {"r": rel, **state, "w": self.reviewer, "t": now})
            action = "undo" if undoes is not None else "adjudicate"
            entry = self._log(conn, rel, action, undoes, now, old_state, new)
        if undoes is None:
            self._undoable.append(entry)
        code, corrected, note = new
        return (
            None if code is None else Adjudication(rel, code, corrected, note, self.reviewer, now)
        )

    def adjudication(self, rel_path: str) -> Adjudication | None:
        rows = self._rows(f"{_ADJUDICATIONS} WHERE rel_path = :r", {"r": _rel_path(rel_path)})
        return self._adjudication(rows[0]) if rows else None

    def adjudications(self) -> dict[str, Adjudication]:
        return {row[0]: self._adjudication(row) for row in self._rows(_ADJUDICATIONS)}

    def _adjudication(self, row: tuple) -> Adjudication:
        rel, code, corrected, note, lead, time = row
        if not (
            code in CODES
            and all(_is(value, str) for value in (corrected, note))
            and all(isinstance(value, str) for value in (lead, time))
        ):
            raise self._damaged(f"adjudication of '{rel}' has values of the wrong kind")
        return Adjudication(rel, code, corrected, note, lead, time)

    # --- what the report reads ---

    def verdict_views(self) -> dict[str, VerdictView]:
        """The map each final verdict was given on, where it was recorded (an adjudication
        takes the map of the latest reviewer verdict it agrees with)."""
        rows = self._rows(
            "SELECT w.rel_path, w.reviewer, w.layer, w.method, w.target, w.blur_sigma, v.code,"
            " v.time FROM verdict_views w JOIN verdicts v ON v.rel_path = w.rel_path"
            " AND v.reviewer = w.reviewer AND v.time = w.time"
        )
        views: dict[tuple[str, str], tuple[VerdictView, int | None, str]] = {}
        for rel, who, layer, method, target, blur, code, time in rows:
            view = VerdictView(str(layer), str(method), _target(str(target)), float(blur))
            views[(rel, who)] = (view, code, time)
        found: dict[str, VerdictView] = {}
        for record in self.records():
            final = record.verdict
            if final is None:
                continue
            if record.adjudication is None:
                hit = views.get((record.rel_path, final.reviewer))
                if hit is not None and hit[2] == final.time:
                    found[record.rel_path] = hit[0]
                continue
            agreeing = [
                views[(record.rel_path, v.reviewer)]
                for v in record.verdicts
                if v.code == final.code and (record.rel_path, v.reviewer) in views
            ]
            if agreeing:
                found[record.rel_path] = max(agreeing, key=lambda hit: hit[2])[0]
        return found

    def history(self, rel_path: str | None = None) -> list[HistoryEntry]:
        sql = (
            "SELECT id, rel_path, action, undoes, reviewer, time, old_code, old_corrected,"
            " old_note, new_code, new_corrected, new_note FROM history"
        )
        args: dict[str, object] = {}
        if rel_path is not None:
            sql, args = sql + " WHERE rel_path = :r", {"r": _rel_path(rel_path)}
        rows = self._rows(sql + " ORDER BY id", args)
        return [HistoryEntry(*r[:6], tuple(r[6:9]), tuple(r[9:12])) for r in rows]

    # --- summaries ---

    def records(self) -> list[ReviewedImage]:
        """Every image with its result and review state, ordered by path."""
        if self._records is None:
            self._records = tuple(self._read_records())
        return list(self._records)

    def refresh(self) -> bool:
        """Whether anyone wrote since the last refresh (one cheap query); if so, what was read
        is forgotten, so the next records() reads the others' verdicts (team sessions)."""
        rows = self._rows(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM history), (SELECT COUNT(*) FROM images),"
            " (SELECT value FROM meta WHERE key = 'blind')"
        )
        if rows[0] == self._seen:
            return False
        self._seen, self._records = rows[0], None
        return True

    def _read_records(self) -> Iterator[ReviewedImage]:
        everyone: dict[str, list[Verdict]] = {}
        for row in self._rows(f"{_VERDICTS} ORDER BY rel_path, reviewer"):
            verdict = self._verdict(row)
            everyone.setdefault(verdict.rel_path, []).append(verdict)
        settled = self.adjudications()
        rows = self._rows(
            "SELECT rel_path, ground_truth, predicted, confidence, pointing_hit, energy_in_box"
            " FROM images ORDER BY rel_path"
        )
        for rel, truth, pred, conf, hit, energy in rows:
            kinds = (_is(truth, str), _is(pred, str), _is(hit, int))
            if not (all(kinds) and _is(conf, int | float) and _is(energy, int | float)):
                raise self._damaged(f"result of '{rel}' has values of the wrong kind")
            scored = None if hit is None else bool(hit)
            self._known.add(rel)
            given = tuple(everyone.get(rel, ()))
            adjudication = settled.get(rel)
            final = _final(given, adjudication)
            yield ReviewedImage(rel, truth, pred, conf, scored, energy, final, given, adjudication)

    def progress(self) -> tuple[int, int]:
        """(reviewed, total): images this reviewer gave a verdict, images in the session."""
        reviewed = self._rows(
            "SELECT COUNT(*) FROM verdicts WHERE code IS NOT NULL AND reviewer = :w",
            {"w": self.reviewer},
        )[0][0]
        total = self._rows("SELECT COUNT(*) FROM images")[0][0]
        return reviewed, total

    def class_counts(self) -> list[ClassCounts]:
        """Final verdicts per predicted class ('' for images without a prediction yet)."""
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
            conn.execute(_SET_META, {"k": "labels", "v": json.dumps(chosen)})

    def info(self) -> SessionInfo:
        meta = self._meta()
        latest = self._rows("SELECT MAX(time) FROM history")[0][0]
        updated = max(str(latest or ""), meta.get("updated", ""), meta.get("created", ""))
        return SessionInfo(
            self.path if self.path is not None else self.location,
            *(meta.get(key, "") for key in (*_CONTEXT_KEYS, "created")),
            updated,
            self.labels,
            tuple(self.reviewers()),
        )

    # --- lifetime ---

    def close(self) -> None:
        """Close the store and release its lock; safe to call twice."""
        if self._store is None:
            return
        store, self._store, self._records = self._store, None, None
        store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_VERDICTS = "SELECT rel_path, reviewer, code, corrected, note, time FROM verdicts"
_ADJUDICATIONS = "SELECT rel_path, code, corrected, note, lead, time FROM adjudications"
# ON CONFLICT reads the same in SQLite and PostgreSQL: one statement for both engines.
_ADD_IMAGE = text("INSERT INTO images (rel_path) VALUES (:r) ON CONFLICT (rel_path) DO NOTHING")
_RECORD_RESULT = text(
    "INSERT INTO images (rel_path, ground_truth, predicted, confidence, pointing_hit,"
    " energy_in_box) VALUES (:r, :t, :p, :c, :h, :e) ON CONFLICT (rel_path) DO UPDATE SET"
    " ground_truth = excluded.ground_truth, predicted = excluded.predicted,"
    " confidence = excluded.confidence, pointing_hit = excluded.pointing_hit,"
    " energy_in_box = excluded.energy_in_box"
)
_SET_VERDICT = text(
    "INSERT INTO verdicts (rel_path, reviewer, code, corrected, note, time)"
    " VALUES (:r, :w, :c, :x, :n, :t) ON CONFLICT (rel_path, reviewer) DO UPDATE SET"
    " code = excluded.code, corrected = excluded.corrected, note = excluded.note,"
    " time = excluded.time"
)
_ADJUDICATE = text(
    "INSERT INTO adjudications (rel_path, code, corrected, note, lead, time)"
    " VALUES (:r, :c, :x, :n, :w, :t) ON CONFLICT (rel_path) DO UPDATE SET"
    " code = excluded.code, corrected = excluded.corrected, note = excluded.note,"
    " lead = excluded.lead, time = excluded.time"
)
_SET_META = text(
    "INSERT INTO meta (key, value) VALUES (:k, :v) ON CONFLICT (key) DO UPDATE SET"
    " value = excluded.value"
)


def _final(given: tuple[Verdict, ...], adjudication: Adjudication | None) -> Verdict | None:
    """The verdict the report counts: the lead's, else the one every reviewer gave."""
    if adjudication is not None:
        return adjudication.as_verdict()
    if len(given) < 2:  # most images: one reviewer's verdict, or none
        return given[0] if given else None
    if disputed(given):
        return None
    decided = [v for v in given if v.code is not None]
    pool = decided or list(given)  # notes alone: the latest note stands for the image
    return max(pool, key=lambda v: v.time) if pool else None


def _is(value: object, kind: type | types.UnionType) -> bool:
    """Whether a stored value is None or of the kind its column holds (SQLite keeps any kind
    in any column: a crafted file can hold text where a number belongs)."""
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def _store_view(
    conn: Connection, key: dict[str, str], view: VerdictView | None, kept_from: str | None, now: str
) -> None:
    """Record the verdict's map; without one, the old verdict's map stays with the new time.

    kept_from: the old verdict's time (None after an undo, whose map was not kept).
    """
    if view is not None:
        conn.execute(
            text(
                "INSERT INTO verdict_views (rel_path, reviewer, layer, method, target,"
                " blur_sigma, time) VALUES (:r, :w, :l, :m, :g, :b, :t)"
                " ON CONFLICT (rel_path, reviewer) DO UPDATE SET layer = excluded.layer,"
                " method = excluded.method, target = excluded.target,"
                " blur_sigma = excluded.blur_sigma, time = excluded.time"
            ),
            {**key, "l": view.layer, "m": view.method, "g": str(view.target)}
            | {"b": float(view.blur_sigma), "t": now},
        )
    elif kept_from is not None:
        conn.execute(
            text(
                "UPDATE verdict_views SET time = :t WHERE rel_path = :r AND reviewer = :w"
                " AND time = :k"
            ),
            {**key, "t": now, "k": kept_from},
        )
    else:  # times are milliseconds: a stale map must not match a verdict made in the same one
        conn.execute(text("DELETE FROM verdict_views WHERE rel_path = :r AND reviewer = :w"), key)


def _target(text_: str) -> str | int:
    return int(text_) if text_.isdigit() else text_


def _reviewer(name: str | None) -> str:
    chosen = (name or "").strip() or default_reviewer()
    if len(chosen) > 100 or any(ord(ch) < 32 for ch in chosen):
        raise InspectorError("a reviewer name is one line of at most 100 characters")
    return chosen


def sqlite_path(location: str | Path) -> Path | None:
    """The file of a session location; None for a team session's URL."""
    if session_pg.is_team_location(location):
        return None
    return Path(location).expanduser().absolute()
