"""Evaluating rules against an event: a Run per rule, its effects through the outbox.

Each rule runs in a savepoint: a rule that fails is recorded as a failed run and takes nothing
else down. Each effect is written to the ``effects`` ledger under its natural key first; a key
already there is a duplicate and emits nothing, so an event redelivered or the same fact under
a new event id has one effect. A unique-key race between two workers is not a rule failure: it
propagates, the message is handled again, and the second time the key is a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from automation import commands, metrics, recertification
from automation.commands import Step, Subject
from automation.models import Effect, Employment, OrgSettings, Rule, Run, SourceEvent, WebhookDelivery
from automation.rules import PERSON_ACTIONS, TRIGGERS, matches
from lms_common import outbox
from lms_common.db import new_id, utcnow
from lms_common.envelope import Event, from_dict

log = structlog.get_logger("automation.evaluation")

SOURCE = "/automation"
DEFAULT_INVOICE = "default:invoice_paid_grants"
SUCCEEDED, DUPLICATE, NOT_MATCHED, FAILED = "succeeded", "duplicate", "not_matched", "failed"
EMITTED = "emitted"  # a step's outcome when its command (or webhook call) is new
RUN_STATUSES = (SUCCEEDED, DUPLICATE, NOT_MATCHED, FAILED)

Planner = Callable[[Session, Event], list[Step]]


def evaluate_event(session: Session, event: Event) -> list[Run]:
    """Every default behaviour and enabled rule of the event's organization, in creation order."""
    keep_event(session, event)
    runs = []
    if event.type == "InvoicePaid" and invoice_grants_enabled(session, event.orgid):
        runs.append(run_once(session, event, DEFAULT_INVOICE, None, lambda s, e: commands.invoice_grants(e)))
    for rule in enabled_rules(session, event.orgid, event.type):
        runs.append(run_once(session, event, rule.id, rule.id, rule_planner(rule)))
    return [run for run in runs if run is not None]


def keep_event(session: Session, event: Event) -> None:
    if session.get(SourceEvent, event.id) is None:
        session.add(SourceEvent(event_id=event.id, org_id=event.orgid, event_type=event.type, body=event.to_dict()))


def invoice_grants_enabled(session: Session, org: str) -> bool:
    settings = session.get(OrgSettings, org)
    return settings is None or settings.invoice_paid_grants


def enabled_rules(session: Session, org: str, trigger: str) -> list[Rule]:
    query = select(Rule).where(Rule.org_id == org, Rule.trigger == trigger, Rule.enabled.is_(True))
    return list(session.scalars(query.order_by(Rule.created_at, Rule.id)))


def run_once(session: Session, event: Event, rule_key: str, rule_id: str | None, planner: Planner) -> Run | None:
    """One evaluation per (rule, event): a run that exists already is left alone."""
    existing = session.scalar(
        select(Run).where(Run.org_id == event.orgid, Run.rule_key == rule_key, Run.event_id == event.id)
    )
    if existing is not None:
        return None
    run = Run(id=new_id(), org_id=event.orgid, rule_id=rule_id, rule_key=rule_key, event_id=event.id)
    run.event_type, run.attempts, run.actions, run.status = event.type, 0, [], FAILED
    session.add(run)
    return execute(session, run, event, planner)


def execute(session: Session, run: Run, event: Event, planner: Planner) -> Run:
    """Plan and apply the run's effects in a savepoint; a failure is recorded, not raised."""
    run.attempts += 1
    run.updated_at = utcnow()
    try:
        with session.begin_nested():
            steps = planner(session, event)
            run.matched = bool(steps)
            outcomes = [apply(session, run, event, step) for step in steps]
    except IntegrityError:
        raise
    except Exception as exc:
        log.warning("rule run failed", rule=run.rule_key, event_id=event.id, error=repr(exc))
        run.status, run.error = FAILED, f"{type(exc).__name__}: {exc}"[:2000]
    else:
        run.actions, run.error = outcomes, None
        run.status = run_status(run.matched, outcomes)
    metrics.RULE_RUNS.labels(trigger_label(event.type), run.status).inc()
    return run


def run_status(matched: bool, outcomes: list[dict[str, Any]]) -> str:
    """A run's status from its outcomes: all duplicates is a duplicate run."""
    if not matched:
        return NOT_MATCHED
    if outcomes and all(outcome["status"] == DUPLICATE for outcome in outcomes):
        return DUPLICATE
    return SUCCEEDED


def trigger_label(event_type: str) -> str:
    return event_type if event_type in TRIGGERS else "other"


def rule_planner(rule: Rule) -> Planner:
    """The steps a rule takes for an event: none unless every condition holds."""
    snapshot = rule_snapshot(rule)

    def plan(session: Session, event: Event) -> list[Step]:
        def plan_one(subject: Subject, position: int, action: Mapping[str, Any]) -> list[Step]:
            return plan_action(session, event, subject, snapshot, position=position, action=action)

        return rule_steps(snapshot, event, plan_one)

    return plan


def rule_snapshot(rule: Rule) -> dict[str, Any]:
    """What planning reads of a rule, taken once (the row may change while a run is planned)."""
    return {"id": rule.id, "name": rule.name, "conditions": rule.conditions, "actions": rule.actions}


ActionPlanner = Callable[[Subject, int, Mapping[str, Any]], list[Step]]


def rule_steps(rule: Mapping[str, Any], event: Event, plan_one: ActionPlanner) -> list[Step]:
    """A matching rule's steps, action by action; a matching rule with none does ``Nothing``."""
    if not matches(rule["conditions"], event.data):
        return []
    subject = commands.subject_of(event)
    steps: list[Step] = []
    for position, action in enumerate(rule["actions"]):
        steps.extend(plan_one(subject, position, action))
    return steps or [Step("Nothing", "", {})]


def plan_action(
    session: Session,
    event: Event,
    subject: Subject,
    rule: Mapping[str, Any],
    *,
    position: int,
    action: Mapping[str, Any],
) -> list[Step]:
    if not needs_database(action):
        return plan_command(event, subject, rule["id"], action, cycle=lambda: employment_cycle(session, event, subject))
    if action["type"] == "CallWebhook":
        return [commands.webhook(subject, event, rule, position, action)]
    return recertification.plan(session, event, rule["id"], subject.on, action)


def needs_database(action: Mapping[str, Any]) -> bool:
    """Whether planning the action reads or writes more than the event and the employments:
    a webhook call (a delivery row) or a recertification (completions, past cycles)."""
    kind = action["type"]
    return kind == "CallWebhook" or (kind not in PERSON_ACTIONS and bool(action.get("every_months")))


def plan_command(
    event: Event, subject: Subject, rule_id: str, action: Mapping[str, Any], *, cycle: Callable[[], int]
) -> list[Step]:
    """The commands of an action addressed to the event's person; ``cycle`` is asked only for
    training, since it opens an employment."""
    kind = action["type"]
    if kind == "GrantProduct":
        return [commands.grant(subject, event, rule_id, p) for p in action["product_ids"]]
    if kind == "RevokeProduct":
        return [commands.revoke(subject, event, rule_id, p) for p in action["product_ids"]]
    if kind == "EnrollInProgram":
        return [commands.enroll(subject, event, rule_id, p) for p in action["program_ids"]]
    return commands.training(subject, event, rule_id, action, cycle=cycle())


def onboarded_employee(event: Event, subject: Subject) -> str | None:
    """The employee whose employment an onboarding's training counts in; None: always cycle 1."""
    return subject.employee_id if event.type == "EmployeeOnboarded" else None


def employment_cycle(session: Session, event: Event, subject: Subject) -> int:
    """The employment an onboarding starts: 1 for the first start date, 2 for a rehire, and so on.

    The start date is the employment's natural key, so the same onboarding under any event id
    keeps its cycle (and its training's natural keys).
    """
    employee = onboarded_employee(event, subject)
    if employee is None:
        return 1
    known = session.get(Employment, (event.orgid, employee, subject.on))
    if known is not None:
        return known.cycle
    mine = (Employment.org_id == event.orgid, Employment.employee_id == employee)
    last = session.scalar(select(func.max(Employment.cycle)).where(*mine)) or 0
    session.add(Employment(org_id=event.orgid, employee_id=employee, start_date=subject.on, cycle=last + 1))
    session.flush()  # a concurrent worker's row for the same start date is a unique-key race: handled again
    return last + 1


def apply(session: Session, run: Run, event: Event, step: Step) -> dict[str, Any]:
    """Write one effect under its natural key, unless the key has had its effect already."""
    if step.kind == "Nothing":
        return outcome(step, SUCCEEDED)
    if session.get(Effect, (event.orgid, step.natural_key)) is not None:
        metrics.COMMANDS.labels(step.kind, DUPLICATE).inc()
        return outcome(step, DUPLICATE)
    effect_id = commands.command_id(event.orgid, step.natural_key)
    session.add(
        Effect(org_id=event.orgid, natural_key=step.natural_key, kind=step.kind, command_id=effect_id, run_id=run.id)
    )
    session.flush()
    if step.webhook is not None:
        session.add(_delivery(run, event.orgid, effect_id, step))
    else:
        outbox.add(session, command_event(event, step, effect_id))
    metrics.COMMANDS.labels(step.kind, EMITTED).inc()
    return outcome(step, EMITTED, effect_id)


def outcome(step: Step, status: str, command_id: str | None = None) -> dict[str, Any]:
    """What a run records of one step (``Nothing`` has no key)."""
    if step.kind == "Nothing":
        return {"type": "Nothing", "status": SUCCEEDED}
    shown = {"type": step.kind, "natural_key": step.natural_key, "status": status}
    return shown if command_id is None else {**shown, "command_id": command_id}


def command_event(event: Event, step: Step, command_id: str) -> Event:
    """The command a step sends, in the organization of the event that caused it."""
    return Event(type=step.kind, data=step.data, orgid=event.orgid, source=SOURCE, id=command_id)


def _delivery(run: Run, org: str, delivery_id: str, step: Step) -> WebhookDelivery:
    options = step.webhook or {}
    return WebhookDelivery(
        id=delivery_id,
        org_id=org,
        run_id=run.id,
        natural_key=step.natural_key,
        url=options["url"],
        secret=options["secret"],
        body=step.data,
        timeout_seconds=options["timeout_seconds"],
        max_attempts=options["max_attempts"],
    )


def retry(session: Session, run: Run) -> Run:
    """Evaluate a failed run again, against the stored event and the rule as it is now."""
    stored = session.get(SourceEvent, run.event_id)
    if stored is None:
        raise LookupError("the run's event is no longer kept")
    event = from_dict(stored.body)
    if run.rule_key == DEFAULT_INVOICE:
        return execute(session, run, event, lambda s, e: commands.invoice_grants(e))
    rule = session.get(Rule, run.rule_id) if run.rule_id else None
    if rule is None:
        raise LookupError("the run's rule was deleted")
    return execute(session, run, event, rule_planner(rule))
