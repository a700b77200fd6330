"""Alembic environment of the automation database."""

from automation import models  # noqa: F401 - the tables autogenerate compares against
from lms_common.migrations import run_migrations

run_migrations()
