"""Alembic environment of the unit tests' database: only the runtime tables of lms_common."""

from lms_common.migrations import run_migrations

run_migrations()
