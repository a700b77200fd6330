"""Alembic environment of the identity database."""

from lms_common.migrations import run_migrations

run_migrations()
