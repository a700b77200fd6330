"""Alembic environment of the identity database."""

import identity.models  # noqa: F401 - the models are the target of autogenerate
from lms_common.migrations import run_migrations

run_migrations()
