"""Alembic environment of the enrollment database."""

from enrollment import models  # noqa: F401 - the tables autogenerate compares against
from lms_common.migrations import run_migrations

run_migrations()
