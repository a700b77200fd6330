"""GrantProduct and UserProvisioned handled a batch at a time have the outcome of one event
after the other: the same sequences go through both paths, on two databases, and the tables
and outbox events are compared (ids and timestamps aside)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from enrollment_helpers import ORG, new_id
from sqlalchemy import MetaData, select

from enrollment import grants, purchases
from enrollment.service import SERVICE
from lms_common import migrations
from lms_common.config import Settings
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import make_engine
from lms_common.envelope import Event, format_time
from lms_common.processing import Delivery, MessageProcessor, Outcome
from lms_common.testing import TEST_ISSUER, TestKeys

COURSES = [new_id() for _ in range(4)]
# product -> (courses, active): two share a course, one is not active yet.
PRODUCTS = {new_id(): ([COURSES[0], COURSES[1]], True), new_id(): ([COURSES[1], COURSES[2]], True),
            new_id(): ([COURSES[3]], False), new_id(): ([COURSES[0]], True)}  # fmt: skip
P1, P2, P3, P4 = PRODUCTS


class Person:
    def __init__(self, name: str):
        self.id, self.email = new_id(), f"{name}@example.com"


def event(event_type: str, data: dict[str, Any], at: datetime | None = None) -> Event:
    made = Event(type=event_type, data=data, orgid=ORG, source="/test")
    return dataclasses.replace(made, time=at) if at else made


def provisioned(person: Person, at: datetime | None = None, first: str = "Ada") -> Event:
    data = {"user_id": person.id, "email": person.email, "org_id": ORG, "cause": "InvoicePaid",
            "cause_event_id": new_id(), "created": True, "first_name": first, "last_name": "Lovelace",
            "department": None, "location_id": None, "kind": "customer"}  # fmt: skip
    return event("UserProvisioned", data, at)


def grant(owner: dict[str, str], product: str, key: str, **extra: Any) -> Event:
    data = {"natural_key": key, "product_id": product, "owner": owner, "source_event_id": new_id(),
            "source_event_type": "InvoicePaid", "rule_id": None, **extra}  # fmt: skip
    return event("GrantProduct", data)


def revoke(owner: dict[str, str], product: str, key: str) -> Event:
    data = {"natural_key": key, "product_id": product, "owner": owner, "source_event_id": new_id(),
            "source_event_type": "InvoiceRefunded", "rule_id": None}  # fmt: skip
    return event("RevokeProduct", data)


def product(product_id: str, version: int, active: bool) -> Event:
    courses, _ = PRODUCTS[product_id]
    data = {"product_id": product_id, "version": version, "title": f"Bundle {product_id[:4]}",
            "status": "active" if active else "inactive", "course_ids": courses}  # fmt: skip
    return event("ProductActivated" if active else "ProductUpdated", data)


def catalog() -> list[Event]:
    courses = [
        event("CoursePublished", {"course_id": c, "version": 1, "title": f"Course {c[:4]}", "status": "published",
                                  "lesson_ids": [new_id()], "quiz_ids": [], "derived_from": None, "created_by": "a"})
        for c in COURSES
    ]  # fmt: skip
    return courses + [product(p, 1, active) for p, (_, active) in PRODUCTS.items()]


# --- two worlds -----------------------------------------------------------------------------------


class World:
    """One database and a processor: ``batched`` delivers each batch whole, the other one
    message at a time through the one-event use cases."""

    def __init__(self, settings: Settings, keys: TestKeys, *, batched: bool):
        self.url, self.batched = settings.database_url, batched
        processor = SERVICE.processor(SERVICE.runtime(settings, keys))
        if not batched:
            alone = {k: v for k, v in processor.batch_handlers.items() if k != "UserProvisioned"}
            processor = MessageProcessor("enrollment", processor.session_factory, processor.handlers,
                                         processor.catalog, batch_handlers=alone)  # fmt: skip
        self.processor = processor

    def deliver(self, batch: list[Event]) -> list[Outcome]:
        deliveries = [Delivery(e.to_json(), SUITE_EVENTS.routing_key(e), e.id) for e in batch]
        if self.batched:
            return [result.outcome for result in self.processor.process(deliveries)]
        return [self.processor.process([delivery])[0].outcome for delivery in deliveries]


def one_grant_at_a_time(session: Any, commands: list[purchases.Command]) -> None:
    for command in commands:
        grants.grant_command(session, *command)


@pytest.fixture()
def worlds(tmp_path: Path, keys: TestKeys, monkeypatch: pytest.MonkeyPatch) -> Callable[[list[list[Event]]], None]:
    """``run(batches)``: the batches through both paths; the outcomes and states must agree."""

    def make(name: str, batched: bool) -> World:
        url = f"sqlite:///{tmp_path / name}.sqlite3"
        migrations.upgrade(SERVICE.migrations, url)
        base = Settings.from_env("enrollment", env={})
        settings = dataclasses.replace(base, database_url=url, issuer=TEST_ISSUER, var_dir=tmp_path / name)
        return World(settings, keys, batched=batched)

    def run(batches: list[list[Event]]) -> None:
        one, many = make("one", batched=False), make("many", batched=True)
        # Where several grants open a course at once, the smallest grant id is the enrollment's
        # first source. Ids falling in order of creation make that the newest grant on both
        # paths, so a batch that enrolled a user from two of its new grants at once (one at a
        # time enrolls from the first) differs.
        counter = itertools.count(1)
        monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=2**40 - next(counter), version=4))
        setup = catalog()
        assert one.deliver(setup) == many.deliver(setup) == [Outcome.HANDLED] * len(setup)
        with monkeypatch.context() as patch:  # GrantProduct as before the batch handlers: one grant() each
            patch.setattr(purchases, "grant_all", one_grant_at_a_time)
            expected = [one.deliver(batch) for batch in batches]
        assert [many.deliver(batch) for batch in batches] == expected
        batched, alone = state(many.url), state(one.url)
        for table, rows in alone.items():
            differing = ([r for r in batched[table] if r not in rows], [r for r in rows if r not in batched[table]])
            assert differing == ([], []), f"{table}: batched, one by one"

    return run


# --- comparing two databases ----------------------------------------------------------------------

TABLES = ("users", "grants", "seat_holders", "command_keys", "pending_commands", "enrollments",
          "enrollment_sources", "assignments", "bulk_targets")  # fmt: skip


def state(url: str) -> dict[str, list[str]]:
    """Every row of the tables the purchase path writes, and every outbox event's type and
    data: ids made here replaced by what they identify, times by a mark."""
    engine = make_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as connection:
        tables = {
            name: [dict(row._mapping) for row in connection.execute(select(meta.tables[name]))] for name in TABLES
        }
        events = [
            json.loads(bytes(body)) for body in connection.execute(select(meta.tables["outbox"].c.body)).scalars()
        ]
    engine.dispose()
    names = _names(tables)
    found = {
        name: sorted(json.dumps(_plain(row, names), sort_keys=True) for row in rows) for name, rows in tables.items()
    }
    found["outbox"] = sorted(json.dumps([e["type"], _plain(e["data"], names)], sort_keys=True) for e in events)
    return found


def _names(tables: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    names = {g["id"]: f"grant {g['product_id']} {g['owner_key']}" for g in tables["grants"]}
    names |= {e["id"]: f"enrollment {e['user_id']} {e['course_id']}" for e in tables["enrollments"]}
    names |= {s["id"]: f"seat {names[s['grant_id']]} {s['email']}" for s in tables["seat_holders"]}
    names |= {a["id"]: f"assignment {a['user_id']} {a['target_id']} {a['cycle']}" for a in tables["assignments"]}
    names |= {p["id"]: f"pending {p['payload']['natural_key']}" for p in tables["pending_commands"]}
    return names


def _plain(item: Any, names: dict[str, str], key: str = "") -> Any:
    if isinstance(item, dict):
        return {k: _plain(v, names, k) for k, v in item.items() if k != "batch_id"}
    if isinstance(item, list):
        return [_plain(v, names) for v in item]
    if isinstance(item, datetime) or (item is not None and key.endswith("_at")):
        return "<time>"
    if isinstance(item, date):
        return item.isoformat()
    return names.get(item, item) if isinstance(item, str) else item


# --- the sequences --------------------------------------------------------------------------------


def test_a_mixed_purchase_sequence_has_the_outcome_of_one_event_after_the_other(worlds):
    u1, u2, new1, new2, new3, buyer, rehire = (Person(n) for n in ("u1", "u2", "new1", "new2", "new3", "buyer", "re"))
    company = {"organization_id": ORG}
    later = datetime.now(UTC) + timedelta(minutes=5)
    worlds([
        [provisioned(u1), provisioned(u2), provisioned(rehire)],
        [
            grant({"email": new1.email}, P1, "inv:1"),  # waits for its user
            grant({"email": new1.email}, P2, "inv:1b"),
            grant({"user_id": u1.id}, P1, "inv:2"),
            grant({"user_id": u1.id}, P2, "inv:3"),  # a course shared with P1: P1's grant enrolled it first
            grant({"user_id": u1.id}, P1, "inv:4"),  # the same product and owner: no second grant
            grant({"user_id": u1.id}, P1, "inv:2"),  # the same invoice again
            grant({"email": u2.email}, P3, "inv:5"),  # P3 is not active yet
            grant(company, P4, "contract:1"),  # a company grant enrolls the members
            grant({"user_id": u2.id}, P1, "inv:6", seats=3),  # a purchase of seats
            grant({"email": buyer.email}, P2, "inv:7", invitees=[new2.email, u1.email]),
            grant({"user_id": u2.id}, P2, "inv:8"),
        ],
        [
            provisioned(new1),  # its two grants were waiting
            provisioned(new3),  # only the company grant opens something
            provisioned(buyer),  # its purchase with invitees was waiting
            provisioned(new2),  # the buyer's seat for it was handed out just now, in this batch
            provisioned(new1, later, first="Augusta"),  # again, with a newer profile
            provisioned(u1),
        ],
        [product(P3, 2, True)],
        [revoke({"user_id": u1.id}, P1, "refund:2")],
        [grant({"user_id": u1.id}, P1, "inv:9"), grant({"user_id": new3.id}, P1, "inv:10")],  # reopens; new
        [event("UserDisabled", {"user_id": rehire.id, "disabled_at": format_time(datetime.now(UTC))})],
        [training(rehire), grant({"email": rehire.email}, P2, "inv:11")],
        [provisioned(rehire, later), provisioned(Person("new4"))],
    ])  # fmt: skip


def training(person: Person, courses: tuple[str, ...] = (COURSES[2],), cycle: int = 1) -> Event:
    data = {"natural_key": f"employee:{person.id}:training:cycle:{cycle}", "person": {"email": person.email},
            "course_ids": list(courses), "program_ids": [], "due_on": "2030-01-01", "mandatory": True,
            "cycle": cycle, "source_event_id": new_id(), "source_event_type": "EmployeeOnboarded",
            "rule_id": None}  # fmt: skip
    return event("AssignMandatoryTraining", data)


def test_trainings_that_waited_for_their_people_are_carried_out_with_the_batch(worlds):
    """An onboarding's training usually reaches enrollment before identity's UserProvisioned:
    a batch of those UserProvisioned carries the waiting trainings out together, as one after
    the other would, and a person with a training and a grant waiting goes alone."""
    hires = [Person(f"hire{n}") for n in range(5)]
    both, known = Person("both"), Person("known")
    worlds([
        [provisioned(known)],
        [training(hire, (COURSES[0], COURSES[2])) for hire in hires]
        + [training(both), grant({"email": both.email}, P2, "inv:1"), grant({"user_id": known.id}, P1, "inv:2")],
        [training(hires[0], (COURSES[0],), cycle=2), training(known, (COURSES[0], COURSES[1]))],
        [provisioned(hire) for hire in hires[:3]] + [provisioned(both)] + [provisioned(hire) for hire in hires[3:]],
    ])  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_random_purchase_sequences_have_the_outcome_of_one_event_after_the_other(worlds, seed):
    worlds(list(_random_batches(random.Random(seed))))


@pytest.mark.parametrize("seed", range(4))
def test_random_sequences_with_trainings_have_the_outcome_of_one_event_after_the_other(worlds, seed):
    worlds(list(_random_batches(random.Random(f"trainings-{seed}"), trainings=True)))


def _random_batches(rng: random.Random, *, trainings: bool = False) -> Iterator[list[Event]]:
    people = [Person(f"p{n}") for n in range(6)]
    versions = dict.fromkeys(PRODUCTS, 1)
    start = datetime.now(UTC)
    for _ in range(8):
        batch = []
        for _ in range(rng.randint(1, 14)):
            at = start + timedelta(seconds=rng.randint(0, 60))
            if trainings and rng.random() < 0.3:
                courses = tuple(rng.sample(COURSES, rng.randint(1, 3)))
                batch.append(training(rng.choice(people), courses, cycle=rng.randint(1, 3)))
            else:
                batch.append(_random_event(rng, people, versions, at))
        yield batch


def _random_event(rng: random.Random, people: list[Person], versions: dict[str, int], at: datetime) -> Event:
    person, item = rng.choice(people), rng.choice(list(PRODUCTS))
    owner = rng.choice([{"email": person.email}, {"user_id": person.id}, {"organization_id": ORG}])
    key = f"inv:{rng.randint(0, 12)}"
    roll = rng.random()
    if roll < 0.35:
        return provisioned(person, at)
    if roll < 0.85:
        extra: dict[str, Any] = {}
        if rng.random() < 0.15:
            extra = {"seats": 3, "invitees": [p.email for p in rng.sample(people, 2)]}
        return grant(owner, item, key, **extra)
    if roll < 0.93:
        return revoke(owner, item, f"refund:{rng.randint(0, 3)}")
    versions[item] += 1
    return product(item, versions[item], rng.random() < 0.7)


# --- failures -------------------------------------------------------------------------------------


def test_a_failing_grant_costs_only_itself(worlds, bus, settings):
    u1, u2, u3 = Person("a"), Person("b"), Person("c")
    for person in (u1, u2, u3):
        bus.send("UserProvisioned", provisioned(person).data)
    bus.send("ProductActivated", product(P1, 1, True).data)
    bus.send("GrantProduct", grant({"user_id": u2.id}, P1, "inv:1", seats=2, invitees=[u1.email, u3.email]).data)
    overflowing = grant({"user_id": u2.id}, P1, "inv:2", invitees=["x@example.com"])  # the 2 seats are taken
    batch = [grant({"user_id": u1.id}, P2, "inv:3"), overflowing, grant({"user_id": u3.id}, P2, "inv:4")]
    deliveries = [Delivery(e.to_json(), SUITE_EVENTS.routing_key(e), e.id) for e in batch]
    outcomes = [result.outcome for result in bus.processor.process(deliveries)]
    assert outcomes == [Outcome.HANDLED, Outcome.RETRY, Outcome.HANDLED]
    engine = make_engine(settings.database_url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as connection:
        owners = connection.execute(select(meta.tables["grants"].c.owner_key)).scalars().all()
    engine.dispose()
    assert sorted(owners) == sorted([f"user:{u}" for u in (u2.id, u1.id, u3.id, u1.id, u3.id)])
