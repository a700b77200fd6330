"""Alembic environment of the enrollment database."""

from lms_common.migrations import run_migrations

run_migrations()
