"""Faults during bursts of outside facts: every confirmed input has exactly one effect.

Each test publishes InvoicePaid events (a fresh product per test, one buyer per invoice) and
injects its fault while they flow through identity, automation and enrollment. It then drains
everything and checks: one grant per invoice (nothing lost, nothing twice), every outbox and
every live queue empty, the dead-letter queues holding exactly the injected bad messages, and
the duplicate counters showing that the fault really fired.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests
import sqlalchemy as sa
from harness import RELAYS, Suite
from infra import PrivatePostgres, PrivateRabbit
from knobs import HEARTBEAT_SECONDS, scaled
from knobs import record as record_figure
from lms import Lms, Message, Publisher, as_message, cloud_event, invoice_paid
from proxy import Proxy

DRAIN_SECONDS = 900


class Burst:
    """InvoicePaid for one fresh product, published with confirms from a background thread."""

    def __init__(self, lms: Lms, rabbit: PrivateRabbit, count: int):
        self.lms, self.count = lms, count
        self.org, self.product, self.run = lms.org_id(), str(uuid.uuid4()), uuid.uuid4().hex[:6]
        self.events = [invoice_paid(self.org, self.product, i, self.run) for i in range(count)]
        self.publisher = Publisher(rabbit.url, lms.suite.exchange)
        self.thread = threading.Thread(target=self.publish, args=([as_message(e) for e in self.events],))

    def publish(self, messages: list[Message]) -> None:
        self.publisher.publish_all(messages)

    def start(self) -> Burst:
        self.thread.start()
        return self

    def grants(self) -> int:
        return self.lms.grants(self.product)

    def wait_for_grants(self, count: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.grants() < count and time.monotonic() < deadline:
            time.sleep(0.5)

    def in_flight(self) -> bool:
        return self.thread.is_alive() or self.grants() < self.count

    def finish(self) -> None:
        self.thread.join(DRAIN_SECONDS)
        self.publisher.close()
        assert self.publisher.confirmed >= self.count


@pytest.fixture()
def dead_before(lms: Lms) -> dict[str, list[str]]:
    return lms.dead_letters()


def check_drained(
    lms: Lms, burst: Burst, dead_before: dict[str, list[str]], injected: dict[str, int] | None = None
) -> str:
    """The end of every fault test; returns the figure for the summary."""
    burst.finish()
    drained = lms.wait_drained(lambda: burst.grants() >= burst.count, DRAIN_SECONDS)
    grants, grantees = burst.grants(), lms.distinct_grantees(burst.product)
    assert drained, f"not drained: grants {grants}/{burst.count}, outboxes {lms.outbox_backlog()}, {lms.queues()}"
    assert grants == burst.count, "an invoice lost its grant or had two"
    assert grantees == burst.count
    assert not any(lms.outbox_backlog().values())
    assert not any(lms.live_queues().values())
    dead = new_dead_letters(lms, dead_before)
    assert {s: len(set(ids)) for s, ids in dead.items() if ids} == {s: n for s, n in (injected or {}).items() if n}
    copies = sum(len(ids) - len(set(ids)) for ids in dead.values())
    assert copies == 0, f"{copies} dead letters were dead-lettered twice"
    return f"{burst.publisher.confirmed:,} confirmed, {grants:,} grants"


def new_dead_letters(lms: Lms, before: dict[str, list[str]]) -> dict[str, list[str]]:
    """Dead letters (message ids, one per copy) that arrived since ``before``, per service."""
    now = lms.dead_letters()
    return {s: [i for i in ids if i not in set(before.get(s, []))] for s, ids in now.items()}


class DuplicateCount:
    """Duplicates seen by workers, kept across worker restarts (each restart resets its counter)."""

    def __init__(self, lms: Lms):
        self.lms, self.banked, self.start = lms, 0, lms.consumed("duplicate")

    def bank(self) -> None:
        """Call before killing a worker: what it counted so far is kept."""
        self.banked += self.lms.consumed("duplicate")

    def total(self) -> int:
        return self.banked + self.lms.consumed("duplicate") - self.start


def consuming(lms: Lms, timeout: float = 120) -> None:
    """Until the enrollment worker serves its metrics, that is, until it consumes again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if "lms_consumer" in lms.suite.worker_metrics("enrollment"):
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)


def deliveries_in_hand(lms: Lms, burst: Burst, timeout: float = 120) -> int:
    """Waits until the enrollment worker holds unacknowledged deliveries; 0 once the burst is through.

    Killing at a random moment instead can miss: a batch-handling worker finishes a small burst
    between two kills and the kill then proves nothing.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and burst.grants() < burst.count:
        held = lms.unacknowledged("enrollment")
        if held:
            return held
        time.sleep(0.05)
    return 0


def until(done: Callable[[], bool], pause: tuple[float, float]) -> Iterator[int]:
    """Yields 0, 1, 2 ... at random moments until ``done``."""
    n = 0
    while not done():
        time.sleep(random.uniform(*pause))
        yield n
        n += 1


def test_enrollment_worker_killed_during_a_burst_of_invoices(
    suite: Suite, lms: Lms, rabbit: PrivateRabbit, dead_before: dict[str, list[str]]
) -> None:
    count, kills = scaled(5000, 400), scaled(20, 3)
    # A stall per batch (below the heartbeat) keeps deliveries in the worker's hands for most of
    # the burst, so that even a small CI-sized burst, which set-based handlers otherwise finish
    # in a second or two, is killed mid-batch.
    suite.restart("enrollment-worker", {"LMS_FAULT_HANDLER_DELAY_SECONDS": "2"})
    duplicates = DuplicateCount(lms)
    burst = Burst(lms, rabbit, count).start()
    in_flight = 0  # deliveries a kill took from the worker unacknowledged: the broker gives them again
    killed = 0
    try:
        for _ in range(kills):
            consuming(lms)  # a kill while it is still starting would show nothing
            time.sleep(random.uniform(0.0, 1.0))
            held = deliveries_in_hand(lms, burst)
            if not held:
                break  # the burst is through enrollment: a later kill would show nothing
            duplicates.bank()
            in_flight += held
            killed += 1
            suite.kill("enrollment-worker", signal.SIGKILL)
            suite.start_process("enrollment-worker")
    finally:
        suite.restart("enrollment-worker", {})
    figure = check_drained(lms, burst, dead_before)
    assert killed and in_flight > 0, "no kill caught the worker with deliveries in hand"
    record_figure("1. InvoicePaid burst", figure, True)
    record_figure("2. enrollment worker SIGKILL", f"{killed} kills, {in_flight} deliveries unacknowledged just "
                  f"before the kills, {duplicates.total()} duplicates absorbed", True)  # fmt: skip


def test_relays_killed_between_publish_and_mark(
    suite: Suite, lms: Lms, rabbit: PrivateRabbit, dead_before: dict[str, list[str]]
) -> None:
    # Small batches: enough of them that 5% of batches is sure to kill relays even at CI size.
    fault = {"LMS_FAULT_RELAY_AFTER_PUBLISH": "0.05", "LMS_RELAY_BATCH_SIZE": "5"}
    names = [f"{service}-relay" for service in RELAYS]
    for name in names:
        suite.restart(name, fault)
    duplicates = DuplicateCount(lms)
    crashes = 0
    burst = Burst(lms, rabbit, scaled(5000, 200)).start()
    try:
        for _ in until(lambda: not burst.in_flight(), (0.5, 1.0)):
            for name in names:
                if suite.processes[name].poll() is not None:
                    crashes += 1
                    suite.start_process(name)
    finally:
        for name in names:
            if suite.processes[name].poll() is not None:
                crashes += 1
            suite.restart(name, {})
    figure = check_drained(lms, burst, dead_before)
    assert crashes >= 1, "the fault never fired"
    assert duplicates.total() > 0, "a relay died after publishing, yet no consumer saw a duplicate"
    record_figure("3. relay killed after publish (5%)", f"{figure}; {crashes} relay crashes, "
                  f"{duplicates.total()} duplicates absorbed", True)  # fmt: skip


def test_rabbitmq_restarted_three_times_and_killed_once(
    lms: Lms, rabbit: PrivateRabbit, dead_before: dict[str, list[str]]
) -> None:
    duplicates = DuplicateCount(lms)
    burst = Burst(lms, rabbit, scaled(5000, 200)).start()
    for step, sig in enumerate((signal.SIGTERM, signal.SIGTERM, signal.SIGTERM, signal.SIGKILL), start=1):
        burst.wait_for_grants(burst.count * step // 6)  # spread over the burst, wherever it is
        rabbit.restart(sig)
    figure = check_drained(lms, burst, dead_before)
    record_figure("4. RabbitMQ 3 restarts + 1 SIGKILL", f"{figure}; publisher retried "
                  f"{burst.publisher.retries}x, {duplicates.total()} duplicates absorbed", True)  # fmt: skip


def test_postgresql_restarted_immediately_mid_burst(
    lms: Lms, rabbit: PrivateRabbit, postgres: PrivatePostgres, dead_before: dict[str, list[str]]
) -> None:
    duplicates, failures_before, lost_before = DuplicateCount(lms), lms.failures(), lms.lost_database_connections()
    burst = Burst(lms, rabbit, scaled(5000, 200)).start()
    burst.wait_for_grants(burst.count // 4)
    before = postgres.pid()
    postgres.restart_immediate()
    assert postgres.pid() != before
    figure = check_drained(lms, burst, dead_before)
    lost, failed = lms.lost_database_connections() - lost_before, lms.failures() - failures_before
    assert lost > 0, "no worker or relay found a connection lost: the restart went unnoticed"
    record_figure("5. PostgreSQL restart -m immediate", f"{figure}; {lost} connections found lost, {failed} "
                  f"worker batches rolled back or relay cycles abandoned, {duplicates.total()} duplicates absorbed",
                  True)  # fmt: skip


def test_connections_cut_black_holed_and_slowed(
    lms: Lms, rabbit: PrivateRabbit, proxy: Proxy, dead_before: dict[str, list[str]]
) -> None:
    duplicates = DuplicateCount(lms)
    burst = Burst(lms, rabbit, scaled(5000, 200)).start()
    cut = 0
    for _ in range(3):
        time.sleep(random.uniform(1.0, 3.0))
        cut += proxy.reset()
    proxy.black_hole(True)
    time.sleep(HEARTBEAT_SECONDS * 3)
    proxy.black_hole(False)
    proxy.latency(2.0)
    time.sleep(20)
    proxy.latency(0.0)
    figure = check_drained(lms, burst, dead_before)
    record_figure("6. proxy: reset, black hole, 2 s latency", f"{figure}; {cut} connections reset, black hole "
                  f"{HEARTBEAT_SECONDS * 3} s, {duplicates.total()} duplicates absorbed", True)  # fmt: skip


def test_every_event_three_times_a_replay_and_new_ids_for_old_facts(
    lms: Lms, rabbit: PrivateRabbit, dead_before: dict[str, list[str]]
) -> None:
    count = scaled(1000, 50)
    duplicates = DuplicateCount(lms)
    burst = Burst(lms, rabbit, count)
    messages = [as_message(e) for e in burst.events]
    burst.thread = threading.Thread(target=burst.publish, args=([m for m in messages for _ in range(3)],))
    burst.start()
    assert lms.wait_drained(lambda: burst.grants() >= count, DRAIN_SECONDS)
    replay = Publisher(rabbit.url, lms.suite.exchange)
    replay.publish_all(messages)  # the whole burst again, a day later
    renamed = [dict(e, id=str(uuid.uuid4())) for e in burst.events[: scaled(100, 10)]]
    replay.publish_all(as_message(e) for e in renamed)  # the same invoices under new event ids
    employee = employee_event(lms.org_id(), "EmployeeOnboarded")
    replay.publish_all(as_message(dict(employee, id=str(uuid.uuid4()))) for _ in range(3))
    replay.close()
    figure = check_drained(lms, burst, dead_before)
    users = lms.scalar(
        "identity", "SELECT count(*) FROM users WHERE employee_id = :e", e=employee["data"]["employee_id"]
    )
    assert users == 1
    # identity and automation both consume InvoicePaid: each sees 2 + 1 repeats of every id.
    assert duplicates.total() >= 2 * 3 * count
    record_figure("7. x3 delivery, replay, new ids", f"{figure}; {count:,} replayed, {len(renamed)} invoices and "
                  f"1 employee x3 under new ids, {duplicates.total():,} duplicates absorbed, 1 user", True)  # fmt: skip


def employee_event(org: str, kind: str, employee_id: str | None = None) -> dict:
    employee_id = employee_id or f"E-{uuid.uuid4().hex[:8]}"
    data = {
        "employee_id": employee_id,
        "email": f"{employee_id.lower()}@example.com",
        "first_name": "Grace",
        "last_name": "Hopper",
        "department": "Engineering",
        "job_title": "Engineer",
        "start_date": "2026-12-01",
    }
    if kind == "EmployeeOffboarded":
        data = {"employee_id": employee_id, "email": data["email"], "last_day": "2026-12-31"}
    return cloud_event(kind, "/hr", org, data)


def malformed(org: str, n: int) -> list[Message]:
    """Bad JSON, bad UTF-8, a missing field, and (once) a 10 MB body, in turn."""
    good = invoice_paid(org, str(uuid.uuid4()), 0, "bad")
    missing = dict(good, data={k: v for k, v in good["data"].items() if k != "buyer"})
    kinds = [
        lambda: b'{"specversion": "1.0", "id": ',
        lambda: b'{"specversion": "1.0", "data": "\xff\xfe\xfa"}',
        lambda: json.dumps(dict(missing, id=str(uuid.uuid4()))).encode(),
    ]
    bodies = [kinds[i % len(kinds)]() for i in range(n - 1)]
    bodies.append(json.dumps(dict(good, id=str(uuid.uuid4()), padding="x" * 10_000_000)).encode())
    return [Message("billing.InvoicePaid", body, str(uuid.uuid4())) for body in bodies]


def test_malformed_messages_among_good_ones(
    suite: Suite, lms: Lms, rabbit: PrivateRabbit, dead_before: dict[str, list[str]]
) -> None:
    bad = scaled(50, 8)
    pids = {name: process.pid for name, process in suite.processes.items()}
    burst = Burst(lms, rabbit, scaled(5000, 200))
    messages = [as_message(e) for e in burst.events]
    for position, message in zip(random.sample(range(len(messages)), bad), malformed(burst.org, bad), strict=True):
        messages.insert(position, message)
    burst.thread = threading.Thread(target=burst.publish, args=(messages,))
    burst.start()
    # Every consumer of InvoicePaid dead-letters each bad message once.
    consumers = {"identity": bad, "automation": bad, "reporting": bad}
    figure = check_drained(lms, burst, dead_before, injected=consumers)
    assert {name: process.pid for name, process in suite.processes.items()} == pids, "a process restarted"
    assert all(process.poll() is None for process in suite.processes.values())
    record_figure("8. malformed among good", f"{figure}; {bad} bad -> {bad} dead letters in each of identity, "
                  "automation and reporting, 0 restarts", True)  # fmt: skip


def test_a_handler_outliving_the_heartbeat(
    suite: Suite, lms: Lms, rabbit: PrivateRabbit, dead_before: dict[str, list[str]]
) -> None:
    stall = HEARTBEAT_SECONDS * 3
    suite.restart("enrollment-worker", {"LMS_FAULT_HANDLER_DELAY_SECONDS": str(stall)})
    log = suite.log.parent / "logs" / "enrollment-worker.log"
    start = log.stat().st_size
    try:
        burst = Burst(lms, rabbit, 5).start()
        figure = check_drained(lms, burst, dead_before)
    finally:
        suite.restart("enrollment-worker", {})
    text = log.read_text(errors="replace")[start:]
    stalls = text.count("fault injected: stalling")
    assert stalls >= 1
    assert "broker connection lost" not in text
    record_figure("9. handler outlives heartbeat", f"{figure}; {stalls} batches stalled {stall} s "
                  f"(heartbeat {HEARTBEAT_SECONDS} s), connection kept, 1 grant each", True)  # fmt: skip


def api(suite: Suite, token: str, service: str, method: str, path: str, *, body: dict | None = None) -> dict:
    response = requests.request(
        method, suite.url(service, path), json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
    return dict(response.json())


def published_course(suite: Suite, token: str) -> str:
    course = api(suite, token, "catalog", "POST", "/v1/courses", body={"title": "Workplace safety"})["id"]
    module = api(suite, token, "catalog", "POST", f"/v1/courses/{course}/modules", body={"title": "Basics"})["id"]
    text = {"title": "Exits", "kind": "text", "body": "Know your exits."}
    lesson = api(suite, token, "catalog", "POST", f"/v1/modules/{module}/lessons", body=text)["id"]
    api(suite, token, "catalog", "POST", f"/v1/lessons/{lesson}/publish")
    api(suite, token, "catalog", "POST", f"/v1/courses/{course}/publish")
    return str(course)


def test_onboarded_offboarded_onboarded_again_with_redeliveries(
    suite: Suite, lms: Lms, rabbit: PrivateRabbit, dead_before: dict[str, list[str]]
) -> None:
    token = lms.token()
    course = published_course(suite, token)
    rule = {"name": f"Safety {course[:8]}", "trigger": "EmployeeOnboarded", "conditions": [], "enabled": True,
            "actions": [{"type": "AssignMandatoryTraining", "course_ids": [course], "due_in_days": 30}]}  # fmt: skip
    api(suite, token, "automation", "POST", "/v1/rules", body=rule)
    known = "SELECT count(*) FROM courses WHERE id = :c"
    assert lms.wait_drained(lambda: lms.scalar("enrollment", known, c=course) == 1, DRAIN_SECONDS)
    org, employee_id = lms.org_id(), f"E-{uuid.uuid4().hex[:8]}"
    hired = employee_event(org, "EmployeeOnboarded", employee_id)
    left = employee_event(org, "EmployeeOffboarded", employee_id)
    rehired = employee_event(org, "EmployeeOnboarded", employee_id)
    rehired["data"] = dict(rehired["data"], start_date="2027-06-01")
    duplicates = DuplicateCount(lms)
    publisher = Publisher(rabbit.url, suite.exchange)
    # Each event delivered twice, and the first hire replayed after the rehire.
    publisher.publish_all(as_message(e) for e in (hired, hired, left, left, rehired, rehired, hired))
    publisher.close()

    def user() -> tuple[str, object] | None:
        with lms.db("identity").connect() as connection:
            row = connection.execute(
                sa.text("SELECT id, disabled_at FROM users WHERE employee_id = :e"), {"e": employee_id}
            ).one_or_none()
        return (str(row[0]), row[1]) if row else None

    cycles_sql = "SELECT count(*) FROM assignments WHERE course_id = :c AND user_id = :u"
    assert lms.wait_drained(
        lambda: user() is not None and lms.scalar("enrollment", cycles_sql, c=course, u=user()[0]) >= 2,  # type: ignore[index]
        DRAIN_SECONDS,
    )
    user_id, disabled_at = user()  # type: ignore[misc]
    with lms.db("enrollment").connect() as connection:
        cycles = sorted(
            connection.execute(
                sa.text("SELECT cycle FROM assignments WHERE course_id = :c AND user_id = :u"),
                {"c": course, "u": user_id},
            ).scalars()
        )
    assert disabled_at is None, "the rehired employee's user is still disabled"
    assert cycles == [1, 2], "mandatory training must be assigned once per employment"
    assert not any(lms.outbox_backlog().values()) and not any(lms.live_queues().values())
    assert not any(new_dead_letters(lms, dead_before).values())
    assert duplicates.total() >= 3
    record_figure("10. onboard, offboard, onboard again", f"user enabled, assignment cycles {cycles}, "
                  f"{duplicates.total()} duplicates absorbed", True)  # fmt: skip
