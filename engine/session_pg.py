"""Team sessions on PostgreSQL: the URL, the password kept out of every text, one reviewer per name.

libpq reads the password from PGPASSWORD (or ~/.pgpass) and TLS settings from the URL's query
(sslmode, sslrootcert, sslcert, sslkey), so none of them is ever stored by the application.
"""

from __future__ import annotations

import getpass
import hashlib
import sys
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from engine.errors import InspectorError, first_line
from engine.session_records import is_team_location

_SCHEMES = ("postgresql", "postgres")
__all__ = ["is_team_location"]  # re-exported: where team locations are told from files
_SECRET_QUERY = ("password", "sslpassword")
# Held for a whole open: two windows (or machines) reviewing under one name would undo and
# overwrite each other's verdicts, so the second is refused.
_REVIEWER_LOCK = 0x47434931
T = TypeVar("T")


def parse(location: str, password: str | None = None) -> URL:
    """The driver URL (psycopg 3) for a team location; refuses what is not one."""
    try:
        url = make_url(location)
    except ArgumentError as exc:
        raise InspectorError(f"'{display(location)}' is not a PostgreSQL URL ({exc})") from exc
    if url.get_backend_name() not in _SCHEMES or not url.database:
        raise InspectorError(
            f"'{display(location)}' is not a team session URL; "
            "write postgresql://user@host[:port]/database"
        )
    url = url.set(drivername="postgresql+psycopg")
    return url.set(password=password) if password else url


def display(location: str | URL) -> str:
    """The location as shown in the window, messages and reports: never a password."""
    try:
        url = location if isinstance(location, URL) else make_url(str(location))
    except ArgumentError:
        return "(unreadable URL)"
    query = {k: v for k, v in url.query.items() if k not in _SECRET_QUERY}
    shown = URL.create(url.get_backend_name(), url.username, None, url.host, url.port, url.database)
    text_ = shown.render_as_string(hide_password=True)
    # Options read as typed (a certificate's path with its slashes), not percent-encoded.
    options = "&".join(f"{key}={value}" for key, value in sorted(query.items()))
    return f"{text_}?{options}" if options else text_


def connect(location: str, password: str | None) -> Engine:
    """An engine for the team database, checked with one round trip."""
    url = parse(location, password)
    engine = create_engine(
        url,
        pool_pre_ping=True,  # a dropped connection (server restart, network) is replaced
        connect_args={"connect_timeout": 10, "application_name": "grad-cam-inspector"},
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        engine.dispose()
        raise unreachable(location, exc) from exc
    return engine


def unreachable(location: str, exc: BaseException) -> InspectorError:
    reason = first_line(getattr(exc, "orig", None) or exc)
    hint = "check the URL, the server and the password (PGPASSWORD)"
    if "password" in reason.lower():
        hint = "set the right password in PGPASSWORD or type it when asked"
    return InspectorError(f"cannot reach team session '{display(location)}': {reason}; {hint}")


class ReviewerLock:
    """A reviewer's lock on a team session, held on a connection of its own for as long as the
    session is open (the server drops it when that connection ends, a crash included)."""

    def __init__(self, engine: Engine, location: str, reviewer: str) -> None:
        self._engine, self._location, self._reviewer = engine, location, reviewer
        # Non-negative, so pg_locks.objid (an unsigned oid) reads back the same number.
        self._key = int.from_bytes(hashlib.sha256(reviewer.encode()).digest()[:4]) & 0x7FFFFFFF
        self._conn, self._pid = self._take()

    def _take(self) -> tuple[Connection, int]:
        conn = self._engine.connect()
        try:
            held, pid = conn.execute(
                text("SELECT pg_try_advisory_lock(:a, :b), pg_backend_pid()"),
                {"a": _REVIEWER_LOCK, "b": self._key},
            ).one()
            conn.commit()
        except SQLAlchemyError as exc:
            conn.close()
            raise unreachable(self._location, exc) from exc
        if not held:
            conn.close()
            raise InspectorError(
                f"reviewer '{self._reviewer}' is already reviewing team session "
                f"'{display(self._location)}' in another window or on another machine; close it "
                "there or review under another name"
            )
        return conn, int(pid)

    def check(self, conn: Connection) -> None:
        """In a writing transaction, before it writes: the lock still holds (one statement).
        A connection the server dropped (a restart, a network cut) took the lock with it: it
        is taken again, or the write refused if someone now reviews under this name."""
        held = conn.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND pid = :p AND classid = :a AND objid = :b AND objsubid = 2)"
            ),
            {"p": self._pid, "a": _REVIEWER_LOCK, "b": self._key},
        ).scalar()
        if held:
            return
        self._conn.invalidate()
        self._conn.close()
        self._conn, self._pid = self._take()

    def close(self) -> None:
        self._conn.close()


def with_password(location: str | object, attempt: Callable[[str | None], T]) -> T:
    """Run attempt(None); when a team server wants a password that the environment does not
    give and a person is at the terminal, ask once (never echoed, never kept) and run it again.
    A wrong password is not asked again: that is libpq's PQconnectionNeedsPassword."""
    try:
        return attempt(None)
    except InspectorError as exc:
        if not (is_team_location(location) and _needs_password(exc) and sys.stdin.isatty()):
            raise
    try:
        password = getpass.getpass(f"password for {display(str(location))}: ")
    except EOFError:
        raise InspectorError("no password given; set PGPASSWORD or type it when asked") from None
    return attempt(password)


def _needs_password(exc: BaseException) -> bool:
    driver = getattr(exc.__cause__, "orig", None)
    return bool(getattr(getattr(driver, "pgconn", None), "needs_password", False))
