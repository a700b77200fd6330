"""The purchase path a batch at a time: automation's GrantProduct commands and identity's
UserProvisioned events for the buyers.

A paid invoice makes identity provision the buyer and automation send GrantProduct for each
product bought, so enrollment sees both at hundreds per second. The common case (a user granted
a product it does not hold yet; a user provisioned with only such grants waiting for its email)
is written set-based: products, existing grants, waiting commands and users are read once per
run, grants, enrollments and their events inserted together. Anything else (a company grant, a
purchase of seats, reopening a revoked grant; seats or other commands waiting for the email, a
user provisioned twice in one batch) is carried out alone by the one-at-a-time use case, in its
place: the run stops there and starts again after it, so the outcome is that of one event after
the other whatever the mix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from enrollment import grants, learning, replica
from enrollment.events import event
from enrollment.models import ACTIVE, Course, Grant, PendingCommand, Product, ProductCourse, SeatHolder
from lms_common.contracts import enrollment as contract
from lms_common.db import is_postgres, new_id, unnested, utcnow
from lms_common.envelope import Event

# GrantProduct's organization, payload and resolved owner ({"user_id"} or {"organization_id"}).
Command = tuple[str, Mapping[str, Any], Mapping[str, str]]
GrantKey = tuple[str, str, str]  # organization, product, owner key: one grant each
Address = tuple[str, str]  # organization, lower-case email: what a waiting command names

# --- GrantProduct ---------------------------------------------------------------------------------


def grant_all(session: Session, commands: Sequence[Command]) -> None:
    """Carry out GrantProduct commands in order: runs of plain grants set-based, others alone."""
    rest = list(commands)
    while rest:
        fresh, rest = _plain_run(rest, _grants_held(session, rest))
        _grant_fresh(session, fresh)
        if rest:
            grants.grant_command(session, *rest[0])
            rest = rest[1:]


def _grant_key(command: Command) -> GrantKey:
    org, data, owner = command
    return org, data["product_id"], grants.owner_key(owner.get("user_id"), owner.get("organization_id"))


def _grants_held(session: Session, commands: Sequence[Command]) -> dict[GrantKey, str]:
    """The status of each existing grant the commands name, locked as :func:`grants.grant` locks it."""
    keys = sorted({_grant_key(command) for command in commands})  # rows locked in one order
    columns = (Grant.org_id, Grant.product_id, Grant.owner_key, Grant.status)
    if is_postgres(session):
        # One probe of the unique key per grant. As lists of ids, a planner that believes the
        # table small keeps (org_id, product_id) as the index condition and filters every
        # grant of the product by owner.
        wanted = unnested("wanted", [("org_id", String()), ("product_id", String()), ("owner_key", String())], keys)
        query = select(*columns).join(
            wanted,
            and_(
                Grant.org_id == wanted.c.org_id,
                Grant.product_id == wanted.c.product_id,
                Grant.owner_key == wanted.c.owner_key,
            ),
        )
        held = session.execute(query.with_for_update(of=Grant))
    else:
        owners, products = {owner for _, _, owner in keys}, {product for _, product, _ in keys}
        query = select(*columns).where(Grant.owner_key.in_(owners), Grant.product_id.in_(products))
        held = session.execute(query.with_for_update())
    named = set(keys)
    return {(org, product, owner): status for org, product, owner, status in held if (org, product, owner) in named}


def _plain_run(commands: list[Command], held: Mapping[GrantKey, str]) -> tuple[list[Command], list[Command]]:
    """The leading commands that at most make a user a new grant, without those that have no
    effect (the grant exists and is active, or an earlier command of the run makes it); and
    the rest, from the first command that must be carried out alone."""
    fresh: list[Command] = []
    seen: set[GrantKey] = set()
    for i, command in enumerate(commands):
        key = _grant_key(command)
        if "user_id" not in command[2] or grants.is_purchase(command[1]) or held.get(key, ACTIVE) != ACTIVE:
            return fresh, commands[i:]
        if key not in held and key not in seen:
            fresh.append(command)
            seen.add(key)
    return fresh, []


def _grant_fresh(session: Session, commands: list[Command]) -> None:
    if not commands:
        return
    sold = _products_sold(session, {data["product_id"] for _, data, _ in commands})
    for round_ in _rounds(commands):
        _grant_round(session, round_, sold)


@dataclass(frozen=True)
class Sold:
    """The products a run of grants names, each one's courses in order, and their titles."""

    products: dict[str, Product] = field(default_factory=dict)
    courses: dict[str, list[str]] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)


def _products_sold(session: Session, product_ids: set[str]) -> Sold:
    """One read: the ProductGranted events need the products and their courses, the
    EnrollmentCreated events the courses' titles."""
    query = (
        select(Product, ProductCourse.course_id, Course.title)
        .outerjoin(ProductCourse, ProductCourse.product_id == Product.id)
        .outerjoin(Course, Course.id == ProductCourse.course_id)
        .where(Product.id.in_(product_ids))
        .order_by(Product.id, ProductCourse.position)
    )
    sold = Sold()
    for product, course_id, title in session.execute(query):
        sold.products[product.id] = product
        if course_id is not None:
            sold.courses.setdefault(product.id, []).append(course_id)
            if title is not None:
                sold.titles[course_id] = title
    return sold


def _rounds(commands: list[Command]) -> list[list[Command]]:
    """The commands in rounds naming each user once, in order: a user's enrollments then come
    from its grants in the order they were made (the first grant is an enrollment's first source)."""
    rounds: list[list[Command]] = []
    depth: dict[str, int] = {}
    for command in commands:
        user_id = command[2]["user_id"]
        depth[user_id] = depth.get(user_id, -1) + 1
        if depth[user_id] == len(rounds):
            rounds.append([])
        rounds[depth[user_id]].append(command)
    return rounds


def _grant_round(session: Session, commands: list[Command], sold: Sold) -> None:
    """New grants for distinct users: rows, ProductGranted, and the enrollments active products
    open, with their events after the grants' in one insert."""
    now = utcnow()
    rows = [_grant_row(org, data["product_id"], owner["user_id"], now) for org, data, owner in commands]
    made = _insert_new(session, rows)
    granted = [(Grant(**row), data) for row, (_, data, _) in zip(rows, commands, strict=True) if row["id"] in made]
    announced = [
        _product_granted(row, sold.products.get(row.product_id), sold.courses.get(row.product_id, []), data, now)
        for row, data in granted
    ]
    active = [row for row, _ in granted if _active(sold.products.get(row.product_id))]
    opening = [(row, sold.courses.get(row.product_id, [])) for row in active]
    learning.open_new_grants(session, opening, announced=announced, titles=sold.titles)


def _grant_row(org: str, product_id: str, user_id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": new_id(), "org_id": org, "product_id": product_id, "user_id": user_id, "organization_id": None,
        "owner_key": grants.owner_key(user_id, None), "status": ACTIVE, "seats": None, "seats_used": 0,
        "source": "automation", "parent_id": None, "created_at": now, "revoked_at": None,
    }  # fmt: skip


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert the grants; the ids of those inserted (a concurrent command may have made one
    first, which then has no effect here, as in :func:`grants.grant`)."""
    table = Grant.__table__
    dialect = postgresql if is_postgres(session) else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing().returning(table.c.id)
    return {ident for (ident,) in session.execute(statement, rows)}


def _product_granted(row: Grant, product: Product | None, course_ids: list[str], data: Mapping[str, Any],
                     now: datetime) -> Event:  # fmt: skip
    payload = grants.grant_fields(row, product, course_ids, "automation", None) | grants.granted_fields(product, now)
    return event(contract.PRODUCT_GRANTED, row.org_id, payload | {"natural_key": data["natural_key"]})


def _active(product: Product | None) -> bool:
    return product is not None and product.status == ACTIVE


# --- UserProvisioned ------------------------------------------------------------------------------


Trainings = Callable[[Session, Sequence[Command]], None]


def provision_plain(session: Session, events: Sequence[Event], assign_trainings: Trainings) -> list[Event]:
    """Handle the leading UserProvisioned events set-based; the rest, from the first one that
    must be handled alone (seats wait for its email, or commands other than plain grants or
    only trainings, or its user or email came earlier in the run). ``assign_trainings`` carries
    out waiting AssignMandatoryTraining commands (:func:`commands.assign_all`)."""
    waiting = _waiting_commands(session, events)
    plain = _plain_provisions(events, waiting, _emails_with_seats_waiting(session, events))
    if plain:
        _provision(session, plain, waiting, assign_trainings)
    return list(events[len(plain) :])


def _address(provisioned: Event) -> Address:
    return provisioned.data["org_id"], provisioned.data["email"].lower()


def _waiting_commands(session: Session, events: Sequence[Event]) -> dict[Address, list[PendingCommand]]:
    """The commands waiting for these emails, oldest first, locked as :func:`commands.resolve_pending` locks them."""
    orgs, emails = {_address(e)[0] for e in events}, {_address(e)[1] for e in events}
    waiting: dict[Address, list[PendingCommand]] = {}
    for pending in session.scalars(_WAITING_COMMANDS, {"emails": list(emails), "orgs": list(orgs)}):
        waiting.setdefault((pending.org_id, pending.email), []).append(pending)
    return waiting


def _emails_with_seats_waiting(session: Session, events: Sequence[Event]) -> set[str]:
    return set(session.scalars(_EMAILS_WITH_SEATS_WAITING, {"emails": list({_address(e)[1] for e in events})}))


# Run for every batch of UserProvisioned: built once, so that SQLAlchemy computes each one's
# cache key once rather than walking a new statement per batch (the keys are expanding lists).
_WAITING_COMMANDS = (
    select(PendingCommand)
    .where(
        PendingCommand.email.in_(bindparam("emails", expanding=True)),
        PendingCommand.org_id.in_(bindparam("orgs", expanding=True)),
    )
    .order_by(PendingCommand.created_at)
    .with_for_update()
)
_EMAILS_WITH_SEATS_WAITING = (
    select(SeatHolder.email)
    .where(SeatHolder.email.in_(bindparam("emails", expanding=True)), SeatHolder.user_id.is_(None))
    .distinct()
)


def _plain_provisions(
    events: Sequence[Event], waiting: Mapping[Address, list[PendingCommand]], seated: set[str]
) -> list[Event]:
    plain: list[Event] = []
    users: set[str] = set()
    addresses: set[Address] = set()
    for provisioned in events:
        address = _address(provisioned)
        if provisioned.data["user_id"] in users or address in addresses or address[1] in seated:
            break
        if not _carried_together(waiting.get(address, [])):
            break
        plain.append(provisioned)
        users.add(provisioned.data["user_id"])
        addresses.add(address)
    return plain


def _plain_grant(pending: PendingCommand) -> bool:
    return pending.command == "GrantProduct" and not grants.is_purchase(pending.payload)


def _carried_together(waiting: list[PendingCommand]) -> bool:
    """Whether a person's waiting commands can be carried out with other people's: plain
    grants only, or trainings only (an onboarding's training that reached enrollment before
    identity's UserProvisioned). A mix goes alone, so that grants and trainings enrolling in
    the same course keep the order that decides the enrollment's first source."""
    return all(_plain_grant(pending) for pending in waiting) or all(
        pending.command == "AssignMandatoryTraining" for pending in waiting
    )


def _provision(
    session: Session, plain: list[Event], waiting: Mapping[Address, list[PendingCommand]], assign_trainings: Trainings
) -> None:
    """Keep the users, carry out the grants and trainings waiting for their emails, and enroll
    those announced for the first time in the courses their grants open:
    :func:`handlers.on_user_provisioned` for distinct users, whose effects do not depend on each other."""
    first = replica.provision_users(session, [(provisioned.data, provisioned.time) for provisioned in plain])
    carried = [(p, _address(e)[0], e.data["user_id"]) for e in plain for p in waiting.get(_address(e), [])]
    if carried:
        session.execute(delete(PendingCommand).where(PendingCommand.id.in_([p.id for p, _, _ in carried])))
        plain_grants: list[Command] = []
        trainings: list[Command] = []
        for pending, org, user_id in carried:
            command = (org, pending.payload, {"user_id": user_id})
            (trainings if pending.command == "AssignMandatoryTraining" else plain_grants).append(command)
        if plain_grants:
            grant_all(session, plain_grants)
        if trainings:
            assign_trainings(session, trainings)
    learning.open_grant_enrollments_of(
        session, {e.data["user_id"]: e.data["org_id"] for e in plain if e.data["user_id"] in first}
    )
