"""Alembic environment of the catalog database."""

from lms_common.migrations import run_migrations

run_migrations()
