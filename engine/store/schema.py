"""The session schema at its newest revision: SQLAlchemy Core tables for SQLite and PostgreSQL.

The migrations in engine/store/migrations build exactly these tables; a test compares the two.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

images = Table(
    "images",
    metadata,
    Column("rel_path", Text, primary_key=True),
    Column("ground_truth", Text),
    Column("predicted", Text),
    Column("confidence", Float),
    Column("pointing_hit", Integer),
    Column("energy_in_box", Float),
)

# Each reviewer's own current verdict on an image: one row per (image, reviewer), so nothing one
# reviewer writes can replace another's.
verdicts = Table(
    "verdicts",
    metadata,
    Column("rel_path", Text, ForeignKey("images.rel_path"), nullable=False),
    Column("reviewer", Text, nullable=False),
    Column("code", Integer, CheckConstraint("code IS NULL OR code BETWEEN 1 AND 4")),
    Column("corrected", Text),
    Column("note", Text),
    Column("time", Text, nullable=False),
    PrimaryKeyConstraint("rel_path", "reviewer"),
)

# A lead's final verdict on an image, which the report uses where it exists.
adjudications = Table(
    "adjudications",
    metadata,
    Column("rel_path", Text, ForeignKey("images.rel_path"), primary_key=True),
    Column("code", Integer, CheckConstraint("code BETWEEN 1 AND 4"), nullable=False),
    Column("corrected", Text),
    Column("note", Text),
    Column("lead", Text, nullable=False),
    Column("time", Text, nullable=False),
)

ACTIONS = ("verdict", "note", "undo", "adjudicate")
history = Table(
    "history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Names the entry across copies of a session, so merging the same work twice adds it once.
    Column("uid", Text, nullable=False, unique=True),
    Column("rel_path", Text, ForeignKey("images.rel_path"), nullable=False),
    Column("action", Text, CheckConstraint(f"action IN {ACTIONS}"), nullable=False),
    Column("undoes", Integer, ForeignKey("history.id")),
    Column("reviewer", Text, nullable=False),
    Column("time", Text, nullable=False),
    Column("old_code", Integer),
    Column("old_corrected", Text),
    Column("old_note", Text),
    Column("new_code", Integer),
    Column("new_corrected", Text),
    Column("new_note", Text),
    sqlite_autoincrement=True,
)

# The map each reviewer's verdict was given on; `time` ties it to the verdict it was recorded with.
verdict_views = Table(
    "verdict_views",
    metadata,
    Column("rel_path", Text, ForeignKey("images.rel_path"), nullable=False),
    Column("reviewer", Text, nullable=False),
    Column("layer", Text, nullable=False),
    Column("method", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("blur_sigma", Float, nullable=False),
    Column("time", Text, nullable=False),
    PrimaryKeyConstraint("rel_path", "reviewer"),
)
