"""Schema 1: one reviewer per session (the schema version 0.1 shipped, verdict_views included).

SQLite sessions written by version 0.1 have these tables already and are stamped at this revision
when first opened; a new store (SQLite or PostgreSQL) is built from here.
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "images",
        sa.Column("rel_path", sa.Text, primary_key=True),
        sa.Column("ground_truth", sa.Text),
        sa.Column("predicted", sa.Text),
        sa.Column("confidence", sa.Float),
        sa.Column("pointing_hit", sa.Integer),
        sa.Column("energy_in_box", sa.Float),
    )
    op.create_table(
        "verdicts",
        sa.Column("rel_path", sa.Text, sa.ForeignKey("images.rel_path"), primary_key=True),
        sa.Column("code", sa.Integer, sa.CheckConstraint("code IS NULL OR code BETWEEN 1 AND 4")),
        sa.Column("corrected", sa.Text),
        sa.Column("note", sa.Text),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column("time", sa.Text, nullable=False),
    )
    op.create_table(
        "history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rel_path", sa.Text, sa.ForeignKey("images.rel_path"), nullable=False),
        sa.Column(
            "action",
            sa.Text,
            sa.CheckConstraint("action IN ('verdict', 'note', 'undo')"),
            nullable=False,
        ),
        sa.Column("undoes", sa.Integer, sa.ForeignKey("history.id")),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column("time", sa.Text, nullable=False),
        *(sa.Column(f"{when}_code", sa.Integer) for when in ("old", "new")),
        *(
            sa.Column(f"{when}_{what}", sa.Text)
            for when in ("old", "new")
            for what in ("corrected", "note")
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "verdict_views",
        sa.Column("rel_path", sa.Text, sa.ForeignKey("images.rel_path"), primary_key=True),
        sa.Column("layer", sa.Text, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("blur_sigma", sa.Float, nullable=False),
        sa.Column("time", sa.Text, nullable=False),
    )
