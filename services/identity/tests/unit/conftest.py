from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from identity.service import SERVICE
from lms_common import migrations


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The migrated SQLite database once per run; each test gets a copy (fast, still real)."""
    path = tmp_path_factory.mktemp("template") / "identity.sqlite3"
    migrations.upgrade(SERVICE.migrations, f"sqlite:///{path}")
    return path


@pytest.fixture()
def world(migrated_template: Path, tmp_path: Path, world_factory):  # type: ignore[no-untyped-def]
    database = tmp_path / "identity.sqlite3"
    shutil.copyfile(migrated_template, database)
    return world_factory(f"sqlite:///{database}", tmp_path)
