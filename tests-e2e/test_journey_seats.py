"""Journey 4: a purchaser buys 3 seats (InvoicePaid, quantity 3) and hands 2 of them out, to a
colleague the organization has and to a newcomer without an account (identity creates it from
the seat, by event): each invitee can learn the course, and the third seat stays free."""

from __future__ import annotations

from conftest import Suite
from journey import (
    PASSWORD,
    bootstrap_client,
    build_course,
    choose_password,
    create_person,
    eventually,
    learnable,
    mailbox,
    pay_invoice,
    unique_email,
    user_by_email,
    web_app,
)


def test_a_purchaser_hands_out_two_of_three_seats(suite: Suite) -> None:
    admin = bootstrap_client(suite)
    org_id = str(suite.bootstrap()["org_id"])
    app = web_app(admin, "http://127.0.0.1:9/signed-in")
    course = build_course(admin, "First aid", modules=1, lessons=2)
    product = admin.post("catalog", "/v1/products", {"title": "First aid", "course_ids": [course["id"]]}, expect=201)
    admin.post("catalog", f"/v1/products/{product['id']}/activate", expect=200)
    colleague = create_person(admin, "bob", roles=("student",))
    newcomer_email = unique_email("carol")  # nobody has an account with this address yet
    invitees = [colleague, {"email": newcomer_email}]

    buyer_email = unique_email("purchaser")
    buyer_profile = {"email": buyer_email, "first_name": "Pat", "last_name": "Purchaser"}
    buyer = pay_invoice(suite, admin, org_id, product["id"], buyer_profile, quantity=3)
    with mailbox() as box:
        password = choose_password(suite, admin, box, buyer)
    purchaser = app.sign_in(buyer_email, password)

    def seats() -> dict[str, object] | None:
        found = purchaser.get("enrollment", "/v1/grants", user_id=buyer["id"], product_id=product["id"])["items"]
        return next((g for g in found if g["seats"]), None)

    purchase = eventually(seats, "the purchase of 3 seats")
    assert purchase["seats"] == 3 and purchase["seats_used"] == 0

    handed = purchaser.post(
        "enrollment", f"/v1/grants/{purchase['id']}/seats", {"emails": [p["email"] for p in invitees]}, expect=200
    )
    assert handed["grant"]["seats_used"] == 2
    assert sorted(h["email"] for h in handed["holders"]) == sorted(p["email"] for p in invitees)

    newcomer = eventually(lambda: user_by_email(admin, newcomer_email), "the newcomer's account")
    with mailbox() as box:
        newcomer_password = choose_password(suite, admin, box, newcomer)
    passwords = {colleague["email"]: PASSWORD, newcomer_email: newcomer_password}
    for person in invitees:
        learner = app.sign_in(person["email"], passwords[person["email"]])
        entry = eventually(lambda learner=learner: learnable(learner, course["id"]), f"{person['email']}'s seat")
        path = f"/v1/enrollments/{entry['enrollment_id']}/lessons/{course['lesson_ids'][0]}/complete"
        assert learner.post("enrollment", path, expect=200)["progress_percent"] == 50

    # The third seat is still free: one more fits, two more do not.
    assert purchaser.get("enrollment", f"/v1/grants/{purchase['id']}")["seats_used"] == 2
    too_many = purchaser.call(
        "POST",
        "enrollment",
        f"/v1/grants/{purchase['id']}/seats",
        json={"emails": [unique_email("dave"), unique_email("erin")]},
    )
    assert too_many.status_code == 409 and too_many.json()["code"] == "seats_exhausted"
    assert too_many.json()["seats_left"] == 1
