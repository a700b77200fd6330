"""Alembic environment of the reporting database."""

from lms_common.migrations import run_migrations

run_migrations()
