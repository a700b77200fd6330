"""Handling consumed messages (MessageProcessor) through the in-memory bus."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lms_common import outbox
from lms_common.context import correlation
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import session_scope, utcnow
from lms_common.denylist import DisabledUser
from lms_common.envelope import Event
from lms_common.inbox import InboxMessage
from lms_common.memorybus import InMemoryBus, topic_matches
from lms_common.outbox import OutboxMessage
from lms_common.processing import (
    Delivery,
    Handler,
    MessageProcessor,
    MixedRuns,
    Outcome,
    Reject,
    event_correlation,
)
from lms_common.relay import Relay
from lms_common.statistics import StatisticsKeeper

QUEUE = "test"
HANDLED, DUPLICATE, RETRY, DEAD = Outcome.HANDLED, Outcome.DUPLICATE, Outcome.RETRY, Outcome.DEAD_LETTER


def disable_employee(session: Session, event: Event) -> None:
    """The effect under test: one denied_users row per offboarded employee."""
    session.add(DisabledUser(user_id=event.data["employee_id"], disabled_at=utcnow()))
    session.flush()


class FailingHandler:
    """Does its work, then fails on its first ``failures`` calls (``-1``: always).

    The processor may call a handler more than once per delivery (a fast path, then with a
    savepoint per message), so tests count deliveries by outcome, not by calls.
    """

    def __init__(self, failures: int = -1, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or RuntimeError("database said no")
        self.calls = 0

    def __call__(self, session: Session, event: Event) -> None:
        self.calls += 1
        disable_employee(session, event)
        if self.failures < 0 or self.calls <= self.failures:
            raise self.error


@pytest.fixture()
def bus() -> InMemoryBus:
    bus = InMemoryBus()
    bus.bind(QUEUE, ["hr.*", "identity.#"])
    return bus


@pytest.fixture()
def processor(session_factory: sessionmaker[Session]) -> Callable[..., MessageProcessor]:
    def make(handlers: Mapping[str, Handler], max_body_bytes: int = 4096) -> MessageProcessor:
        return MessageProcessor("test", session_factory, handlers, SUITE_EVENTS, max_body_bytes=max_body_bytes)

    return make


@pytest.fixture()
def offboarded(make_event: Callable[..., Event]) -> Callable[[str], Event]:
    return lambda employee_id: make_event("EmployeeOffboarded", employee_id=employee_id)


def outcomes(bus: InMemoryBus, processor: MessageProcessor, **options: int) -> list[Outcome]:
    return [result.outcome for result in bus.drain(QUEUE, processor, **options)]


def disabled_users(factory: sessionmaker[Session]) -> list[str]:
    with session_scope(factory) as session:
        return list(session.scalars(select(DisabledUser.user_id).order_by(DisabledUser.user_id)))


def handled_event_ids(factory: sessionmaker[Session]) -> set[str]:
    with session_scope(factory) as session:
        return set(session.scalars(select(InboxMessage.event_id)))


def dead_letter_reasons(bus: InMemoryBus) -> list[str]:
    return [reason for _delivery, reason in bus.dead_letters[QUEUE]]


def oversized_event(make_event: Callable[..., Event]) -> Event:
    return make_event("EmployeeOnboarded", department="x" * 150, job_title="y" * 150)


# --- duplicates -------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [100, 1])
def test_redelivered_event_has_one_effect(
    bus: InMemoryBus,
    processor: Callable[..., MessageProcessor],
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
    batch_size: int,
) -> None:
    event = offboarded("E-1")
    for _ in range(3):
        bus.publish_event(event, SUITE_EVENTS)
    handle = processor({"EmployeeOffboarded": disable_employee})
    assert outcomes(bus, handle, batch_size=batch_size) == [HANDLED, DUPLICATE, DUPLICATE]
    assert disabled_users(session_factory) == ["E-1"]


# --- messages that can never succeed ----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"specversion": "1.0", ', "body is not JSON"),
        (b"\xff\xfe{}", "body is not UTF-8"),
        (b'{"specversion": "1.0"}', "missing CloudEvents attributes"),
    ],
)
def test_message_that_is_not_an_event_is_dead_lettered_with_the_reason(
    bus: InMemoryBus, processor: Callable[..., MessageProcessor], body: bytes, reason: str
) -> None:
    bus.publish_raw("hr.EmployeeOffboarded", body)
    assert outcomes(bus, processor({"EmployeeOffboarded": disable_employee})) == [DEAD]
    assert reason in dead_letter_reasons(bus)[0]


def test_payload_failing_its_schema_is_dead_lettered_without_effect(
    bus: InMemoryBus,
    processor: Callable[..., MessageProcessor],
    session_factory: sessionmaker[Session],
    make_event: Callable[..., Event],
) -> None:
    bus.publish_event(make_event("EmployeeOffboarded", email="nobody"), SUITE_EVENTS)
    assert outcomes(bus, processor({"EmployeeOffboarded": disable_employee})) == [DEAD]
    assert "payload invalid at email" in dead_letter_reasons(bus)[0]
    assert disabled_users(session_factory) == []


def test_event_of_unknown_type_is_dead_lettered(
    bus: InMemoryBus, processor: Callable[..., MessageProcessor], offboarded: Callable[[str], Event]
) -> None:
    event = Event(type="EmployeePromoted", data=offboarded("E-1").data, orgid="org-1", source="hr")
    bus.publish_raw("hr.EmployeePromoted", event.to_json())
    assert outcomes(bus, processor({"EmployeeOffboarded": disable_employee})) == [DEAD]
    assert dead_letter_reasons(bus) == ["unknown event type 'EmployeePromoted'"]


def test_oversized_message_is_dead_lettered(
    bus: InMemoryBus, processor: Callable[..., MessageProcessor], make_event: Callable[..., Event]
) -> None:
    bus.publish_event(oversized_event(make_event), SUITE_EVENTS)
    assert outcomes(bus, processor({}, max_body_bytes=512)) == [DEAD]
    assert "exceeds 512" in dead_letter_reasons(bus)[0]


def test_known_event_without_a_handler_is_ignored(
    bus: InMemoryBus, processor: Callable[..., MessageProcessor], make_event: Callable[..., Event]
) -> None:
    bus.publish_event(make_event("UserEnabled"), SUITE_EVENTS)
    assert outcomes(bus, processor({"EmployeeOffboarded": disable_employee})) == [Outcome.IGNORED]
    assert bus.dead_letters[QUEUE] == []


def test_event_rejected_by_its_handler_is_dead_lettered_at_once(
    bus: InMemoryBus,
    processor: Callable[..., MessageProcessor],
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
) -> None:
    handler = FailingHandler(error=Reject("no such employee"))
    bus.publish_event(offboarded("E-1"), SUITE_EVENTS)
    assert outcomes(bus, processor({"EmployeeOffboarded": handler}), max_attempts=5) == [DEAD]
    assert dead_letter_reasons(bus) == ["rejected by handler: no such employee"]
    assert disabled_users(session_factory) == []


# --- failures that may pass -------------------------------------------------------------------


def test_handler_failing_twice_succeeds_on_the_third_attempt(
    bus: InMemoryBus,
    processor: Callable[..., MessageProcessor],
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
) -> None:
    bus.publish_event(offboarded("E-1"), SUITE_EVENTS)
    handle = processor({"EmployeeOffboarded": FailingHandler(failures=2)})
    *retries, last = outcomes(bus, handle, max_attempts=5)
    assert retries
    assert set(retries) == {RETRY}
    assert last is HANDLED
    assert disabled_users(session_factory) == ["E-1"]
    assert bus.dead_letters[QUEUE] == []


def test_handler_that_always_fails_is_dead_lettered_after_max_attempts(
    bus: InMemoryBus,
    processor: Callable[..., MessageProcessor],
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
) -> None:
    event = offboarded("E-1")
    bus.publish_event(event, SUITE_EVENTS)
    assert outcomes(bus, processor({"EmployeeOffboarded": FailingHandler()}), max_attempts=3) == [RETRY] * 3
    assert dead_letter_reasons(bus) == ["RuntimeError: database said no"]
    assert disabled_users(session_factory) == []
    assert event.id not in handled_event_ids(session_factory)


def test_failing_message_does_not_undo_the_rest_of_its_batch(
    bus: InMemoryBus,
    processor: Callable[..., MessageProcessor],
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
) -> None:
    failing = FailingHandler()

    def handler(session: Session, event: Event) -> None:
        (failing if event.data["employee_id"] == "E-2" else disable_employee)(session, event)

    events = [offboarded(f"E-{n}") for n in (1, 2, 3)]
    for event in events:
        bus.publish_event(event, SUITE_EVENTS)
    assert outcomes(bus, processor({"EmployeeOffboarded": handler}), max_attempts=1) == [HANDLED, RETRY, HANDLED]
    assert disabled_users(session_factory) == ["E-1", "E-3"]
    assert handled_event_ids(session_factory) == {events[0].id, events[2].id}


# --- correlation ------------------------------------------------------------------------------


def publish_user_disabled(session: Session, event: Event) -> None:
    follow_up = {"user_id": str(uuid.uuid4()), "disabled_at": "2026-12-31T17:00:00Z"}
    outbox.add(session, Event(type="UserDisabled", data=follow_up, orgid=event.orgid, source="identity"))


def outbox_headers(factory: sessionmaker[Session], event_type: str) -> list[Mapping[str, str]]:
    with session_scope(factory) as session:
        return list(session.scalars(select(OutboxMessage.headers).where(OutboxMessage.event_type == event_type)))


def test_events_published_by_a_handler_carry_the_consumed_correlation_id(
    bus: InMemoryBus,
    processor: Callable[..., MessageProcessor],
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
) -> None:
    event = offboarded("E-1")
    bus.queues[QUEUE].append(Delivery(event.to_json(), "hr.EmployeeOffboarded", event.id, {"x-request-id": "req-42"}))
    assert outcomes(bus, processor({"EmployeeOffboarded": publish_user_disabled})) == [HANDLED]
    assert outbox_headers(session_factory, "UserDisabled") == [{"x-request-id": "req-42"}]


def test_correlation_travels_from_outbox_through_relay_to_the_next_outbox(
    bus: InMemoryBus,
    processor: Callable[..., MessageProcessor],
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
) -> None:
    with correlation("req-9"), session_scope(session_factory) as session:
        outbox.add(session, offboarded("E-1"))
    Relay("test", session_factory, bus).relay_once()
    assert outcomes(bus, processor({"EmployeeOffboarded": publish_user_disabled})) == [HANDLED]
    assert outbox_headers(session_factory, "UserDisabled") == [{"x-request-id": "req-9"}]


def test_message_without_correlation_is_correlated_by_its_event_id(
    bus: InMemoryBus,
    processor: Callable[..., MessageProcessor],
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
) -> None:
    event = offboarded("E-1")
    bus.publish_event(event, SUITE_EVENTS)
    outcomes(bus, processor({"EmployeeOffboarded": publish_user_disabled}))
    assert outbox_headers(session_factory, "UserDisabled") == [{"x-request-id": event.id}]


# --- topic matching ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("hr.*", "hr.EmployeeOnboarded", True),
        ("hr.*", "hr", False),
        ("hr.*", "hr.a.b", False),
        ("*.InvoicePaid", "billing.InvoicePaid", True),
        ("*", "billing.InvoicePaid", False),
        ("#", "billing.InvoicePaid", True),
        ("billing.#", "billing", True),
        ("billing.#", "billing.a.b", True),
        ("#.InvoicePaid", "billing.InvoicePaid", True),
        ("billing.InvoicePaid", "billing.InvoicePaid", True),
        ("billing.InvoicePaid", "billing.InvoiceSent", False),
    ],
)
def test_topic_matching_follows_amqp(pattern: str, key: str, expected: bool) -> None:
    assert topic_matches(pattern, key) is expected


def test_a_change_that_fails_only_when_flushed_costs_only_its_own_message(
    bus: InMemoryBus,
    processor: Callable[..., MessageProcessor],
    offboarded: Callable[[str], Event],
    session_factory: sessionmaker[Session],
) -> None:
    def disable_lazily(session: Session, event: Event) -> None:
        # No flush here: a clash with an existing row only surfaces when the batch is written.
        session.add(DisabledUser(user_id=event.data["employee_id"], disabled_at=utcnow()))

    with session_scope(session_factory) as session:
        session.add(DisabledUser(user_id="E-taken", disabled_at=utcnow()))
    for employee_id in ("E-1", "E-taken", "E-2"):
        bus.publish_event(offboarded(employee_id), SUITE_EVENTS)

    first_pass = [
        result.outcome for result in processor({"EmployeeOffboarded": disable_lazily}).process(list(bus.queues[QUEUE]))
    ]

    assert first_pass == [HANDLED, RETRY, HANDLED]
    assert disabled_users(session_factory) == ["E-1", "E-2", "E-taken"]


# --- batch handlers ---------------------------------------------------------------------------


class BatchRecorder:
    """A batch handler that disables each event's employee set-based and notes each call's size;
    ``poison`` names an employee whose presence fails the call."""

    def __init__(self, poison: str | None = None) -> None:
        self.poison = poison
        self.calls: list[list[str]] = []

    def __call__(self, session: Session, events: list[Event]) -> None:
        employees = [event.data["employee_id"] for event in events]
        self.calls.append(employees)
        session.add_all(DisabledUser(user_id=employee, disabled_at=utcnow()) for employee in employees)
        session.flush()
        if self.poison in employees:
            raise RuntimeError(f"{self.poison} is poison")


def batch_processor(
    session_factory: sessionmaker[Session], handler: BatchRecorder, **handlers: Handler
) -> MessageProcessor:
    return MessageProcessor(
        "test", session_factory, handlers, SUITE_EVENTS, batch_handlers={"EmployeeOffboarded": handler}
    )


def test_consecutive_events_of_a_type_go_to_its_batch_handler_together(
    bus: InMemoryBus,
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
) -> None:
    handler = BatchRecorder()
    for n in range(5):
        bus.publish_event(offboarded(f"E-{n}"), SUITE_EVENTS)
    assert outcomes(bus, batch_processor(session_factory, handler)) == [HANDLED] * 5
    assert handler.calls == [[f"E-{n}" for n in range(5)]]
    assert disabled_users(session_factory) == [f"E-{n}" for n in range(5)]


def test_batch_handler_sees_each_event_once_whatever_the_repeats(
    bus: InMemoryBus,
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
) -> None:
    handler = BatchRecorder()
    first, second = offboarded("E-1"), offboarded("E-2")
    for event in (first, second, first, second):
        bus.publish_event(event, SUITE_EVENTS)
    assert outcomes(bus, batch_processor(session_factory, handler)) == [HANDLED, HANDLED, DUPLICATE, DUPLICATE]
    bus.publish_event(first, SUITE_EVENTS)
    assert outcomes(bus, batch_processor(session_factory, handler)) == [DUPLICATE]
    assert handler.calls == [["E-1", "E-2"]]
    assert disabled_users(session_factory) == ["E-1", "E-2"]


def test_an_event_of_another_type_splits_the_run_and_keeps_its_place(
    bus: InMemoryBus,
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
    make_event: Callable[..., Event],
) -> None:
    handler = BatchRecorder()
    order: list[str] = []

    def note_disabled(session: Session, event: Event) -> None:
        order.append(f"disabled after {len(handler.calls)} runs")

    bus.publish_event(offboarded("E-1"), SUITE_EVENTS)
    bus.publish_event(offboarded("E-2"), SUITE_EVENTS)
    bus.publish_event(make_event("UserDisabled"), SUITE_EVENTS)
    bus.publish_event(offboarded("E-3"), SUITE_EVENTS)
    processor = batch_processor(session_factory, handler, UserDisabled=note_disabled)
    assert outcomes(bus, processor) == [HANDLED] * 4
    assert handler.calls == [["E-1", "E-2"], ["E-3"]]
    assert order == ["disabled after 1 runs"]


def interleaved(make_event: Callable[..., Event]) -> list[Event]:
    """Onboardings and offboardings taking turns, then one UserDisabled, then one more of each."""
    kinds = {"EmployeeOnboarded": "E", "EmployeeOffboarded": "X"}
    events = [make_event(kind, employee_id=f"{prefix}-{n}") for n in range(4) for kind, prefix in kinds.items()]
    return [*events[:6], make_event("UserDisabled"), *events[6:]]


def test_a_mixed_runs_handler_gets_interleaved_types_together_in_order(
    bus: InMemoryBus, session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    handler, seen = BatchRecorder(), []
    mixed = MixedRuns(lambda session, events: (seen.append([e.type for e in events]), handler(session, events)))
    for event in interleaved(make_event):
        bus.publish_event(event, SUITE_EVENTS)
    processor = MessageProcessor(
        "test", session_factory, {"UserDisabled": lambda s, e: None}, SUITE_EVENTS,
        batch_handlers={"EmployeeOnboarded": mixed, "EmployeeOffboarded": mixed},
    )  # fmt: skip
    assert outcomes(bus, processor) == [HANDLED] * 9
    assert handler.calls == [["E-0", "X-0", "E-1", "X-1", "E-2", "X-2"], ["E-3", "X-3"]]
    assert seen[1] == ["EmployeeOnboarded", "EmployeeOffboarded"]


def test_a_plain_batch_handler_of_two_types_gets_runs_of_one_type(
    bus: InMemoryBus, session_factory: sessionmaker[Session], make_event: Callable[..., Event]
) -> None:
    handler = BatchRecorder()
    for event in interleaved(make_event)[:4]:
        bus.publish_event(event, SUITE_EVENTS)
    processor = MessageProcessor(
        "test", session_factory, {}, SUITE_EVENTS,
        batch_handlers={"EmployeeOnboarded": handler, "EmployeeOffboarded": handler},
    )  # fmt: skip
    assert outcomes(bus, processor) == [HANDLED] * 4
    assert handler.calls == [["E-0"], ["X-0"], ["E-1"], ["X-1"]]


def test_a_poison_event_in_a_run_costs_only_itself(
    bus: InMemoryBus,
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
) -> None:
    handler = BatchRecorder(poison="E-2")
    events = [offboarded(f"E-{n}") for n in (1, 2, 3)]
    for event in events:
        bus.publish_event(event, SUITE_EVENTS)
    assert outcomes(bus, batch_processor(session_factory, handler), max_attempts=1) == [HANDLED, RETRY, HANDLED]
    assert handler.calls[0] == ["E-1", "E-2", "E-3"]
    assert handler.calls[1:] == [["E-1"], ["E-2"], ["E-3"]]
    assert disabled_users(session_factory) == ["E-1", "E-3"]
    assert handled_event_ids(session_factory) == {events[0].id, events[2].id}
    assert dead_letter_reasons(bus) == ["RuntimeError: E-2 is poison"]


def test_a_clash_found_only_when_the_batch_is_written_is_retried_event_by_event(
    bus: InMemoryBus,
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
) -> None:
    def disable_lazily(session: Session, events: list[Event]) -> None:
        session.add_all(DisabledUser(user_id=event.data["employee_id"], disabled_at=utcnow()) for event in events)

    with session_scope(session_factory) as session:
        session.add(DisabledUser(user_id="E-taken", disabled_at=utcnow()))
    for employee_id in ("E-1", "E-taken", "E-2"):
        bus.publish_event(offboarded(employee_id), SUITE_EVENTS)
    processor = MessageProcessor(
        "test", session_factory, {}, SUITE_EVENTS, batch_handlers={"EmployeeOffboarded": disable_lazily}
    )
    assert [result.outcome for result in processor.process(list(bus.queues[QUEUE]))] == [HANDLED, RETRY, HANDLED]
    assert disabled_users(session_factory) == ["E-1", "E-2", "E-taken"]


def test_a_batch_handler_publishes_each_event_under_its_own_correlation(
    bus: InMemoryBus,
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
) -> None:
    def publish_each(session: Session, events: list[Event]) -> None:
        for event in events:
            with event_correlation(event):
                publish_user_disabled(session, event)

    for n in (1, 2):
        event = offboarded(f"E-{n}")
        bus.queues[QUEUE].append(
            Delivery(event.to_json(), "hr.EmployeeOffboarded", event.id, {"x-request-id": f"r{n}"})
        )
    processor = MessageProcessor(
        "test", session_factory, {}, SUITE_EVENTS, batch_handlers={"EmployeeOffboarded": publish_each}
    )
    assert outcomes(bus, processor) == [HANDLED, HANDLED]
    assert outbox_headers(session_factory, "UserDisabled") == [{"x-request-id": "r1"}, {"x-request-id": "r2"}]


# --- planner statistics -----------------------------------------------------------------------


class RecordingKeeper(StatisticsKeeper):
    """Notes each look at the tables, and whether the batch's writes were there to be seen."""

    def __init__(self) -> None:
        super().__init__(("disabled_users",), lock=1)
        self.looks: list[list[str]] = []

    def refresh(self, session: Session) -> list[str]:
        self.looks.append(list(session.scalars(select(DisabledUser.user_id).order_by(DisabledUser.user_id))))
        return []


@pytest.mark.parametrize("batch_size", [100, 2])
def test_the_tables_are_looked_at_once_per_batch_inside_its_transaction(
    bus: InMemoryBus,
    session_factory: sessionmaker[Session],
    offboarded: Callable[[str], Event],
    batch_size: int,
) -> None:
    keeper = RecordingKeeper()
    handle = MessageProcessor(
        "test", session_factory, {"EmployeeOffboarded": disable_employee}, SUITE_EVENTS, statistics=keeper
    )
    for n in (1, 2, 3):
        bus.publish_event(offboarded(f"E-{n}"), SUITE_EVENTS)
    assert outcomes(bus, handle, batch_size=batch_size) == [HANDLED] * 3
    expected = [["E-1", "E-2", "E-3"]] if batch_size == 100 else [["E-1", "E-2"], ["E-1", "E-2", "E-3"]]
    assert keeper.looks == expected
