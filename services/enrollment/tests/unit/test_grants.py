"""Grants open courses while the product is active; commands have one effect per natural key."""

from __future__ import annotations

from enrollment_helpers import ORG, OTHER_ORG, new_id, ok, outbox_events, refused


def course_ids(caller):
    return [item["course_id"] for item in ok(caller.get("/v1/me/courses"))["items"]]


def command(bus, name, data, org=ORG):
    cause = {"source_event_id": new_id(), "source_event_type": "InvoicePaid", "rule_id": None}
    bus.send(name, {**data, **cause}, org)


def test_grant_before_activation_then_activation_then_revoke(bus, admin, learner):
    course, product = new_id(), new_id()
    bus.course(course, [new_id()])
    bus.product(product, [course], active=False)
    grant = ok(admin.post("/v1/grants", json={"product_id": product, "user_id": learner.user}), 201)
    assert course_ids(learner) == []
    bus.product(product, [course], active=True)
    mine = ok(learner.get("/v1/me/courses"))["items"]
    assert [(c["course_id"], c["sources"]) for c in mine] == [(course, ["grant"])]
    ok(admin.post(f"/v1/grants/{grant['id']}/revoke"))
    assert course_ids(learner) == []


def test_one_grant_per_product_and_owner(bus, admin, learner):
    product = new_id()
    bus.product(product, [], active=True)
    body = {"product_id": product, "user_id": learner.user}
    first = ok(admin.post("/v1/grants", json=body), 201)
    assert ok(admin.post("/v1/grants", json=body), 200)["id"] == first["id"]


def test_the_same_grant_command_three_times_is_one_grant(bus, admin, learner, settings):
    course, product = new_id(), new_id()
    bus.course(course, [new_id()])
    bus.product(product, [course])
    data = {"natural_key": "invoice:INV-1:product", "product_id": product, "owner": {"user_id": learner.user}}
    for _ in range(3):
        command(bus, "GrantProduct", data)
    assert len(ok(admin.get(f"/v1/grants?product_id={product}"))["items"]) == 1
    assert len(outbox_events(settings.database_url, "ProductGranted")) == 1
    assert course_ids(learner) == [course]


def test_a_command_for_an_unknown_email_waits_for_the_user(bus, as_user):
    course, product, user = new_id(), new_id(), new_id()
    bus.course(course, [new_id()])
    bus.product(product, [course])
    owner = {"email": "grace@example.com"}
    command(bus, "GrantProduct", {"natural_key": "k1", "product_id": product, "owner": owner})
    bus.user(user, "Grace@example.com")
    assert course_ids(as_user("learner", user=user)) == [course]


def test_a_command_after_the_user_arrived_applies_at_once(bus, as_user):
    course, product, user = new_id(), new_id(), new_id()
    bus.course(course, [new_id()])
    bus.product(product, [course])
    bus.user(user, "grace@example.com")
    command(bus, "GrantProduct", {"natural_key": "k1", "product_id": product, "owner": {"email": "grace@example.com"}})
    assert course_ids(as_user("learner", user=user)) == [course]


def test_an_organization_grant_covers_its_members_and_revoke_command_closes(bus, as_user):
    course, product = new_id(), new_id()
    bus.course(course, [new_id()])
    bus.product(product, [course])
    owner = {"organization_id": ORG}
    command(bus, "GrantProduct", {"natural_key": "org-deal", "product_id": product, "owner": owner})
    member = as_user("learner")
    assert course_ids(member) == [course]
    command(bus, "RevokeProduct", {"natural_key": "org-deal:revoke", "product_id": product, "owner": owner})
    assert course_ids(member) == []


def test_seats_go_to_emails_and_never_beyond_what_was_bought(bus, as_user, admin):
    course, product, purchaser, known = new_id(), new_id(), new_id(), new_id()
    bus.course(course, [new_id()])
    bus.product(product, [course])
    bus.user(purchaser, "buyer@example.com")
    bus.user(known, "known@example.com")
    data = {"natural_key": "INV-2", "product_id": product, "owner": {"user_id": purchaser}, "seats": 2}
    command(bus, "GrantProduct", data)
    [purchase] = ok(admin.get(f"/v1/grants?user_id={purchaser}"))["items"]
    buyer = as_user("learner", user=purchaser)
    answer = ok(
        buyer.post(f"/v1/grants/{purchase['id']}/seats", json={"emails": ["known@example.com", "new@example.com"]})
    )
    assert sorted(h["status"] for h in answer["holders"]) == ["granted", "pending"]
    refused(
        buyer.post(f"/v1/grants/{purchase['id']}/seats", json={"emails": ["third@example.com"]}), 409, "seats_exhausted"
    )
    assert course_ids(as_user("learner", user=known)) == [course]
    newcomer = new_id()
    bus.user(newcomer, "new@example.com")
    assert course_ids(as_user("learner", user=newcomer)) == [course]


def test_another_organizations_ids_answer_404(bus, admin, as_user):
    product = new_id()
    bus.product(product, [], org=OTHER_ORG)
    refused(admin.post("/v1/grants", json={"product_id": product, "organization_id": ORG}), 404)
    other_admin = as_user("content:grant", org=OTHER_ORG)
    grant = ok(other_admin.post("/v1/grants", json={"product_id": product, "organization_id": OTHER_ORG}), 201)
    refused(admin.post(f"/v1/grants/{grant['id']}/revoke"), 404)
    refused(admin.get(f"/v1/grants/{grant['id']}"), 404)


def provisioned_by_seat(bus, user, email, grant_id):
    """identity's answer to a pending seat: UserProvisioned caused by SeatsAssigned."""
    data = {"user_id": user, "email": email, "org_id": ORG, "cause": "SeatsAssigned", "cause_event_id": new_id(),
            "created": True, "first_name": "", "last_name": "", "department": None, "location_id": None,
            "kind": "customer", "grant_id": grant_id, "role": "student"}  # fmt: skip
    bus.send("UserProvisioned", data)


def test_invitees_without_an_account_are_announced_pending_then_granted_once(bus, admin, as_user, settings):
    course, product, buyer, invitee = new_id(), new_id(), new_id(), new_id()
    bus.course(course, [new_id()])
    bus.product(product, [course])
    bus.user(buyer, "buyer@example.com")
    data = {"natural_key": "invoice:INV-7:product", "product_id": product, "owner": {"user_id": buyer},
            "invitees": ["Invitee@example.com"]}  # fmt: skip
    command(bus, "GrantProduct", data)
    [announced] = outbox_events(settings.database_url, "SeatsAssigned")
    assert announced["data"]["holders"] == [{"email": "invitee@example.com", "user_id": None, "status": "pending"}]
    for _ in range(2):  # identity may announce the same person twice
        provisioned_by_seat(bus, invitee, "invitee@example.com", announced["data"]["grant_id"])
    [seat] = ok(admin.get(f"/v1/grants?user_id={invitee}"))["items"]
    assert (seat["product_id"], seat["source"], seat["status"]) == (product, "seat", "active")
    assert course_ids(as_user("learner", user=invitee)) == [course]
    granted = [e["data"]["user_id"] for e in outbox_events(settings.database_url, "ProductGranted")]
    assert granted.count(invitee) == 1


def test_a_company_grant_covers_every_member_including_later_ones_until_revoked(bus, admin, as_user, settings):
    course, lesson, product = new_id(), new_id(), new_id()
    bus.course(course, [lesson, new_id()])
    bus.product(product, [course])
    grant = ok(admin.post("/v1/grants", json={"product_id": product, "organization_id": ORG}), 201)
    assert grant["organization_id"] == ORG and grant["user_id"] is None
    later = new_id()
    bus.user(later, "later@example.com")  # joined the organization after the grant
    [enrolled] = [e["data"] for e in outbox_events(settings.database_url, "EnrollmentCreated")]
    assert (enrolled["user_id"], enrolled["course_id"], enrolled["source"]) == (later, course, "grant")
    member = as_user("learner", user=later)
    [mine] = ok(member.get("/v1/me/courses"))["items"]
    assert (mine["course_id"], mine["sources"]) == (course, ["grant"])
    learning = ok(member.post(f"/v1/enrollments/{mine['enrollment_id']}/lessons/{lesson}/complete"))
    assert learning["progress_percent"] == 50
    outsider = as_user("learner", org=OTHER_ORG)
    assert course_ids(outsider) == []
    ok(admin.post(f"/v1/grants/{grant['id']}/revoke"))
    assert course_ids(member) == []
    refused(member.post(f"/v1/enrollments/{mine['enrollment_id']}/lessons/{new_id()}/complete"), 403, "not_entitled")
    ok(admin.post("/v1/grants", json={"product_id": product, "organization_id": ORG}), 201)  # granted again
    [again] = ok(member.get("/v1/me/courses"))["items"]
    assert (again["enrollment_id"], again["progress_percent"]) == (mine["enrollment_id"], 50)  # history kept


def test_a_grant_to_a_client_organization_covers_the_clients_members(bus, as_user):
    client_org, course, product = "client-org", new_id(), new_id()
    bus.course(course, [new_id()])
    bus.product(product, [course])
    master = as_user("content:grant", clients=[client_org])
    ok(master.post("/v1/grants", json={"product_id": product, "organization_id": client_org}), 201)
    assert course_ids(as_user("learner", org=client_org)) == [course]
    assert course_ids(as_user("learner")) == []  # the master's own people are not the client's


def test_a_company_grant_enrolls_the_members_it_finds_at_once_and_skips_disabled_ones(bus, admin, settings):
    course, product = new_id(), new_id()
    bus.course(course, [new_id()])
    bus.product(product, [course])
    members = [new_id(), new_id()]
    for number, member in enumerate(members):
        bus.user(member, f"member{number}@example.com")
    gone = new_id()
    bus.user(gone, "gone@example.com")
    bus.send("UserDisabled", {"user_id": gone, "disabled_at": "2026-11-01T00:00:00Z"})
    ok(admin.post("/v1/grants", json={"product_id": product, "organization_id": ORG}), 201)
    enrolled = [e["data"] for e in outbox_events(settings.database_url, "EnrollmentCreated")]
    assert sorted((e["user_id"], e["course_id"], e["source"]) for e in enrolled) == sorted(
        (member, course, "grant") for member in members
    )


def test_grants_made_before_activation_enroll_their_holders_when_the_product_activates(bus, admin, learner, settings):
    course, product, member = new_id(), new_id(), new_id()
    bus.course(course, [new_id()])
    bus.product(product, [course], active=False)
    bus.user(member, "member@example.com")
    ok(admin.post("/v1/grants", json={"product_id": product, "organization_id": ORG}), 201)
    ok(admin.post("/v1/grants", json={"product_id": product, "user_id": learner.user}), 201)
    assert outbox_events(settings.database_url, "EnrollmentCreated") == []
    bus.product(product, [course], active=True)
    enrolled = {
        (e["data"]["user_id"], e["data"]["course_id"])
        for e in outbox_events(settings.database_url, "EnrollmentCreated")
    }
    assert {(member, course), (learner.user, course)} <= enrolled


def test_a_member_first_kept_from_a_profile_update_is_enrolled_by_its_company_grant_when_announced(
    bus, admin, settings
):
    """identity's UserUpdated can overtake the UserProvisioned it follows; the user is then
    known here before its announcement, which still opens what its organization's grants hold."""
    course, product, member = new_id(), new_id(), new_id()
    bus.course(course, [new_id()])
    bus.product(product, [course])
    ok(admin.post("/v1/grants", json={"product_id": product, "organization_id": ORG}), 201)
    profile = {"user_id": member, "email": "late@example.com", "org_id": ORG, "first_name": "Ada",
               "last_name": "Lovelace", "department": None, "location_id": None, "kind": "staff"}  # fmt: skip
    bus.send("UserUpdated", profile)
    assert outbox_events(settings.database_url, "EnrollmentCreated") == []
    bus.user(member, "late@example.com")
    [enrolled] = [e["data"] for e in outbox_events(settings.database_url, "EnrollmentCreated")]
    assert (enrolled["user_id"], enrolled["course_id"], enrolled["source"]) == (member, course, "grant")
    bus.user(member, "late@example.com")  # announced again (a purchase, seats): nothing new to open
    assert len(outbox_events(settings.database_url, "EnrollmentCreated")) == 1
