"""What an event is about, and the commands a rule's actions make of it, with natural keys.

Natural keys depend only on the fact, never on the event id that carried it, so the same
invoice or employee arriving twice (under any ids) maps to the same keys:

- ``invoice:<invoice_id>:product:<product_id>`` (GrantProduct for an invoice)
- ``<fact>:rule:<rule_id>:training:cycle:<n>`` (an event's AssignMandatoryTraining: one command
  naming all the rule's courses and programs, e.g. ``employee:E-1:rule:<rule_id>:training:cycle:1``;
  ``n`` is the employment: 1 for the first start date, 2 for a rehire)
- ``user:<user_id>:rule:<rule_id>:course:<course_id>:cycle:<n>`` (a recertification cycle: one
  command per course, since each course's cycles count on their own)
- ``<fact>:revoke:<product_id>``, ``<fact>:program:<program_id>:member``,
  ``<fact>:rule:<rule_id>:webhook:<position>``

People are addressed as the event names them: by ``email`` for the outside facts
(InvoicePaid, EmployeeOnboarded/Offboarded), by ``user_id`` for the suite's own facts. Commands
never depend on whether identity has provisioned the user yet, so they are the same whatever
the order of identity's and automation's handling (enrollment holds a command for an unknown
email until identity's UserProvisioned for that email arrives).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from lms_common.envelope import Event

COMMAND_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-4c55-9d0e-8a1b2c3d4e5f")


@dataclass(frozen=True)
class Subject:
    """The fact an event states (its stable key), the person it is about, and its date."""

    fact: str
    person: dict[str, str] | None
    on: date
    employee_id: str | None = None


@dataclass(frozen=True)
class Step:
    """One effect to have: a command for the bus, or a webhook call (``webhook`` set)."""

    kind: str
    natural_key: str
    data: dict[str, Any]
    webhook: dict[str, Any] | None = None


def command_id(org: str, natural_key: str) -> str:
    """The command's event id, derived from its natural key: a repeat is a duplicate on the bus too."""
    return str(uuid.uuid5(COMMAND_NAMESPACE, f"{org}|{natural_key}"))


def _day(value: Any, default: date) -> date:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return default


def subject_of(event: Event) -> Subject:
    """What the event is about: each trigger names its fact and its person its own way."""
    data, today = event.data, event.time.date()
    kind = event.type
    if kind == "InvoicePaid":
        return Subject(f"invoice:{data['invoice_id']}", {"email": data["buyer"]["email"]}, _day(data["paid_at"], today))
    if kind in ("EmployeeOnboarded", "EmployeeOffboarded"):
        on = _day(data.get("start_date") or data.get("last_day") or today, today)
        return Subject(f"employee:{data['employee_id']}", {"email": data["email"]}, on, data["employee_id"])
    if kind == "DailyTick":
        return Subject(f"tick:{data['date']}", None, _day(data["date"], today))
    return _suite_subject(event, today)


def _suite_subject(event: Event, today: date) -> Subject:
    data = event.data
    person = {"user_id": data["user_id"]} if data.get("user_id") else None
    user = f"user:{data.get('user_id')}"
    if event.type == "CourseCompleted":
        fact = f"{user}:course-completed:{data.get('course_id')}:{data.get('completed_at')}"
    elif event.type == "ProgramCompleted":
        fact = f"{user}:program-completed:{data.get('program_id')}:{data.get('completed_at')}"
    elif event.type == "AssignmentOverdue":
        fact = f"assignment:{data.get('assignment_id')}:overdue"
    elif event.type == "UserProvisioned":
        fact = user
    else:  # a trigger added later: the event id is the only key we can trust
        fact = f"event:{event.id}"
    return Subject(fact, person, _day(data.get("completed_at") or data.get("overdue_since") or today, today))


def _cause(event: Event, rule_id: str | None) -> dict[str, Any]:
    return {"source_event_id": event.id, "source_event_type": event.type, "rule_id": rule_id}


def _need_person(subject: Subject) -> dict[str, str]:
    if subject.person is None:
        raise ValueError(f"the event ({subject.fact}) names nobody to act on")
    return subject.person


def grant(subject: Subject, event: Event, rule_id: str | None, product_id: str, **extra: Any) -> Step:
    key = f"{subject.fact}:product:{product_id}"
    data = {"natural_key": key, "product_id": product_id, "owner": _need_person(subject), **extra}
    return Step("GrantProduct", key, {**data, **_cause(event, rule_id)})


def revoke(subject: Subject, event: Event, rule_id: str | None, product_id: str) -> Step:
    key = f"{subject.fact}:revoke:{product_id}"
    data = {"natural_key": key, "product_id": product_id, "owner": _need_person(subject)}
    return Step("RevokeProduct", key, {**data, **_cause(event, rule_id)})


def enroll(subject: Subject, event: Event, rule_id: str | None, program_id: str) -> Step:
    key = f"{subject.fact}:program:{program_id}:member"
    data = {"natural_key": key, "program_id": program_id, "person": _need_person(subject)}
    return Step("EnrollInProgram", key, {**data, **_cause(event, rule_id)})


@dataclass(frozen=True)
class Targets:
    """The courses and programs one AssignMandatoryTraining names, each once, in the rule's order."""

    course_ids: tuple[str, ...] = ()
    program_ids: tuple[str, ...] = ()

    @classmethod
    def of(cls, action: Mapping[str, Any]) -> Targets:
        courses, programs = action.get("course_ids", []), action.get("program_ids", [])
        return cls(tuple(dict.fromkeys(courses)), tuple(dict.fromkeys(programs)))

    def __bool__(self) -> bool:
        return bool(self.course_ids or self.program_ids)


def assign(
    event: Event,
    rule_id: str,
    person: dict[str, str],
    targets: Targets,
    *,
    key: str,
    due_on: date,
    cycle: int,
    mandatory: bool,
    employee_id: str | None = None,
) -> Step:
    """One AssignMandatoryTraining of some courses and programs, in one cycle, under ``key``."""
    data = {
        "natural_key": key,
        "person": person,
        "course_ids": list(targets.course_ids),
        "program_ids": list(targets.program_ids),
        "due_on": due_on.isoformat(),
        "mandatory": mandatory,
        "cycle": cycle,
        "employee_id": employee_id,
        **_cause(event, rule_id),
    }
    return Step("AssignMandatoryTraining", key, data)


def training(subject: Subject, event: Event, rule_id: str, action: Mapping[str, Any], *, cycle: int = 1) -> list[Step]:
    """An event-triggered AssignMandatoryTraining: one command naming every course and program
    of the rule (enrollment carries its targets out as it did one command per target), so an
    onboarding costs one command per rule, not one per course, all along the pipeline."""
    person = _need_person(subject)
    targets = Targets.of(action)
    if not targets:  # rules name at least one; a command naming nothing would have no effect
        return []
    step = assign(
        event,
        rule_id,
        person,
        targets,
        key=f"{subject.fact}:rule:{rule_id}:training:cycle:{cycle}",
        due_on=subject.on + timedelta(days=action["due_in_days"]),
        cycle=cycle,
        mandatory=action.get("mandatory", True),
        employee_id=subject.employee_id,
    )
    return [step]


def recertify(
    event: Event, rule_id: str, user_id: str, course_id: str, *, due_on: date, cycle: int, mandatory: bool
) -> Step:
    """One course assigned again to one user: a command per course, as each course has its own cycles."""
    key = f"user:{user_id}:rule:{rule_id}:course:{course_id}:cycle:{cycle}"
    targets = Targets(course_ids=(course_id,))
    return assign(
        event, rule_id, {"user_id": user_id}, targets, key=key, due_on=due_on, cycle=cycle, mandatory=mandatory
    )


def webhook(subject: Subject, event: Event, rule: Mapping[str, Any], position: int, action: Mapping[str, Any]) -> Step:
    key = f"{subject.fact}:rule:{rule['id']}:webhook:{position}"
    body = {"rule_id": rule["id"], "rule_name": rule["name"], "natural_key": key, "event": event.to_dict()}
    options = {name: action[name] for name in ("url", "secret", "timeout_seconds", "max_attempts")}
    return Step("CallWebhook", key, body, webhook=options)


def invoice_grants(event: Event) -> list[Step]:
    """CONTRACT section 4: each line's product to the buyer; seats and invitees make a purchaser."""
    subject = subject_of(event)
    invitees = list(dict.fromkeys(email.strip().lower() for email in event.data.get("invitees") or []))
    steps = []
    for line in event.data["lines"]:
        extra: dict[str, Any] = {}
        if line["quantity"] > 1 or invitees:
            extra = {"seats": line["quantity"], "invitees": invitees}
        steps.append(grant(subject, event, None, line["product_id"], **extra))
    return steps
