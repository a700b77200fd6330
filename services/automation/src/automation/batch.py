"""Evaluating a batch of trigger events set-based, with the outcome of evaluating them one by one.

:func:`evaluation.evaluate_event` costs eight statements or more per event. Here the batch's
rules, organization settings, kept events, runs and employments are read once; each event is
planned in memory, in delivery order, so an employee onboarded, offboarded and onboarded again
in one batch gets the cycles it would get event by event. The effects already had under the
planned natural keys are then read at once, and source events, runs, employments, effects and
commands are written with one multi-row insert per table.

An event this path does not cover is evaluated by :func:`evaluation.evaluate_event` at its
place, once the events before it are written: one whose rules call a webhook or recertify
(their planning reads and writes more tables), and one whose planning fails (its failed run is
recorded by the per-event path, error and all). A batch of one goes the per-event way too: the
runtime hands each event over alone when it handles a failed batch again, so a poison message
is retried or dead-lettered by itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from typing import Any, TypeVar

import structlog
from sqlalchemy import Select, and_, select, tuple_
from sqlalchemy.orm import Session

from automation import commands, evaluation, metrics, sending
from automation.commands import Step, Subject
from automation.evaluation import DEFAULT_INVOICE, DUPLICATE, EMITTED
from automation.models import Effect, Employment, OrgSettings, Rule, Run, SourceEvent
from automation.rules import DAILY_TICK, TRIGGERS
from automation.sending import Checked
from lms_common.db import insert_rows, is_postgres, new_id, unnested, utcnow
from lms_common.envelope import Event
from lms_common.processing import correlation_of, event_correlation
from lms_common.statistics import StatisticsKeeper

log = structlog.get_logger("automation.batch")

# What a batch's lookups join besides the few rules and settings (see load): kept analyzed as
# they grow, so the joins stay index probes (35 ms and 891 pages for the runs of 100
# onboardings at 10,034 runs when never analyzed).
KEEPER = StatisticsKeeper(("runs", "effects", "employments", "source_events"), lock=0x4155544F)  # "AUTO"

# The daily tick recertifies and CourseCompleted keeps a replica first: both stay per event.
SET_BASED_TRIGGERS = tuple(trigger for trigger in TRIGGERS if trigger not in (DAILY_TICK, "CourseCompleted"))

EmploymentKey = tuple[str, str, date]  # (org, employee, start date)
AnySelect = TypeVar("AnySelect", bound=Select[*tuple[Any, ...]])


@dataclass
class PlannedRun:
    """One rule's (or default behaviour's) steps for one event, each with its command."""

    rule_key: str
    rule_id: str | None
    steps: list[tuple[Step, Checked | None]]  # ``Nothing`` has no command; each command checked when planned


@dataclass
class PlannedEvent:
    event: Event
    runs: list[PlannedRun]
    kept: bool  # its source event is stored already
    employments: dict[EmploymentKey, int]  # the employments its training opened, with their cycles


@dataclass
class Employments:
    """The batch's employees' employments as they stand after the events planned so far."""

    cycles: dict[EmploymentKey, int]
    last_cycle: dict[tuple[str, str], int]
    opened: dict[EmploymentKey, int] = field(default_factory=dict)

    def cycle(self, event: Event, subject: Subject) -> int:
        """What :func:`evaluation.employment_cycle` answers, from memory."""
        employee = evaluation.onboarded_employee(event, subject)
        if employee is None:
            return 1
        key = (event.orgid, employee, subject.on)
        if key not in self.cycles:
            self.cycles[key] = self.last_cycle[key[:2]] = self.last_cycle.get(key[:2], 0) + 1
            self.opened[key] = self.cycles[key]
        return self.cycles[key]

    def take_opened(self) -> dict[EmploymentKey, int]:
        opened, self.opened = self.opened, {}
        return opened


@dataclass
class Known:
    """What the batch reads before planning: one query per table."""

    rules: dict[tuple[str, str], list[dict[str, Any]]]  # (org, trigger) -> rule snapshots in order
    invoice_grants_off: set[str]
    kept: set[str]
    runs: set[tuple[str, str, str]]  # (org, rule key, event id)
    employments: Employments


def evaluate_batch(session: Session, events: list[Event]) -> None:
    """Evaluate the events in order: together where this path covers them, else one by one."""
    metrics.BATCH_EVENTS.observe(len(events))
    rest = events
    while len(rest) > 1:
        planned, rest = plan_until_unusual(session, rest)
        write(session, planned)
        metrics.EVALUATIONS.labels("set_based", "batch").inc(len(planned))
        if rest:
            log.debug("evaluated alone", event_id=rest[0].id, event_type=rest[0].type)
            evaluate_alone(session, rest[0], reason="not_covered")
            rest = rest[1:]
    for event in rest:
        evaluate_alone(session, event, reason="single")


def evaluate_alone(session: Session, event: Event, *, reason: str) -> None:
    """The per-event path, under the event's own correlation id (its commands carry it)."""
    metrics.EVALUATIONS.labels("alone", reason).inc()
    with event_correlation(event):
        evaluation.evaluate_event(session, event)


def plan_until_unusual(session: Session, events: list[Event]) -> tuple[list[PlannedEvent], list[Event]]:
    """Plan events in order up to the first one this path does not cover; returns the planned
    events and the rest, that one first."""
    known = load(session, events)
    planned: list[PlannedEvent] = []
    for index, event in enumerate(events):
        runs = plan_event(known, event)
        if runs is None:
            return planned, events[index:]
        employments = known.employments.take_opened()
        planned.append(PlannedEvent(event, runs, event.id in known.kept, employments))
    return planned, []


# --- reading ----------------------------------------------------------------------------------


def load(session: Session, events: list[Event]) -> Known:
    orgs = {event.orgid for event in events}
    ids = [event.id for event in events]
    rules = enabled_rules(session, orgs, {event.type for event in events})
    rule_keys = [DEFAULT_INVOICE] + [rule["id"] for org_rules in rules.values() for rule in org_rules]
    return Known(
        rules=rules,
        invoice_grants_off=_invoice_grants_off(session, orgs) if _any(events, "InvoicePaid") else set(),
        kept=set(session.scalars(select(SourceEvent.event_id).where(SourceEvent.event_id.in_(ids)))),
        runs=_runs(session, events, rule_keys),
        employments=_employments(session, events) if rules else Employments({}, {}),
    )


def _any(events: list[Event], event_type: str) -> bool:
    return any(event.type == event_type for event in events)


def enabled_rules(session: Session, orgs: set[str], triggers: set[str]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Every enabled rule of these organizations and triggers, in creation order."""
    query = select(Rule).where(Rule.org_id.in_(orgs), Rule.trigger.in_(triggers), Rule.enabled.is_(True))
    rules: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rule in session.scalars(query.order_by(Rule.created_at, Rule.id)):
        rules.setdefault((rule.org_id, rule.trigger), []).append(evaluation.rule_snapshot(rule))
    return rules


def _invoice_grants_off(session: Session, orgs: set[str]) -> set[str]:
    query = select(OrgSettings.org_id).where(OrgSettings.org_id.in_(orgs), OrgSettings.invoice_paid_grants.is_(False))
    return set(session.scalars(query))


def _runs(session: Session, events: list[Event], rule_keys: list[str]) -> set[tuple[str, str, str]]:
    """Runs already made for these events, looked up by their unique key."""
    keys = [(event.orgid, rule_key, event.id) for event in events for rule_key in rule_keys]
    query = among(session, select(Run.org_id, Run.rule_key, Run.event_id), keys)
    return {(org, rule_key, event_id) for org, rule_key, event_id in session.execute(query)}


def among(session: Session, query: AnySelect, keys: list[tuple[Any, ...]]) -> AnySelect:
    """``query`` narrowed to rows whose selected columns equal one of ``keys``.

    On PostgreSQL the keys are joined as unnested arrays (:func:`lms_common.db.unnested`), probed
    one by one in the index of those columns. An IN list per column lets the planner, whenever
    statistics lag behind the table (a burst of onboardings grows it faster than autovacuum
    analyzes it), read the index by the organization alone and filter every row of the
    organization: a cost that grows with the table.
    """
    columns = list(query.selected_columns)
    if not is_postgres(session):  # SQLite plans row values by the index as well
        return query.where(tuple_(*columns).in_(keys))
    wanted = unnested("wanted", [(f"k{n}", c.type) for n, c in enumerate(columns)], keys)
    return query.join(wanted, and_(*(c == wanted.c[f"k{n}"] for n, c in enumerate(columns))))


def _employments(session: Session, events: list[Event]) -> Employments:
    onboarded = [event for event in events if event.type == "EmployeeOnboarded"]
    employees = {str(event.data["employee_id"]) for event in onboarded}
    if not employees:
        return Employments({}, {})
    people = sorted({(event.orgid, str(event.data["employee_id"])) for event in onboarded})
    query = among(session, select(Employment.org_id, Employment.employee_id), people).add_columns(
        Employment.start_date, Employment.cycle
    )
    cycles: dict[EmploymentKey, int] = {}
    last_cycle: dict[tuple[str, str], int] = {}
    for org, employee, start_date, cycle in session.execute(query):
        cycles[(org, employee, start_date)] = cycle
        last_cycle[(org, employee)] = max(last_cycle.get((org, employee), 0), cycle)
    return Employments(cycles, last_cycle)


# --- planning ---------------------------------------------------------------------------------


def plan_event(known: Known, event: Event) -> list[PlannedRun] | None:
    """The event's runs as :func:`evaluation.evaluate_event` would make them, or None when this
    path does not cover the event."""
    rules = known.rules.get((event.orgid, event.type), [])
    if any(evaluation.needs_database(action) for rule in rules for action in rule["actions"]):
        return None
    planned = []
    for rule_key, rule_id, plan in _planners(known, event, rules):
        if (event.orgid, rule_key, event.id) in known.runs:
            continue  # evaluated before: left alone, as run_once does
        try:
            commands_of = [(step, evaluation.checked_command(event, step)) for step in plan()]
            planned.append(PlannedRun(rule_key, rule_id, commands_of))
        except Exception:  # a command breaking its contract too: recorded as a failed run by the per-event path
            return None
    return planned


def _planners(
    known: Known, event: Event, rules: list[dict[str, Any]]
) -> Iterable[tuple[str, str | None, Callable[[], list[Step]]]]:
    """(rule key, rule id, planner) in the per-event path's order: the default behaviour first."""
    if event.type == "InvoicePaid" and event.orgid not in known.invoice_grants_off:
        yield DEFAULT_INVOICE, None, partial(commands.invoice_grants, event)
    for rule in rules:
        yield rule["id"], rule["id"], partial(_rule_steps, known, event, rule)


def _rule_steps(known: Known, event: Event, rule: dict[str, Any]) -> list[Step]:
    def plan_one(subject: Subject, _position: int, action: Any) -> list[Step]:
        cycle = lambda: known.employments.cycle(event, subject)  # noqa: E731 - asked only for training
        return evaluation.plan_command(event, subject, rule["id"], action, cycle=cycle)

    return evaluation.rule_steps(rule, event, plan_one)


# --- writing ----------------------------------------------------------------------------------


@dataclass
class Rows:
    """The batch's rows per table, and the effect keys had so far (stored or in this batch)."""

    had: set[tuple[str, str]]
    source_events: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    employments: list[dict[str, Any]] = field(default_factory=list)
    effects: list[dict[str, Any]] = field(default_factory=list)
    commands: list[tuple[Checked, str]] = field(default_factory=list)  # with the request id of their cause


def write(session: Session, planned: list[PlannedEvent]) -> None:
    """Decide each step's outcome in order, then write every table with one insert."""
    if not planned:
        return
    rows = Rows(had=stored_effects(session, planned))
    now = utcnow()
    for item in planned:
        _event_rows(rows, item, now)
    for model, table_rows in (
        (SourceEvent, rows.source_events),
        (Run, rows.runs),
        (Employment, rows.employments),
        (Effect, rows.effects),
    ):
        insert_rows(session, model.__table__, table_rows)
    sending.send(session, [command for command, _ in rows.commands], request_ids=[cause for _, cause in rows.commands])


def stored_effects(session: Session, planned: list[PlannedEvent]) -> set[tuple[str, str]]:
    """The planned (org, natural key) pairs that have had their effect already."""
    wanted = {
        (item.event.orgid, step.natural_key)
        for item in planned
        for run in item.runs
        for step, command in run.steps
        if command is not None
    }
    if not wanted:
        return set()
    query = among(session, select(Effect.org_id, Effect.natural_key), sorted(wanted))
    return {(org, key) for org, key in session.execute(query)}


def _event_rows(rows: Rows, item: PlannedEvent, now: datetime) -> None:
    event = item.event
    if not item.kept and item.runs:  # kept for its runs' retries, as evaluation.evaluate_event
        body = event.to_dict()
        rows.source_events.append(
            {"event_id": event.id, "org_id": event.orgid, "event_type": event.type, "body": body, "received_at": now}
        )
    for (org, employee, start_date), cycle in item.employments.items():
        rows.employments.append(
            {"org_id": org, "employee_id": employee, "start_date": start_date, "cycle": cycle, "created_at": now}
        )
    correlation_id = correlation_of(event)
    for run in item.runs:
        _run_rows(rows, event, run, now, correlation_id)


def _run_rows(rows: Rows, event: Event, run: PlannedRun, now: datetime, correlation_id: str) -> None:
    run_id, outcomes = new_id(), []
    for step, command in run.steps:
        if command is None:
            outcomes.append(evaluation.outcome(step, evaluation.SUCCEEDED))
        elif (event.orgid, step.natural_key) in rows.had:
            metrics.COMMANDS.labels(step.kind, DUPLICATE).inc()
            outcomes.append(evaluation.outcome(step, DUPLICATE))
        else:
            rows.had.add((event.orgid, step.natural_key))
            rows.effects.append(_effect_row(event.orgid, step, command.id, run_id, now))
            rows.commands.append((command, correlation_id))
            metrics.COMMANDS.labels(step.kind, EMITTED).inc()
            outcomes.append(evaluation.outcome(step, EMITTED, command.id))
    matched = bool(run.steps)
    status = evaluation.run_status(matched, outcomes)
    rows.runs.append({
        "id": run_id, "org_id": event.orgid, "rule_id": run.rule_id, "rule_key": run.rule_key,
        "event_id": event.id, "event_type": event.type, "matched": matched, "status": status,
        "actions": outcomes, "error": None, "attempts": 1, "created_at": now, "updated_at": now,
    })  # fmt: skip
    metrics.RULE_RUNS.labels(evaluation.trigger_label(event.type), status).inc()


def _effect_row(org: str, step: Step, command_id: str, run_id: str, now: datetime) -> dict[str, Any]:
    return {
        "org_id": org,
        "natural_key": step.natural_key,
        "kind": step.kind,
        "command_id": command_id,
        "run_id": run_id,
        "created_at": now,
    }
