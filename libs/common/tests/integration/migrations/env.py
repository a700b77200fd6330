"""Alembic environment of the integration-test service."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fixture_service  # noqa: F401 - registers the effects table

from lms_common.migrations import run_migrations

run_migrations()
