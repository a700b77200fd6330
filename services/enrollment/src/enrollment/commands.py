"""Automation's commands (GrantProduct, RevokeProduct, AssignMandatoryTraining, EnrollInProgram).

Each natural key is carried out once (``command_keys``). A command addressed to an email no
user has yet is parked in ``pending_commands`` and carried out when UserProvisioned for that
email arrives; a UserProvisioned that came first put the user in the replica, so the command
finds it. Either order has the same single effect. So does a person's command (training,
program membership) for a disabled user: a rehired employee's training can arrive before
identity's UserEnabled, and waits for the UserProvisioned that follows it. The consumer hands
over a batch's consecutive commands of one type together (:func:`handle`). An
AssignMandatoryTraining naming several courses and programs has the outcome of a command per
target (:func:`_parts`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from enrollment import assignments, bulk, grants, purchases, replica
from enrollment.models import CommandKey, PendingCommand
from lms_common.db import insert_rows, is_postgres, new_id, utcnow
from lms_common.envelope import Event

Runner = Callable[[Session, str, Mapping[str, Any], Mapping[str, str]], None]


# The arrays in binary, as the inbox sends its own.
_CLAIM_ARRAYS = """INSERT INTO command_keys (org_id, natural_key, command, done_at)
    SELECT given.org_id, given.natural_key, given.command, %(now)s
    FROM unnest(%(orgs)b::varchar[], %(keys)b::varchar[], %(commands)b::varchar[])
        AS given(org_id, natural_key, command)
    ON CONFLICT (org_id, natural_key) DO NOTHING
    RETURNING org_id, natural_key
"""


def first_times(session: Session, keys: Sequence[tuple[str, str, str]]) -> set[tuple[str, str]]:
    """Claim many (org, natural key, command) at once; the (org, natural key) claimed now.

    On PostgreSQL the keys go as arrays in the driver's own SQL (as the inbox records a batch):
    the same statement for every batch, where binding a row of parameters per command cost a
    twentieth of the worker's CPU in an onboarding burst."""
    if not keys:
        return set()
    unique = list(dict.fromkeys(keys))
    if is_postgres(session):
        orgs, natural_keys, commands = (list(column) for column in zip(*unique, strict=True))
        parameters = {"now": utcnow(), "orgs": orgs, "keys": natural_keys, "commands": commands}
        claimed = session.connection().exec_driver_sql(_CLAIM_ARRAYS, parameters)
        return {(org, key) for org, key in claimed}
    table = cast(Table, CommandKey.__table__)
    statement = sqlite.insert(table).on_conflict_do_nothing().returning(table.c.org_id, table.c.natural_key)
    rows = [{"org_id": org, "natural_key": key, "command": command} for org, key, command in unique]
    return {(org, key) for org, key in session.execute(statement, rows)}


def _assign(session: Session, org: str, data: Mapping[str, Any], person: Mapping[str, str]) -> None:
    users = assignments.users_query(org, [person["user_id"]], None, None)
    for courses, programs in _parts(data):
        items = assignments.items_for(session, {org}, courses, programs)
        assignments.assign(
            session, org, users, items, due_on=date.fromisoformat(data["due_on"]), mandatory=data["mandatory"],
            cycle=data.get("cycle"), natural_key=data["natural_key"], cause="automation",
        )  # fmt: skip


def _parts(data: Mapping[str, Any]) -> list[tuple[list[str], list[str]]]:
    """An AssignMandatoryTraining's targets in the order they are carried out: its courses, then
    its programs. So a command naming several has the outcome of a command per target, courses
    first, as automation sent them before: an assignment of one of a program's courses enrolls
    in it before the program does (the enrollment's first source), and a set-based assignment
    joins its programs before it enrolls in its courses."""
    courses, programs = list(dict.fromkeys(data["course_ids"])), list(dict.fromkeys(data["program_ids"]))
    parts: list[tuple[list[str], list[str]]] = []
    if courses:
        parts.append((courses, []))
    if programs:
        parts.append(([], programs))
    return parts


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
    all the users it names; GrantProduct set-based but for unusual grants (:mod:`purchases`).
    A run's look-ups go through their indexes (:func:`bulk.by_index_for_a_run`): a burst of
    purchases grows the tables faster than their statistics follow."""
    with bulk.by_index_for_a_run(session, events):
        _carry_out(session, events)


def _carry_out(session: Session, events: list[Event]) -> None:
    resolved: list[purchases.Command] = []
    parked: list[dict[str, Any]] = []
    firsts = _first_times(session, events)
    field = RUNNERS[events[0].type][0] if events else "person"
    emails = [event.data[field]["email"] for event in firsts if "email" in event.data[field]]
    found = replica.users_by_email(session, emails)
    for event in firsts:
        address = event.data[field]
        if "email" in address:
            user = replica.pick_user(found.get(address["email"].lower(), []), event.orgid)
            if user is None or (field == "person" and user.disabled_at is not None):
                parked.append(_parked(event, address["email"].lower()))
                continue
            address = {"user_id": user.id}
        resolved.append((event.orgid, event.data, address))
    if parked:  # an onboarding's training reaches enrollment before its employee does
        insert_rows(session, PendingCommand.__table__, parked)
    if events and events[0].type == "AssignMandatoryTraining":
        assign_all(session, resolved)
        return
    if events and events[0].type == "GrantProduct":
        purchases.grant_all(session, resolved)
        return
    for org, data, address in resolved:
        RUNNERS[events[0].type][1](session, org, data, address)


def _parked(event: Event, email: str) -> dict[str, Any]:
    """The row of a command waiting for the user with ``email``."""
    return {"id": new_id(), "org_id": event.orgid, "email": email, "command": event.type,
            "payload": dict(event.data), "created_at": utcnow()}  # fmt: skip


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


def assign_all(session: Session, resolved: Sequence[purchases.Command]) -> None:
    """AssignMandatoryTraining for resolved people (organization, payload, {"user_id"}), in
    order, set-based: the outcome of carrying them out one after the other."""
    for round_ in _rounds(resolved):
        org, due_on, mandatory, cycle = round_.kind
        items = assignments.items_for(session, {org}, list(round_.courses), round_.programs)
        assignments.assign(
            session, org, _command_pairs(round_.pairs), items, due_on=date.fromisoformat(due_on),
            mandatory=mandatory, cycle=cycle, cause="automation",
        )  # fmt: skip


ROUND = 400  # (user, target) pairs per set-based assignment


@dataclass
class _Round:
    """The (user, target) pairs of one set-based assignment, each with its command's natural key."""

    kind: tuple[str, str, bool, int | None]  # org, due_on, mandatory, cycle
    courses: dict[str, None] = field(default_factory=dict)
    programs: list[str] = field(default_factory=list)
    pairs: dict[tuple[str, str], str] = field(default_factory=dict)

    def takes(self, kind: tuple[str, str, bool, int | None], courses: list[str], programs: list[str]) -> bool:
        """Whether a command fits: same kind, room left, and its programs joined in its own
        order (a round joins its programs one after the other, in the order it lists them)."""
        if self.kind != kind or (self.pairs and len(self.pairs) + len(courses) + len(programs) > ROUND):
            return False
        listed = self.programs + [program for program in programs if program not in self.programs]
        return [program for program in listed if program in programs] == programs

    def add(self, user: str, courses: list[str], programs: list[str], natural_key: str) -> None:
        self.courses.update(dict.fromkeys(courses))
        self.programs += [program for program in programs if program not in self.programs]
        self.pairs.update({(user, target): natural_key for target in courses + programs})


def _rounds(resolved: Sequence[purchases.Command]) -> list[_Round]:
    """The rounds that carry out the commands, in order: one per (org, due_on, mandatory, cycle)
    unless a user's commands must follow one another.

    A command's courses and its programs are two parts (:func:`_parts`), the second after the
    first. A part goes to a round after those of the same user's earlier parts it depends on:
    one naming a target of it (which sees what the earlier one assigned), and, either of them
    naming a program, any (a program and a course or another program may open the same
    enrollment, whose first source is the one carried out first; a round joins programs before
    it enrolls in courses). Every other pair of a user is independent of the others, and users
    of each other, so a batch gets the rows and events of its commands one after the other.
    """
    rounds: list[_Round] = []
    earlier: dict[str, list[tuple[int, set[str], bool]]] = {}  # user -> (round, targets, names a program)
    for org, data, person in resolved:
        user = person["user_id"]
        kind = (org, data["due_on"], data["mandatory"], data.get("cycle"))
        for courses, programs in _parts(data):  # a command naming nothing gets no round (nor empty pairs)
            index = _round_for(rounds, earlier.get(user, []), kind, courses, programs)
            rounds[index].add(user, courses, programs, data["natural_key"])
            earlier.setdefault(user, []).append((index, set(courses + programs), bool(programs)))
    return rounds


def _round_for(
    rounds: list[_Round],
    earlier: list[tuple[int, set[str], bool]],
    kind: tuple[str, str, bool, int | None],
    courses: list[str],
    programs: list[str],
) -> int:
    """The first round after the user's ``earlier`` parts this one depends on that takes it; a
    new round at the end when none does."""
    targets = set(courses + programs)
    after = [n for n, named, program in earlier if program or programs or named & targets]
    start = max(after, default=-1) + 1
    index = next((n for n in range(start, len(rounds)) if rounds[n].takes(kind, courses, programs)), None)
    if index is None:
        rounds.append(_Round(kind))
        return len(rounds) - 1
    return index


def _command_pairs(pairs: dict[tuple[str, str], str]) -> assignments.CommandPairs:
    """A round's (user, target) pairs, each with its command's natural key."""
    return assignments.CommandPairs([(user, target, key) for (user, target), key in pairs.items()])
