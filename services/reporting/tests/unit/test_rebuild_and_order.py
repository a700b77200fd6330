"""Out-of-order delivery gives the same reports, and a rebuild from the log equals live."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

from conftest import Feeder
from reporting_events import scenario, uid
from sqlalchemy import func, select

from lms_common import migrations
from lms_common.db import make_engine, make_session_factory, session_scope
from reporting import eventlog
from reporting.models import PROJECTIONS
from reporting.rebuild import rebuild
from reporting.service import SERVICE

ADMIN = "reports:read"
REPORTS = [
    "/v1/reports/completions",
    "/v1/reports/completions?group_by=location",
    "/v1/reports/completions?group_by=program",
    "/v1/reports/completions?group_by=period",
    "/v1/reports/compliance",
    f"/v1/reports/programs/{uid('onboarding')}",
    f"/v1/reports/learners/{uid('ann')}/transcript",
    "/v1/reports/audit",
]


def all_reports(caller: Any) -> dict[str, Any]:
    return {url: caller.json(url) for url in REPORTS}


def fresh_app(settings: Any, keys: Any, tmp_path: Path, name: str) -> Any:
    url = f"sqlite:///{tmp_path / f'{name}.sqlite3'}"
    migrations.upgrade(SERVICE.migrations, url)
    return SERVICE.create_app(dataclasses.replace(settings, database_url=url), key_source=keys)


def test_shuffled_and_repeated_delivery_gives_the_same_reports(settings, keys, tmp_path, feed, as_user):
    feed(scenario())
    expected = all_reports(as_user(ADMIN))
    for seed in range(3):
        app = fresh_app(settings, keys, tmp_path, f"shuffled{seed}")
        events = scenario()
        random.Random(seed).shuffle(events)
        Feeder(app)(events + events[::3], batch_size=5)
        caller = type(as_user(ADMIN))(app.test_client(), keys.mint(org="org-1", scope=ADMIN))
        assert all_reports(caller) == expected, f"seed {seed}"


def projection_rows(session_factory: Any, gen: int) -> dict[str, list[tuple[Any, ...]]]:
    dumped = {}
    with session_scope(session_factory) as session:
        for model in PROJECTIONS:
            table = model.__table__  # type: ignore[attr-defined]
            columns = [c for c in table.columns if c.name != "gen"]
            rows = session.execute(select(*columns).where(table.c.gen == gen).order_by(*table.primary_key.columns))
            dumped[table.name] = [tuple(row) for row in rows]
    return dumped


def test_rebuild_equals_live(settings, feed, as_user):
    feed(scenario())
    factory = make_session_factory(make_engine(settings.database_url))
    live_rows = projection_rows(factory, 1)
    live_reports = all_reports(as_user(ADMIN))
    done = rebuild(factory)
    assert (done.previous, done.generation, done.events) == (1, 2, len(scenario()))
    assert projection_rows(factory, 2) == live_rows
    assert all_reports(as_user(ADMIN)) == live_reports
    with session_scope(factory) as session:
        assert eventlog.live_generation(session) == 2
        for model in PROJECTIONS:
            assert session.execute(select(func.count()).where(model.gen == 1)).scalar_one() == 0  # type: ignore[attr-defined]


def test_events_after_a_rebuild_reach_the_new_generation(settings, feed, as_user):
    events = scenario()
    feed(events[:-3])
    rebuild(make_session_factory(make_engine(settings.database_url)))
    feed(events[-3:])
    other = as_user(ADMIN, org="org-2").json("/v1/reports/audit")["items"]
    assert [row["verification_code"] for row in other] == ["CERT-ZED"]
