"""Automation's use cases behind the API: rules, default behaviours and runs.

Every function takes the unit of work's session and the caller's organization; every lookup is
filtered by it, so another tenant's id answers 404.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from automation import evaluation, replica
from automation.models import OrgSettings, Rule, Run
from automation.rules import DAILY_TICK, PERSON_ACTIONS, TRIGGERS
from lms_common.db import utcnow
from lms_common.errors import Conflict, NotFound, Unprocessable

RULE_FIELDS = ("name", "trigger", "conditions", "actions", "enabled")


# --- rules ------------------------------------------------------------------------------------


def get_rule(session: Session, org: str, rule_id: str, *, lock: bool = False) -> Rule:
    rule = session.get(Rule, rule_id, with_for_update=lock or None)
    if rule is None or rule.org_id != org:
        raise NotFound(f"no rule {rule_id}", code="not_found")
    return rule


def rule_query(org: str, trigger: str | None, enabled: bool | None) -> Select[Any]:
    query = select(Rule).where(Rule.org_id == org)
    if trigger:
        query = query.where(Rule.trigger == trigger)
    if enabled is not None:
        query = query.where(Rule.enabled.is_(enabled))
    return query


def create_rule(session: Session, org: str, author: str, body: Mapping[str, Any]) -> Rule:
    """Save a rule once its trigger, actions and the catalog items they name are valid here."""
    validate_rule(session, org, body)
    rule = Rule(org_id=org, created_by=author, **{name: body[name] for name in RULE_FIELDS})
    session.add(rule)
    session.flush()
    return rule


def update_rule(session: Session, org: str, rule_id: str, changes: Mapping[str, Any]) -> Rule:
    """Change some of a rule's fields; the rule as changed is validated whole."""
    rule = get_rule(session, org, rule_id, lock=True)
    merged = {name: changes.get(name, getattr(rule, name)) for name in RULE_FIELDS}
    validate_rule(session, org, merged)
    for name in RULE_FIELDS:
        setattr(rule, name, merged[name])
    rule.version += 1
    rule.updated_at = utcnow()
    return rule


def delete_rule(session: Session, org: str, rule_id: str) -> None:
    """Delete a rule; its runs stay as history."""
    session.delete(get_rule(session, org, rule_id, lock=True))


def validate_rule(session: Session, org: str, rule: Mapping[str, Any]) -> None:
    """422 for an unknown trigger, an action the trigger cannot carry out, or unknown items."""
    if rule["trigger"] not in TRIGGERS:
        raise Unprocessable(
            f"unknown trigger {rule['trigger']!r}; one of {', '.join(TRIGGERS)}",
            code="unknown_trigger",
            errors={"trigger": [f"one of {', '.join(TRIGGERS)}"]},
        )
    for position, action in enumerate(rule["actions"]):
        _check_fits_trigger(rule["trigger"], position, action)
        _check_items_exist(session, org, position, action)


def _check_fits_trigger(trigger: str, position: int, action: Mapping[str, Any]) -> None:
    kind, problem = action["type"], None
    recertifies = bool(action.get("every_months"))
    if trigger == DAILY_TICK and kind in PERSON_ACTIONS:
        problem = f"{kind} needs a person; the daily tick names nobody"
    elif trigger == DAILY_TICK and kind == "AssignMandatoryTraining" and not recertifies:
        problem = "on the daily tick, AssignMandatoryTraining recertifies: give every_months"
    elif recertifies and trigger != DAILY_TICK:
        problem = "every_months (recertification) runs on the DailyTick trigger only"
    elif recertifies and action.get("program_ids"):
        problem = "recertification re-assigns courses; program_ids are not taken"
    if problem:
        raise Unprocessable(problem, code="action_not_allowed", errors={"actions": {str(position): [problem]}})


def _check_items_exist(session: Session, org: str, position: int, action: Mapping[str, Any]) -> None:
    for kind in (replica.PRODUCT, replica.COURSE, replica.PROGRAM):
        unknown = replica.unknown_items(session, org, kind, action.get(f"{kind}_ids", []))
        if unknown:
            raise Unprocessable(
                f"no {kind} {', '.join(unknown)} in this organization",
                code=f"unknown_{kind}s",
                errors={"actions": {str(position): {f"{kind}_ids": unknown}}},
            )


# --- default behaviours -----------------------------------------------------------------------


def get_defaults(session: Session, org: str) -> dict[str, bool]:
    return {"invoice_paid_grants": evaluation.invoice_grants_enabled(session, org)}


def set_defaults(session: Session, org: str, values: Mapping[str, bool]) -> dict[str, bool]:
    """Switch default behaviours on or off for the organization."""
    settings = session.get(OrgSettings, org, with_for_update=True)
    if settings is None:
        settings = OrgSettings(org_id=org)
        session.add(settings)
    settings.invoice_paid_grants = values["invoice_paid_grants"]
    settings.updated_at = utcnow()
    return get_defaults(session, org)


# --- runs -------------------------------------------------------------------------------------


def run_query(org: str, rule_id: str | None, status: str | None, event_id: str | None) -> Select[Any]:
    query = select(Run).where(Run.org_id == org)
    for column, value in ((Run.rule_id, rule_id), (Run.status, status), (Run.event_id, event_id)):
        if value:
            query = query.where(column == value)
    return query


def get_run(session: Session, org: str, run_id: str, *, lock: bool = False) -> Run:
    run = session.get(Run, run_id, with_for_update=lock or None)
    if run is None or run.org_id != org:
        raise NotFound(f"no run {run_id}", code="not_found")
    return run


def retry_run(session: Session, org: str, run_id: str) -> Run:
    """Evaluate a failed run again; effects it had already are duplicates, not repeats."""
    run = get_run(session, org, run_id, lock=True)
    if run.status != evaluation.FAILED:
        raise Conflict(f"run {run_id} is {run.status}; only failed runs are retried", code="run_not_failed")
    try:
        return evaluation.retry(session, run)
    except LookupError as exc:
        raise Conflict(str(exc), code="run_not_retryable") from exc
