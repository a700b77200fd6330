"""On PostgreSQL, the set-based evaluation of a batch leaves what evaluating one by one leaves:
multi-row inserts of JSON and dates through psycopg, the run lookup on the unique key's three
columns, the relay's wake-up, and a batch raced by another writer handled again one by one."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))  # the comparison is shared with the unit tests

from batch_helpers import (
    OTHER_ORG,
    SERVICE,
    THIRD_ORG,
    both_paths,
    delivery,
    offboarded,
    onboarded,
    paid,
    provisioned,
)

from lms_common import migrations
from lms_common.config import Settings
from lms_common.testing import TestKeys, isolated_settings, scratch_database


@pytest.fixture()
def postgres(postgres_admin_url: str) -> Iterator[Callable[[str], Settings]]:
    """Settings on a fresh, migrated PostgreSQL database per name, dropped afterwards."""
    with ExitStack() as stack:

        def settings_for(name: str) -> Settings:
            url = stack.enter_context(scratch_database(postgres_admin_url))
            migrations.upgrade(SERVICE.migrations, url)
            return isolated_settings("automation", url)

        yield settings_for


def test_mixed_batches_have_the_same_outcome_on_postgresql(postgres):
    onboardings = [
        onboarded("E-1", "2026-12-01"),
        onboarded("E-1", "2026-12-01"),
        offboarded("E-1", "2027-01-31"),
        onboarded("E-1", "2027-06-01"),
        onboarded("E-2", "2027-01-01"),
        onboarded("E-3", "2026-12-01", department="Sales"),
        onboarded("E-1", "2026-12-01", org=OTHER_ORG),
        onboarded("E-" + "9" * 198, "2026-12-01"),
        onboarded("E-4", "2026-12-01"),
    ]
    invoices = [paid("INV-1"), paid("INV-2", quantity=3), provisioned(), paid("INV-1"), paid("INV-3", org=THIRD_ORG)]
    batches = [[delivery(item) for item in onboardings], [delivery(item) for item in invoices]]
    one_by_one, _ = both_paths(postgres, TestKeys(), *batches)
    assert {row[6] for row in one_by_one.tables()["runs"]} == {"succeeded", "duplicate", "not_matched", "failed"}
