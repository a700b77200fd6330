"""Alembic environment of the automation database."""

from lms_common.migrations import run_migrations

run_migrations()
