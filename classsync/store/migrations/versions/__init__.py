"""Alembic revisions, applied in order by classsync.store.migrate.upgrade."""
