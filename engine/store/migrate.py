"""Bring a session store to the newest schema with Alembic, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
HEAD = "0002"
FIRST = "0001"  # the schema version 0.1 wrote, before Alembic kept a version table


def script() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def revision(conn: Connection) -> str | None:
    """The store's revision: Alembic's, or FIRST for a 0.1 session (tables, no version table)."""
    current = MigrationContext.configure(conn).get_current_revision()
    if current is None and "history" in inspect(conn).get_table_names():
        return FIRST
    return current


def upgrade(conn: Connection) -> tuple[str | None, str]:
    """Run every migration after the store's revision inside the caller's transaction.

    Returns (from, to). A 0.1 session is stamped at FIRST first (its verdict_views table
    appeared after schema 1 and may be missing: it is created, as 0.1 did on open).
    """
    before = revision(conn)
    context = MigrationContext.configure(conn)
    if before == FIRST and context.get_current_revision() is None:
        _complete_first(conn)
        context.stamp(script(), FIRST)
    if before == HEAD:
        return before, HEAD
    scripts = script()

    def steps(rev, _context):
        return scripts._upgrade_revs(HEAD, rev)

    context = MigrationContext.configure(conn, opts={"script": scripts, "fn": steps})
    with Operations.context(context):
        context.run_migrations()
    return before, HEAD


def _complete_first(conn: Connection) -> None:
    conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS verdict_views (rel_path TEXT PRIMARY KEY REFERENCES"
            " images(rel_path), layer TEXT NOT NULL, method TEXT NOT NULL, target TEXT NOT NULL,"
            " blur_sigma REAL NOT NULL, time TEXT NOT NULL)"
        )
    )
