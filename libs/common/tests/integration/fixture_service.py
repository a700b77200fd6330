"""A small service used by the integration tests: it consumes ``test.Ping`` events and records
each handled one in an ``effects`` table (several rows for one event id would be a double).

Run as a process: ``python fixture_service.py worker|relay`` with LMS_FIXTURE_DATABASE_URL,
LMS_AMQP_URL, LMS_EXCHANGE and LMS_QUEUE_PREFIX set, exactly as a real service is run.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path

from flask import Flask
from flask_smorest import Blueprint
from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from lms_common.contracts import SUITE_EVENTS
from lms_common.contracts.schema import obj
from lms_common.db import Base
from lms_common.envelope import Event, EventCatalog, EventType
from lms_common.service import ServiceDefinition

operations = Blueprint("fixture", __name__, description="Test endpoints")


@operations.route("/pid")
def pid() -> dict[str, int]:
    """The id of the gunicorn worker process that answered"""
    return {"pid": os.getpid()}


PING = EventType(
    domain="test",
    name="Ping",
    summary="A test event",
    schema=obj({"n": {"type": "integer"}}, {"fail_times": {"type": "integer"}, "sleep": {"type": "number"}}),
)
CATALOG = EventCatalog([*SUITE_EVENTS, PING])
FAILURES: Counter[str] = Counter()


class Effect(Base):
    __tablename__ = "effects"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(200), index=True)
    n: Mapped[int]


def on_ping(session: Session, event: Event) -> None:
    """Fails ``fail_times`` times (per process), sleeps ``sleep`` seconds, then records its effect."""
    if FAILURES[event.id] < event.data.get("fail_times", 0):
        FAILURES[event.id] += 1
        raise RuntimeError(f"transient failure {FAILURES[event.id]}")
    if event.data.get("sleep"):
        time.sleep(event.data["sleep"])
    session.add(Effect(event_id=event.id, n=event.data["n"]))


def effect_counts(session: Session) -> Counter[str]:
    return Counter(session.scalars(select(Effect.event_id)))


SERVICE = ServiceDefinition(
    name="fixture",
    title="Integration-test service",
    migrations=str(Path(__file__).parent / "migrations"),
    handlers={"Ping": on_ping},
    catalog=CATALOG,
    blueprints=[operations],
)


def create_app() -> Flask:
    return SERVICE.create_app()


if __name__ == "__main__":
    raise SystemExit(SERVICE.main(sys.argv[1:]))
