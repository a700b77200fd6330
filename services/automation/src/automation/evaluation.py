"""Evaluating rules against an event: a Run per rule, its effects through the outbox.

A rule that fails is recorded as a failed run and takes nothing else down. A run is planned,
its commands checked against their contracts and the effects it had already read before any of
its effects is written, and the run is written once, in its final state. So a run whose
planning only reads (the default invoice grants, and most rules) fails before it writes
anything and needs no savepoint; one whose planning writes (an onboarding's employment, a
recertification's state) or that calls a webhook runs in a savepoint that takes a failure's
writes back. Each effect is written to the ``effects`` ledger under its natural key; a key
already there is a duplicate and emits nothing, so an event redelivered or the same fact under
a new event id has one effect. A unique-key race between two workers is not a rule failure: it
propagates, the message is handled again, and the second time the key is a duplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import String, and_, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from automation import commands, metrics, recertification, sending
from automation.commands import Step, Subject
from automation.models import Effect, Employment, OrgSettings, Rule, Run, SourceEvent, WebhookDelivery
from automation.rules import PERSON_ACTIONS, TRIGGERS, matches
from automation.sending import Checked
from lms_common.db import is_postgres, new_id, utcnow
from lms_common.envelope import Event, from_dict

log = structlog.get_logger("automation.evaluation")

SOURCE = "/automation"
DEFAULT_INVOICE = "default:invoice_paid_grants"
SUCCEEDED, DUPLICATE, NOT_MATCHED, FAILED = "succeeded", "duplicate", "not_matched", "failed"
EMITTED = "emitted"  # a step's outcome when its command (or webhook call) is new
RUN_STATUSES = (SUCCEEDED, DUPLICATE, NOT_MATCHED, FAILED)

Planner = Callable[[Session, Event], list[Step]]


@dataclass(frozen=True)
class Evaluation:
    """A default behaviour or a rule, as a run evaluates it against an event."""

    rule_key: str
    rule_id: str | None
    plan: Planner
    isolated: bool  # in a savepoint: its planning writes, or it calls a webhook


def evaluate_event(session: Session, event: Event) -> list[Run]:
    """Every default behaviour and enabled rule of the event's organization, in creation order.

    The event is kept for its runs' retries; one that no rule or default evaluates has no run
    to retry (identity's UserProvisioned, where no rule is triggered by it) and is not kept.
    """
    todo = evaluations(session, event)
    if not todo:
        return []
    keep_event(session, event)
    done = evaluated(session, event, [item.rule_key for item in todo])
    return [run_once(session, event, item) for item in todo if item.rule_key not in done]


def keep_event(session: Session, event: Event) -> None:
    """Store the event (a retry evaluates it again), unless it is stored already: one statement."""
    dialect = postgresql if is_postgres(session) else sqlite
    row = {"event_id": event.id, "org_id": event.orgid, "event_type": event.type, "body": event.to_dict()}
    session.execute(dialect.insert(SourceEvent).values(received_at=utcnow(), **row).on_conflict_do_nothing())


def evaluations(session: Session, event: Event) -> list[Evaluation]:
    grants_on, enabled = settings_and_rules(session, event.orgid, event.type)
    rules = [rule_evaluation(rule, event) for rule in enabled]
    return [invoice_evaluation(), *rules] if event.type == "InvoicePaid" and grants_on else rules


def settings_and_rules(session: Session, org: str, trigger: str) -> tuple[bool, list[Rule]]:
    """Whether the organization grants what its invoices sell (:func:`invoice_grants_enabled`)
    and its enabled rules for the trigger, in creation order: one read, on every event's path."""
    anchor = select(literal(org, String).label("org_id")).subquery("org")
    query = (
        select(OrgSettings.invoice_paid_grants, Rule)
        .select_from(anchor)
        .outerjoin(OrgSettings, OrgSettings.org_id == anchor.c.org_id)
        .outerjoin(Rule, and_(Rule.org_id == anchor.c.org_id, Rule.trigger == trigger, Rule.enabled.is_(True)))
        .order_by(Rule.created_at, Rule.id)
    )
    rows = session.execute(query).all()  # at least the organization's own row
    return rows[0][0] is not False, [rule for _, rule in rows if rule is not None]


def invoice_grants_enabled(session: Session, org: str) -> bool:
    settings = session.get(OrgSettings, org)
    return settings is None or settings.invoice_paid_grants


def evaluated(session: Session, event: Event, rule_keys: list[str]) -> set[str]:
    """Those of the rule keys that have a run for the event already: one lookup for them all."""
    if not rule_keys:
        return set()
    mine = (Run.org_id == event.orgid, Run.event_id == event.id)
    return set(session.scalars(select(Run.rule_key).where(*mine, Run.rule_key.in_(rule_keys))))


def invoice_evaluation() -> Evaluation:
    """CONTRACT section 4's default: planned from the event alone."""
    return Evaluation(DEFAULT_INVOICE, None, lambda _session, event: commands.invoice_grants(event), isolated=False)


def rule_evaluation(rule: Rule, event: Event) -> Evaluation:
    snapshot = rule_snapshot(rule)
    try:
        isolated = not plans_in_memory(snapshot, event)
    except (KeyError, TypeError, AttributeError):  # a malformed action fails its run when planned, not the event
        isolated = True
    return Evaluation(rule.id, rule.id, rule_planner(snapshot), isolated=isolated)


def plans_in_memory(rule: Mapping[str, Any], event: Event) -> bool:
    """Whether planning the rule only reads, and its steps are all commands: no webhook call or
    recertification (see :func:`needs_database`), no employment opened by an onboarding."""
    actions = rule["actions"]
    if any(needs_database(action) for action in actions):
        return False
    return event.type != "EmployeeOnboarded" or all(action["type"] in PERSON_ACTIONS for action in actions)


def run_once(session: Session, event: Event, evaluation: Evaluation) -> Run:
    """The one run of a rule (or default behaviour) for an event, written in its final state."""
    run = Run(id=new_id(), org_id=event.orgid, rule_id=evaluation.rule_id, rule_key=evaluation.rule_key)
    run.event_id, run.event_type, run.attempts, run.matched, run.actions = event.id, event.type, 0, False, []
    execute(session, run, event, evaluation)
    session.add(run)
    return run


def execute(session: Session, run: Run, event: Event, evaluation: Evaluation) -> Run:
    """Plan and apply the run's effects; a failure is recorded, not raised."""
    try:
        with _savepoint(session, evaluation.isolated):
            steps = evaluation.plan(session, event)
            outcomes = apply(session, run, event, steps)
    except IntegrityError:
        raise
    except Exception as exc:
        log.warning("rule run failed", rule=run.rule_key, event_id=event.id, error=repr(exc))
        run.status, run.error = FAILED, f"{type(exc).__name__}: {exc}"[:2000]
    else:
        run.matched, run.actions, run.error = bool(steps), outcomes, None
        run.status = run_status(run.matched, outcomes)
    run.attempts, run.updated_at = run.attempts + 1, utcnow()  # after the savepoint: a retried run is updated once
    metrics.RULE_RUNS.labels(trigger_label(event.type), run.status).inc()
    return run


def _savepoint(session: Session, isolated: bool) -> AbstractContextManager[Any]:
    return session.begin_nested() if isolated else nullcontext()


def run_status(matched: bool, outcomes: list[dict[str, Any]]) -> str:
    """A run's status from its outcomes: all duplicates is a duplicate run."""
    if not matched:
        return NOT_MATCHED
    if outcomes and all(outcome["status"] == DUPLICATE for outcome in outcomes):
        return DUPLICATE
    return SUCCEEDED


def trigger_label(event_type: str) -> str:
    return event_type if event_type in TRIGGERS else "other"


def rule_planner(snapshot: Mapping[str, Any]) -> Planner:
    """The steps a rule takes for an event: none unless every condition holds."""

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


def apply(session: Session, run: Run, event: Event, steps: list[Step]) -> list[dict[str, Any]]:
    """Write each step's effect under its natural key, unless the key has had its effect already.

    Every command is checked and every key looked up before the first write, so a command that
    breaks its contract fails the run with nothing written.
    """
    planned = [(step, checked_command(event, step)) for step in steps]
    had = effects_had(session, event.orgid, [step.natural_key for step in steps if step.kind != "Nothing"])
    outcomes, sent = [], []
    for step, command in planned:
        if step.kind == "Nothing":
            outcomes.append(outcome(step, SUCCEEDED))
            continue
        if step.natural_key in had:  # stored, or an earlier step of this run
            metrics.COMMANDS.labels(step.kind, DUPLICATE).inc()
            outcomes.append(outcome(step, DUPLICATE))
            continue
        had.add(step.natural_key)
        effect_id = commands.command_id(event.orgid, step.natural_key)
        session.add(Effect(org_id=event.orgid, natural_key=step.natural_key, kind=step.kind, command_id=effect_id,
                           run_id=run.id))  # fmt: skip
        if command is None:
            session.add(_delivery(run, event.orgid, effect_id, step))
        else:
            sent.append(command)
        metrics.COMMANDS.labels(step.kind, EMITTED).inc()
        outcomes.append(outcome(step, EMITTED, effect_id))
    sending.send(session, sent)
    return outcomes


def effects_had(session: Session, org: str, natural_keys: Iterable[str]) -> set[str]:
    """Those of the natural keys that have had their effect: one lookup for a run's steps."""
    wanted = set(natural_keys)
    if not wanted:
        return set()
    query = select(Effect.natural_key).where(Effect.org_id == org, Effect.natural_key.in_(sorted(wanted)))
    return set(session.scalars(query))


def checked_command(event: Event, step: Step) -> Checked | None:
    """The command a step sends, checked against its contract; None for ``Nothing`` and for a
    webhook call (a delivery row, not a command)."""
    if step.kind == "Nothing" or step.webhook is not None:
        return None
    return sending.check(command_event(event, step, commands.command_id(event.orgid, step.natural_key)))


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
        return execute(session, run, event, invoice_evaluation())
    rule = session.get(Rule, run.rule_id) if run.rule_id else None
    if rule is None:
        raise LookupError("the run's rule was deleted")
    return execute(session, run, event, rule_evaluation(rule, event))
