"""Provisioning from HR and billing events, through the runtime's message processor."""

from __future__ import annotations

from sqlalchemy import func, select

from identity.handlers import HANDLERS
from identity.models import RoleAssignment, User
from lms_common.contracts import SUITE_EVENTS
from lms_common.envelope import Event
from lms_common.processing import Delivery, MessageProcessor, Outcome


def deliver(world, event_type: str, data: dict, event_id: str | None = None, orgid: str | None = None) -> Outcome:  # type: ignore[no-untyped-def]
    event = Event(
        type=event_type,
        data=data,
        orgid=orgid or world.org_id,
        source="/test",
        **({"id": event_id} if event_id else {}),
    )
    processor = MessageProcessor("identity", world.app.extensions["lms"].session_factory, HANDLERS, SUITE_EVENTS)
    [result] = processor.process([Delivery(body=event.to_json(), routing_key=f"x.{event_type}", message_id=event.id)])
    return result.outcome


ONBOARDED = {
    "employee_id": "E-1001",
    "email": "grace@example.com",
    "first_name": "Grace",
    "last_name": "Hopper",
    "department": "Engineering",
    "job_title": "Engineer",
    "location_code": "NYC",
    "start_date": "2026-12-01",
}


def users_named(world, email: str) -> list[User]:  # type: ignore[no-untyped-def]
    with world.session() as session:
        return list(session.scalars(select(User).where(User.email_key == email)))


def test_employee_onboarded_twice_is_one_user(world) -> None:
    assert deliver(world, "EmployeeOnboarded", ONBOARDED, event_id="ev-1") is Outcome.HANDLED
    assert deliver(world, "EmployeeOnboarded", ONBOARDED, event_id="ev-1") is Outcome.DUPLICATE
    assert (
        deliver(world, "EmployeeOnboarded", {**ONBOARDED, "job_title": "Admiral"}, event_id="ev-2") is Outcome.HANDLED
    )
    [user] = users_named(world, "grace@example.com")
    assert user.location_id == world.locations["NYC"] and user.title == "Admiral" and user.kind == "staff"
    with world.session() as session:
        assert (
            session.scalar(select(func.count()).select_from(RoleAssignment).where(RoleAssignment.user_id == user.id))
            == 1
        )
    provisioned = [e["data"] for e in world.events("UserProvisioned") if e["data"]["email"] == "grace@example.com"]
    assert [(p["created"], p["cause_event_id"]) for p in provisioned] == [(True, "ev-1"), (False, "ev-2")]
    me = world.client.get("/v1/me", headers={"Authorization": f"Bearer {world.token_for(user.id)}"}).json
    assert "learner" in me["scope"]


def test_unknown_location_code_provisions_without_location_and_warns(world) -> None:
    deliver(world, "EmployeeOnboarded", {**ONBOARDED, "location_code": "ATLANTIS"})
    [user] = users_named(world, "grace@example.com")
    assert user.location_id is None
    warnings = world.client.get(
        "/v1/provisioning-warnings", headers={"Authorization": f"Bearer {world.admin_token()}"}
    ).json["items"]
    assert [(w["code"], w["user_id"]) for w in warnings] == [("unknown_location_code", user.id)]


def test_employee_offboarded_disables(world) -> None:
    deliver(world, "EmployeeOnboarded", ONBOARDED)
    deliver(
        world, "EmployeeOffboarded", {"employee_id": "E-1001", "email": "grace@example.com", "last_day": "2027-01-31"}
    )
    [user] = users_named(world, "grace@example.com")
    assert user.disabled
    assert world.events("UserDisabled")[-1]["data"]["user_id"] == user.id


def test_invoice_for_others_makes_a_purchaser_and_invitees(world) -> None:
    data = {
        "invoice_id": "INV-1",
        "buyer": {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"},
        "lines": [{"product_id": "p-1", "quantity": 3}],
        "invitees": ["bob@example.com", "BOB@example.com"],
        "paid_at": "2026-11-23T10:00:00Z",
    }
    assert deliver(world, "InvoicePaid", data) is Outcome.HANDLED
    assert deliver(world, "InvoicePaid", data) is Outcome.HANDLED  # same invoice, new message id
    [buyer], [bob] = users_named(world, "ada@example.com"), users_named(world, "bob@example.com")
    assert buyer.kind == "customer"
    roles = {
        e["data"]["user_id"]: e["data"]["role"]
        for e in world.events("RoleAssigned")
        if e["data"]["role"] != "super_admin"
    }
    assert roles == {buyer.id: "purchaser", bob.id: "student"}
    causes = {e["data"]["invoice_id"] for e in world.events("UserProvisioned") if e["data"]["cause"] == "InvoicePaid"}
    assert causes == {"INV-1"}


def test_event_for_unknown_org_is_dead_lettered(world) -> None:
    assert deliver(world, "EmployeeOnboarded", ONBOARDED, orgid="nowhere") is Outcome.DEAD_LETTER


def seats_assigned(world, holders: list[tuple[str, str | None]]) -> dict:  # type: ignore[no-untyped-def]
    """enrollment's SeatsAssigned: (email, user id or None for a holder without an account)."""
    return {
        "grant_id": "8c0f4b6e-36a3-4a53-9a5e-0d6c3f1c2b11",
        "org_id": world.org_id,
        "product_id": "5e1b6a0c-9f43-4b8e-a1c6-2a9c0f4e7d22",
        "purchaser_user_id": None,
        "seats_total": 5,
        "seats_used": len(holders),
        "holders": [
            {"email": email, "user_id": user_id, "status": "granted" if user_id else "pending"}
            for email, user_id in holders
        ],
        "assigned_at": "2026-11-23T10:00:00Z",
        "actor_id": None,
        "cause": "api",
    }


def test_a_pending_seat_holder_becomes_a_student_once(world) -> None:
    known = world.user("known@example.com")
    data = seats_assigned(world, [("new@example.com", None), ("known@example.com", known)])
    assert deliver(world, "SeatsAssigned", data) is Outcome.HANDLED
    assert deliver(world, "SeatsAssigned", data) is Outcome.HANDLED  # a repeat under a new message id
    [holder] = users_named(world, "new@example.com")
    assert holder.org_id == world.org_id and holder.kind == "customer"
    provisioned = [e["data"] for e in world.events("UserProvisioned") if e["data"]["cause"] == "SeatsAssigned"]
    assert [(p["user_id"], p["created"], p["grant_id"]) for p in provisioned] == [
        (holder.id, True, data["grant_id"]),
        (holder.id, False, data["grant_id"]),
    ]
    roles = [e["data"]["role"] for e in world.events("RoleAssigned") if e["data"]["user_id"] == holder.id]
    assert roles == ["student"]


def test_a_pending_holder_identity_knows_is_announced_again(world) -> None:
    user_id = world.user("bob@example.com")
    deliver(world, "SeatsAssigned", seats_assigned(world, [("Bob@Example.com", None)]))
    assert [u.id for u in users_named(world, "bob@example.com")] == [user_id]
    [again] = [e["data"] for e in world.events("UserProvisioned") if e["data"]["cause"] == "SeatsAssigned"]
    assert (again["user_id"], again["created"]) == (user_id, False)


def test_seats_of_an_unknown_organization_are_dead_lettered(world) -> None:
    data = {**seats_assigned(world, [("new@example.com", None)]), "org_id": "nowhere"}
    assert deliver(world, "SeatsAssigned", data, orgid="nowhere") is Outcome.DEAD_LETTER
