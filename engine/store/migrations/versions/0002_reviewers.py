"""Schema 2: several reviewers per session, each with their own verdicts, and adjudications.

verdicts and verdict_views are keyed by (image, reviewer); history entries get a uid that names
them across copies (merging); adjudications holds a lead's final verdict per image. Tables are
rebuilt by copy (create, copy, drop, rename), which both SQLite and PostgreSQL run the same way.
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

_HISTORY_VALUES = (
    "old_code",
    "old_corrected",
    "old_note",
    "new_code",
    "new_corrected",
    "new_note",
)


def upgrade() -> None:
    _rebuild_verdicts()
    _rebuild_views()
    _rebuild_history()
    op.create_table(
        "adjudications",
        sa.Column("rel_path", sa.Text, sa.ForeignKey("images.rel_path"), primary_key=True),
        sa.Column("code", sa.Integer, sa.CheckConstraint("code BETWEEN 1 AND 4"), nullable=False),
        sa.Column("corrected", sa.Text),
        sa.Column("note", sa.Text),
        sa.Column("lead", sa.Text, nullable=False),
        sa.Column("time", sa.Text, nullable=False),
    )


def _swap(old: str, new: str) -> None:
    op.drop_table(old)
    op.rename_table(new, old)


def _rebuild_verdicts() -> None:
    op.create_table(
        "verdicts_2",
        sa.Column("rel_path", sa.Text, sa.ForeignKey("images.rel_path"), nullable=False),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column("code", sa.Integer, sa.CheckConstraint("code IS NULL OR code BETWEEN 1 AND 4")),
        sa.Column("corrected", sa.Text),
        sa.Column("note", sa.Text),
        sa.Column("time", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("rel_path", "reviewer", name="verdicts_2_pkey"),
    )
    op.execute(
        "INSERT INTO verdicts_2 (rel_path, reviewer, code, corrected, note, time)"
        " SELECT rel_path, reviewer, code, corrected, note, time FROM verdicts"
    )
    _swap("verdicts", "verdicts_2")


def _rebuild_views() -> None:
    op.create_table(
        "verdict_views_2",
        sa.Column("rel_path", sa.Text, sa.ForeignKey("images.rel_path"), nullable=False),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column("layer", sa.Text, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("blur_sigma", sa.Float, nullable=False),
        sa.Column("time", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("rel_path", "reviewer", name="verdict_views_2_pkey"),
    )
    # A view belonged to the image's one verdict; one without a verdict was stale already.
    op.execute(
        "INSERT INTO verdict_views_2"
        " SELECT w.rel_path, v.reviewer, w.layer, w.method, w.target, w.blur_sigma, w.time"
        " FROM verdict_views w JOIN verdicts v ON v.rel_path = w.rel_path"
    )
    _swap("verdict_views", "verdict_views_2")


def _rebuild_history() -> None:
    actions = "('verdict', 'note', 'undo', 'adjudicate')"
    table = op.create_table(
        "history_2",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("uid", sa.Text, nullable=False, unique=True),
        sa.Column("rel_path", sa.Text, sa.ForeignKey("images.rel_path"), nullable=False),
        sa.Column("action", sa.Text, sa.CheckConstraint(f"action IN {actions}"), nullable=False),
        sa.Column("undoes", sa.Integer, sa.ForeignKey("history_2.id")),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column("time", sa.Text, nullable=False),
        *(sa.Column(name, sa.Integer if "code" in name else sa.Text) for name in _HISTORY_VALUES),
        sqlite_autoincrement=True,
    )
    bind = op.get_bind()
    columns = ("id", "rel_path", "action", "undoes", "reviewer", "time", *_HISTORY_VALUES)
    rows = bind.execute(sa.text(f"SELECT {', '.join(columns)} FROM history ORDER BY id"))
    copied = [dict(zip(columns, row, strict=True)) for row in rows]
    for row in copied:
        row["uid"] = _legacy_uid(row)
    if copied:
        op.bulk_insert(table, copied)
    if bind.dialect.name == "postgresql":  # ids were copied: the sequence continues after them
        bind.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence('history_2', 'id'),"
                " COALESCE((SELECT MAX(id) FROM history_2), 0) + 1, false)"
            )
        )
    _swap("history", "history_2")


def _legacy_uid(row: dict) -> str:
    """The same entry in two copies of one schema-1 file gets the same uid (merging dedupes)."""
    key = "\0".join(str(row[name]) for name in ("id", "rel_path", "action", "reviewer", "time"))
    return "v1-" + hashlib.sha256(key.encode()).hexdigest()[:32]
