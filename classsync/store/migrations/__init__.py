"""Alembic migrations of the classsync database (env.py, script template, versions/)."""
