"""The session store: one schema (SQLAlchemy Core), one set of Alembic migrations, two engines."""
