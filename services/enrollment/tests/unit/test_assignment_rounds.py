"""AssignMandatoryTraining handled a batch at a time, in rounds of (user, target) pairs, has the
outcome of one command after the other: the same batches go through both paths, on two
databases, and the tables and outbox events are compared (ids and times aside). And a command
naming several courses and programs has the outcome of a command per target (natural keys aside)."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from enrollment_helpers import ORG, Bus, new_id
from sqlalchemy import MetaData, select, update
from test_purchase_batches import state

from enrollment import assignments, commands
from enrollment.models import Assignment, Enrollment
from enrollment.service import SERVICE
from lms_common import migrations
from lms_common.config import Settings
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import make_engine, make_session_factory
from lms_common.envelope import Event
from lms_common.processing import Delivery, Outcome
from lms_common.testing import TEST_ISSUER, TestKeys

HANDLED = Outcome.HANDLED
USERS = [new_id() for _ in range(5)]
COURSES = [new_id() for _ in range(4)]
# Two programs sharing a course, each sharing one with the courses assigned alone.
PROGRAMS = {new_id(): [COURSES[0], COURSES[1]], new_id(): [COURSES[1], COURSES[2]]}


def training(user: str, courses: list[str], programs: list[str], *, key: str, cycle: int | None = None,
             due_on: str = "2030-01-01") -> Event:  # fmt: skip
    data = {"natural_key": key, "person": {"user_id": user}, "course_ids": courses, "program_ids": programs,
            "due_on": due_on, "mandatory": True, "source_event_id": new_id(),
            "source_event_type": "EmployeeOnboarded", "rule_id": None}  # fmt: skip
    if cycle is not None:
        data["cycle"] = cycle
    return Event(type="AssignMandatoryTraining", data=data, orgid=ORG, source="/test")


@dataclasses.dataclass
class World:
    url: str
    bus: Bus

    def deliver(self, batch: list[Event], *, whole: bool) -> list[Outcome]:
        deliveries = [Delivery(e.to_json(), SUITE_EVENTS.routing_key(e), e.id) for e in batch]
        if whole:
            return [result.outcome for result in self.bus.processor.process(deliveries)]
        return [self.bus.processor.process([delivery])[0].outcome for delivery in deliveries]

    def complete(self, picks: list[int]) -> None:
        """Complete the ``picks``-th (in a fixed order) enrollments and their users' open
        assignments of the course, as a learner finishing it would: recertification's ground."""
        factory = make_session_factory(make_engine(self.url))
        with factory.begin() as session:
            enrolled = session.execute(
                select(Enrollment.user_id, Enrollment.course_id).order_by(Enrollment.user_id, Enrollment.course_id)
            ).all()
            done = datetime(2029, 6, 1, tzinfo=UTC)
            for user, course in [enrolled[n] for n in picks if n < len(enrolled)]:
                session.execute(
                    update(Enrollment).where(Enrollment.user_id == user, Enrollment.course_id == course)
                    .values(completed_at=done, progress_percent=100)
                )  # fmt: skip
                session.execute(
                    update(Assignment).where(Assignment.user_id == user, Assignment.target_id == course)
                    .where(Assignment.completed_at.is_(None)).values(completed_at=done)
                )  # fmt: skip
        factory.kw["bind"].dispose()


@pytest.fixture()
def worlds(tmp_path: Path, keys: TestKeys, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """:func:`compare` on two SQLite databases."""
    urls = [f"sqlite:///{tmp_path / name}.sqlite3" for name in ("one", "many")]

    def run(batches: list[list[Event]], completions: list[list[int]] | None = None) -> None:
        compare(urls, keys, tmp_path, monkeypatch, batches, completions=completions or [])

    return run


def compare(urls: list[str], keys: TestKeys, var_dir: Path, monkeypatch: pytest.MonkeyPatch,
            batches: list[list[Event]], *, completions: list[list[int]]) -> None:  # fmt: skip
    """The batches a command at a time through the first database and whole through the other,
    enrollments completed between batches alike: outcomes and states must agree, and no batch
    may fall back to a command at a time (which it does when its handler fails)."""
    _batches_must_not_fail(monkeypatch)
    one, many = (_world(url, keys, var_dir / name) for url, name in zip(urls, ("one", "many"), strict=True))
    for n, batch in enumerate(batches):
        expected = one.deliver(batch, whole=False)
        assert many.deliver(batch, whole=True) == expected
        for world in (one, many):
            world.complete(completions[n] if n < len(completions) else [])
    _assert_same(_state(many.url), _state(one.url), "batched, one by one")


def compare_split(urls: list[str], keys: TestKeys, var_dir: Path, monkeypatch: pytest.MonkeyPatch,
                  batches: list[list[Event]], *, completions: list[list[int]], whole: bool) -> None:  # fmt: skip
    """Each command of the batches split into a command per target, one at a time, through the
    first database, and as it is (whole batches or not) through the other: the same rows and
    events but for the natural keys (one per command)."""
    _batches_must_not_fail(monkeypatch)
    split, joined = (_world(url, keys, var_dir / name) for url, name in zip(urls, ("split", "joined"), strict=True))
    for n, batch in enumerate(batches):
        assert set(split.deliver([one for command in batch for one in per_target(command)], whole=False)) == {HANDLED}
        assert set(joined.deliver(batch, whole=whole)) == {HANDLED}
        for world in (split, joined):
            world.complete(completions[n] if n < len(completions) else [])
    _assert_same(_without_keys(_state(joined.url)), _without_keys(_state(split.url)), "joined, split")


def per_target(command: Event) -> list[Event]:
    """The commands automation sent for ``command``'s targets before one named them all: one per
    course, then one per program, each under a key of its own."""
    data = command.data
    parts = [([course], []) for course in data["course_ids"]] + [([], [program]) for program in data["program_ids"]]
    return [
        Event(type=command.type, orgid=command.orgid, source=command.source,
              data={**data, "natural_key": f"{data['natural_key']}:{(courses + programs)[0]}", "course_ids": courses,
                    "program_ids": programs})
        for courses, programs in parts
    ]  # fmt: skip


def _without_keys(found: dict[str, list[str]]) -> dict[str, list[str]]:
    """A state without what tells split commands from joined ones: the claimed natural keys, and
    the assignments' (each names its command's)."""
    rows = [{k: v for k, v in json.loads(row).items() if k != "natural_key"} for row in found["assignments"]]
    kept = {table: rows for table, rows in found.items() if table != "command_keys"}
    return kept | {"assignments": sorted(json.dumps(row, sort_keys=True) for row in rows)}


def _batches_must_not_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing batch falls back to a command at a time, which would hide a difference."""
    assign_all = commands.assign_all

    def unfailing(session: Any, resolved: Any) -> None:
        try:
            assign_all(session, resolved)
        except Exception as exc:
            pytest.fail(f"the batch failed: {exc!r}")

    monkeypatch.setattr(commands, "assign_all", unfailing)


def _assert_same(found: dict[str, list[str]], expected: dict[str, list[str]], paths: str) -> None:
    for table, rows in expected.items():
        differing = ([r for r in found[table] if r not in rows], [r for r in rows if r not in found[table]])
        assert differing == ([], []), f"{table}: {paths}"


def _world(url: str, keys: TestKeys, var_dir: Path) -> World:
    """A migrated database with the users, courses and programs, and a processor on it."""
    migrations.upgrade(SERVICE.migrations, url)
    base = Settings.from_env("enrollment", env={})
    settings = dataclasses.replace(base, database_url=url, issuer=TEST_ISSUER, var_dir=var_dir)
    bus = Bus(SERVICE.processor(SERVICE.runtime(settings, keys)))
    for user in USERS:
        bus.user(user)
    for n, course in enumerate(COURSES):
        bus.course(course, [new_id()], title=f"Course {n}")
    for program, courses in PROGRAMS.items():
        bus.program(program, courses)
    return World(url, bus)


def _state(url: str) -> dict[str, list[str]]:
    """:func:`test_purchase_batches.state`, and the program members."""
    found = state(url)
    engine = make_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as connection:
        members = [dict(row._mapping) for row in connection.execute(select(meta.tables["program_members"]))]
    engine.dispose()
    found["program_members"] = sorted(
        json.dumps({k: "<time>" if k.endswith("_at") and v else v for k, v in m.items()}, sort_keys=True)
        for m in members
    )
    return found


@pytest.fixture()
def rounds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of users' pairs of each set-based assignment, as ``assignments.assign`` is called."""
    calls: list[int] = []
    assign = assignments.assign

    def counted(session: Any, org: str, users: Any, *args: Any, **kwargs: Any) -> Any:
        pairs = users.rows if isinstance(users, assignments.CommandPairs) else session.execute(users).all()
        calls.append(len(pairs))
        return assign(session, org, users, *args, **kwargs)

    monkeypatch.setattr(assignments, "assign", counted)
    return calls


def test_a_batch_of_three_courses_per_employee_is_one_round(worlds, rounds):
    employees = USERS[:4]
    batch = [training(user, [course], [], key=f"employee:{user}:course:{course}:cycle:1", cycle=1)
             for user in employees for course in COURSES[:3]]  # fmt: skip
    worlds([batch])
    assert rounds[: len(batch)] == [1] * len(batch)  # one command at a time
    assert rounds[len(batch) :] == [len(batch)]  # the batch: every pair in one round


def test_repeats_programs_and_cycles_in_one_batch_follow_the_order_of_the_commands(worlds, rounds):
    user, other = USERS[0], USERS[1]
    p1, p2 = PROGRAMS
    c0, c1, c2, c3 = COURSES
    batch = [
        training(user, [c1], [], key="a"),  # before the program of c1: its enrollment's first source
        training(other, [c3], [], key="b"),
        training(user, [], [p1], key="c"),
        training(other, [], [p2, p1], key="d"),  # programs joined in another order than user's
        training(user, [], [p1, p2], key="e"),
        training(user, [c1, c3], [], key="f"),  # c1 again: nothing; c3 new
        training(user, [c3], [], key="g", cycle=2),
        training(user, [c3], [], key="h", cycle=1),  # after cycle 2: nothing
        training(other, [c0], [], key="i", due_on="2030-02-01"),
        training(other, [c2], [], key="j"),
        training(other, [], [], key="k"),  # names nothing: has no effect
    ]
    worlds([batch])


@pytest.mark.parametrize("seed", range(8))
def test_random_batches_have_the_outcome_of_one_command_after_the_other(worlds, seed):
    rng = random.Random(seed)
    batches = list(_random_batches(rng))
    worlds(batches, [rng.sample(range(20), 4) for _ in batches])


def _random_batches(rng: random.Random) -> Iterator[list[Event]]:
    for _ in range(4):
        yield [_random_command(rng) for _ in range(rng.randint(1, 25))]


def _random_command(rng: random.Random) -> Event:
    courses = rng.sample(COURSES, rng.choice([0, 1, 1, 1, 2]))
    programs = rng.sample(list(PROGRAMS), rng.choice([0, 0, 0, 1, 2]) if courses else rng.choice([1, 2]))
    cycle = rng.choice([None, None, 1, 2, 3])
    # Keys repeat now and then: a repeated key is carried out once, in this batch or a later one.
    key = f"key:{rng.randint(0, 60)}"
    return training(rng.choice(USERS), courses, programs, key=key, cycle=cycle, due_on=rng.choice(["2030-01-01",
                    "2030-02-01"]))  # fmt: skip


@pytest.mark.parametrize("seed", range(3))
def test_rounds_of_a_few_pairs_have_the_outcome_of_one_command_after_the_other(worlds, monkeypatch, seed):
    monkeypatch.setattr(commands, "ROUND", 3)
    rng = random.Random(100 + seed)
    batches = list(_random_batches(rng))
    worlds(batches, [rng.sample(range(20), 4) for _ in batches])


# --- one command naming several targets, as automation sends an onboarding's training --------------


@pytest.fixture()
def split_and_joined(tmp_path: Path, keys: TestKeys, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """:func:`compare_split` on two SQLite databases."""
    urls = [f"sqlite:///{tmp_path / name}.sqlite3" for name in ("split", "joined")]

    def run(batches: list[list[Event]], completions: list[list[int]], *, whole: bool) -> None:
        compare_split(urls, keys, tmp_path, monkeypatch, batches, completions=completions, whole=whole)

    return run


@pytest.mark.parametrize("whole", [True, False], ids=["batch", "one-at-a-time"])
def test_onboardings_naming_courses_and_programs_equal_a_command_per_target(split_and_joined, whole):
    c0, c1, c2, c3 = COURSES
    p1, p2 = PROGRAMS  # p1 shares c0 with the courses named alone: its enrollment's first source
    hires = [training(user, [c0, c3], [p1, p2], key=f"employee:{n}:training:cycle:1", cycle=1)
             for n, user in enumerate(USERS[:3])]  # fmt: skip
    hires.append(training(USERS[3], [c1, c2], [p2], key="employee:3:training:cycle:1", cycle=1))
    rehires = [training(user, [c0, c3], [p1, p2], key=f"employee:{n}:training:cycle:2", cycle=2, due_on="2031-01-01")
               for n, user in enumerate(USERS[:2])]  # fmt: skip
    split_and_joined([hires, rehires], [[0, 1, 2, 5, 8], []], whole=whole)


@pytest.mark.parametrize("seed", range(6))
def test_random_commands_naming_several_targets_equal_a_command_per_target(split_and_joined, seed):
    rng = random.Random(200 + seed)
    batches = list(_random_joined_batches(rng))
    split_and_joined(batches, [rng.sample(range(20), 4) for _ in batches], whole=bool(seed % 2))


def _random_joined_batches(rng: random.Random) -> Iterator[list[Event]]:
    """:func:`_random_batches`, each command under a key of its own (split, a repeated key would
    name other targets)."""
    for batch in _random_batches(rng):
        yield [training(c.data["person"]["user_id"], c.data["course_ids"], c.data["program_ids"], key=new_id(),
                        cycle=c.data.get("cycle"), due_on=c.data["due_on"]) for c in batch]  # fmt: skip


def test_a_waiting_command_naming_several_targets_equals_a_waiting_command_per_target(tmp_path, keys, monkeypatch):
    """A command for an email no user has yet is carried out when the user is provisioned."""
    c0, _c1, _c2, c3 = COURSES
    late, email = new_id(), "late@example.com"
    command = training(late, [c0, c3], list(PROGRAMS), key="employee:late:training:cycle:1", cycle=1)
    command.data["person"] = {"email": email}
    found = []
    for name, commands_sent in (("split", per_target(command)), ("joined", [command])):
        url = f"sqlite:///{tmp_path / name}.sqlite3"
        world = _world(url, keys, tmp_path / name)
        assert set(world.deliver(commands_sent, whole=False)) == {HANDLED}
        world.bus.user(late, email)
        found.append(_without_keys(_state(url)))
    joined, split = found[1], found[0]
    assert len(split["assignments"]) == 4 and split["pending_commands"] == []
    _assert_same(joined, split, "joined, split")


def test_an_onboarding_carried_out_per_target_before_the_upgrade_is_not_assigned_again(tmp_path, keys):
    """An onboarding redelivered after the upgrade comes under its new key: its cycle is assigned
    already, so it adds no row and no event."""
    c0, _c1, _c2, c3 = COURSES
    command = training(USERS[0], [c0, c3], list(PROGRAMS), key="employee:E-1:rule:R:training:cycle:1", cycle=1)
    found = []
    for name, batches in (("before", [per_target(command)]), ("redelivered", [per_target(command), [command]])):
        url = f"sqlite:///{tmp_path / name}.sqlite3"
        world = _world(url, keys, tmp_path / name)
        for batch in batches:
            assert set(world.deliver(batch, whole=True)) == {HANDLED}
        found.append(_without_keys(_state(url)))
    _assert_same(found[1], found[0], "redelivered, before")
