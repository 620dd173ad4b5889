"""Alembic's script directory for the session store (versions/: one file per revision)."""
