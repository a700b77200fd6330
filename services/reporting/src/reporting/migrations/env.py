"""Alembic environment of the reporting database."""

from lms_common.migrations import run_migrations
from reporting import models  # noqa: F401 - the tables autogenerate compares against

run_migrations()
