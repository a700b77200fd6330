"""Automation's commands (GrantProduct, RevokeProduct, AssignMandatoryTraining, EnrollInProgram).

Each natural key is carried out once (``command_keys``). A command addressed to an email no
user has yet is parked in ``pending_commands`` and carried out when UserProvisioned for that
email arrives; a UserProvisioned that came first put the user in the replica, so the command
finds it. Either order has the same single effect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from enrollment import assignments, grants, replica
from enrollment.models import CommandKey, PendingCommand
from lms_common.db import is_postgres

Runner = Callable[[Session, str, Mapping[str, Any], Mapping[str, str]], None]


def first_time(session: Session, org: str, natural_key: str, command: str) -> bool:
    """Claim the natural key; False when it was already claimed (a repeat has no effect)."""
    dialect = postgresql if is_postgres(session) else sqlite
    statement = (
        dialect.insert(CommandKey)
        .values(org_id=org, natural_key=natural_key, command=command)
        .on_conflict_do_nothing()
        .returning(CommandKey.natural_key)
    )
    return session.scalar(statement) is not None


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


def handle(session: Session, command: str, org: str, data: Mapping[str, Any]) -> None:
    """Carry out a command once per natural key, now or when its addressee is provisioned."""
    if not first_time(session, org, data["natural_key"], command):
        return
    field, runner = RUNNERS[command]
    address = data[field]
    if "email" in address:
        user = replica.find_user_by_email(session, org, address["email"])
        if user is None:
            session.add(PendingCommand(org_id=org, email=address["email"].lower(), command=command, payload=dict(data)))
            return
        address = {"user_id": user.id}
    runner(session, org, data, address)


def resolve_pending(session: Session, org: str, email: str, user_id: str) -> None:
    """Carry out the commands that waited for this email."""
    query = select(PendingCommand).where(PendingCommand.email == email.lower(), PendingCommand.org_id == org)
    for pending in session.scalars(query.order_by(PendingCommand.created_at).with_for_update()):
        _, runner = RUNNERS[pending.command]
        runner(session, org, pending.payload, {"user_id": user_id})
        session.delete(pending)
