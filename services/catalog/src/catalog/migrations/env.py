"""Alembic environment of the catalog database."""

from catalog import models  # noqa: F401 - the tables autogenerate compares against
from lms_common.migrations import run_migrations

run_migrations()
