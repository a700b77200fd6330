"""Automation's commands (GrantProduct, RevokeProduct, AssignMandatoryTraining, EnrollInProgram).

Each natural key is carried out once (``command_keys``). A command addressed to an email no
user has yet is parked in ``pending_commands`` and carried out when UserProvisioned for that
email arrives; a UserProvisioned that came first put the user in the replica, so the command
finds it. Either order has the same single effect. So does a person's command (training,
program membership) for a disabled user: a rehired employee's training can arrive before
identity's UserEnabled, and waits for the UserProvisioned that follows it. The consumer hands
over a batch's consecutive commands of one type together (:func:`handle`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import String, column, literal, select, union_all, values
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from enrollment import assignments, grants, purchases, replica
from enrollment.models import CommandKey, PendingCommand, User
from lms_common.db import is_postgres
from lms_common.envelope import Event

Runner = Callable[[Session, str, Mapping[str, Any], Mapping[str, str]], None]


def first_times(session: Session, keys: Sequence[tuple[str, str, str]]) -> set[tuple[str, str]]:
    """Claim many (org, natural key, command) at once; the (org, natural key) claimed now."""
    if not keys:
        return set()
    dialect = postgresql if is_postgres(session) else sqlite
    table = CommandKey.__table__
    statement = dialect.insert(table).on_conflict_do_nothing().returning(table.c.org_id, table.c.natural_key)
    rows = [{"org_id": org, "natural_key": key, "command": command} for org, key, command in dict.fromkeys(keys)]
    return {(org, key) for org, key in session.execute(statement, rows)}


def _assign(session: Session, org: str, data: Mapping[str, Any], person: Mapping[str, str]) -> None:
    items = assignments.items_for(session, {org}, list(data["course_ids"]), list(data["program_ids"]))
    users = assignments.users_query(org, [person["user_id"]], None, None)
    assignments.assign(
        session, org, users, items, due_on=date.fromisoformat(data["due_on"]), mandatory=data["mandatory"],
        cycle=data.get("cycle"), natural_key=data["natural_key"], cause="automation",
    )  # fmt: skip


def _enroll_in_program(session: Session, org: str, data: Mapping[str, Any], person: Mapping[str, str]) -> None:
    users = assignments.users_query(org, [person["user_id"]], None, None)
    assignments.add_members(session, org, users, data["program_id"], cause="automation")


RUNNERS: dict[str, tuple[str, Runner]] = {
    "GrantProduct": ("owner", grants.grant_command),
    "RevokeProduct": ("owner", grants.revoke_command),
    "AssignMandatoryTraining": ("person", _assign),
    "EnrollInProgram": ("person", _enroll_in_program),
}


def resolve_pending(session: Session, org: str, email: str, user_id: str) -> None:
    """Carry out the commands that waited for this email."""
    query = select(PendingCommand).where(PendingCommand.email == email.lower(), PendingCommand.org_id == org)
    for pending in session.scalars(query.order_by(PendingCommand.created_at).with_for_update()):
        _, runner = RUNNERS[pending.command]
        runner(session, org, pending.payload, {"user_id": user_id})
        session.delete(pending)


def handle(session: Session, events: list[Event]) -> None:
    """Commands of one type (one, or a run of them in a batch): the natural keys claimed and
    the addressees found in one statement each, then carried out as one command after the
    other would be; AssignMandatoryTraining set-based, one assignment per kind of command for
    all the users it names; GrantProduct set-based but for unusual grants (:mod:`purchases`)."""
    resolved: list[tuple[Event, dict[str, str]]] = []
    firsts = _first_times(session, events)
    field = RUNNERS[events[0].type][0] if events else "person"
    emails = [event.data[field]["email"] for event in firsts if "email" in event.data[field]]
    found = replica.users_by_email(session, emails)
    for event in firsts:
        address = event.data[field]
        if "email" in address:
            user = replica.pick_user(found.get(address["email"].lower(), []), event.orgid)
            if user is None or (field == "person" and user.disabled_at is not None):
                email = address["email"].lower()
                session.add(
                    PendingCommand(org_id=event.orgid, email=email, command=event.type, payload=dict(event.data))
                )
                continue
            address = {"user_id": user.id}
        resolved.append((event, address))
    if events and events[0].type == "AssignMandatoryTraining":
        _assign_all(session, resolved)
        return
    if events and events[0].type == "GrantProduct":
        purchases.grant_all(session, [(event.orgid, event.data, owner) for event, owner in resolved])
        return
    for event, address in resolved:
        RUNNERS[event.type][1](session, event.orgid, event.data, address)


def _first_times(session: Session, events: list[Event]) -> list[Event]:
    """The events whose natural key is claimed now; a repeat later in the batch is left out."""
    claimed = first_times(session, [(event.orgid, event.data["natural_key"], event.type) for event in events])
    firsts = []
    for event in events:
        key = (event.orgid, event.data["natural_key"])
        if key in claimed:
            claimed.discard(key)
            firsts.append(event)
    return firsts


def _assign_all(session: Session, resolved: list[tuple[Event, dict[str, str]]]) -> None:
    rounds: dict[tuple[Any, ...], list[dict[str, str]]] = {}
    for event, person in resolved:
        data = event.data
        kind = (event.orgid, tuple(data["course_ids"]), tuple(data["program_ids"]), data["due_on"], data["mandatory"],
                data.get("cycle"))  # fmt: skip
        _add_to_round(rounds.setdefault(kind, []), person["user_id"], data["natural_key"])
    for (org, course_ids, program_ids, due_on, mandatory, cycle), groups in rounds.items():
        items = assignments.items_for(session, {org}, list(course_ids), list(program_ids))
        for group in groups:
            assignments.assign(
                session, org, _users_with_keys(session, org, group), items, due_on=date.fromisoformat(due_on),
                mandatory=mandatory, cycle=cycle, cause="automation",
            )  # fmt: skip


ROUND = 400  # users per set-based assignment


def _add_to_round(rounds: list[dict[str, str]], user_id: str, natural_key: str) -> None:
    """A user named twice goes to a later round, which sees what the earlier one assigned."""
    for group in rounds:
        if len(group) < ROUND and user_id not in group:
            group[user_id] = natural_key
            return
    rounds.append({user_id: natural_key})


def _users_with_keys(session: Session, org: str, group: dict[str, str]) -> Any:
    """The org's active users of ``group``, each with the natural key of its command."""
    keyed: Any
    if is_postgres(session):
        keyed = values(column("user_id", String), column("natural_key", String), name="keyed").data(list(group.items()))
    else:  # SQLite has no VALUES with column names (and at most 500 terms in a compound select)
        rows = (
            select(literal(user, String).label("user_id"), literal(key, String).label("natural_key"))
            for user, key in group.items()
        )
        keyed = union_all(*rows).subquery("keyed")
    users = assignments.users_query(org, None, None, None).add_columns(keyed.c.natural_key)
    return users.join(keyed, keyed.c.user_id == User.id)
