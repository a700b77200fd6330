"""Another tenant's ids, a learner on admin endpoints, other HTTP methods, mass assignment."""

from __future__ import annotations

import uuid

import requests
from attack_openapi import METHODS, operations
from attack_seed import call, user_login
from attack_tokens import claims, sign
from attack_world import Ledger, World

# The endpoints a learner reaches by design: its own things, and public ones.
LEARNER = "learner"


def other_tenant(world: World) -> dict[str, str]:
    """A super administrator of a client organization of the default one: every permission,
    its own organization. Its token is signed by identity's key, as identity would sign it."""
    response = call(
        world, "POST", "identity", f"/v1/organizations/{world.ids['org_id']}/clients", json={"name": "Rival"}
    )
    org = response.json()["id"] if response.status_code == 201 else str(uuid.uuid4())
    token = sign(world.signing_key, claims(world.bootstrap["issuer"], org))
    return {"Authorization": f"Bearer {token}"}


def test_every_by_id_endpoint_answers_404_to_another_organization(world: World, ledger: Ledger) -> None:
    rival = other_tenant(world)
    for op in operations(world.suite):
        if not op.by_id or not op.permissions:
            continue
        body = op.body(ids=world.ids)
        response = requests.request(op.method, op.url(world.suite, world.ids), json=body, headers=rival, timeout=30)
        # A body the schema refuses is refused before any lookup: nothing is learnt either way.
        expected = {404, 422} if op.takes_body else {404}
        ledger.expect(
            "tenancy",
            "admin token of another organization, its ids",
            expected,
            response.status_code,
            _code(response),
            target=op.name,
        )
    # The victims are untouched and still the default organization's.
    for name, path in (("course_id", "/v1/courses/"), ("rule_id", "/v1/rules/")):
        if name in world.ids:
            service = "catalog" if name == "course_id" else "automation"
            still = call(world, "GET", service, path + world.ids[name])
            ledger.expect(
                "tenancy", "victims untouched, still their owner's (control)", 200, still.status_code, target=name
            )


def test_a_learner_is_refused_every_admin_endpoint(world: World, ledger: Ledger) -> None:
    _, tokens = user_login(world)
    learner = {"Authorization": f"Bearer {tokens['access_token']}"}
    scope = set(tokens.get("scope", "").split())
    for op in operations(world.suite):
        if not op.permissions or scope & set(op.permissions):
            continue
        response = requests.request(op.method, op.url(world.suite, {}), json=op.body(), headers=learner, timeout=30)
        ledger.expect(
            "admin-only",
            "learner token on an admin endpoint",
            403,
            response.status_code,
            _code(response),
            target=op.name,
        )


def test_other_http_methods_are_refused(world: World, ledger: Ledger) -> None:
    every = operations(world.suite)
    by_path: dict[tuple[str, str], set[str]] = {}
    for op in every:
        by_path.setdefault((op.service, op.path), set()).add(op.method)
    for (service, path), allowed in by_path.items():
        concrete = path.replace("{", "").replace("}", "")
        for method in [m for m in METHODS if m not in allowed] + ["trace"]:
            response = requests.request(method, world.suite.url(service, concrete), headers=world.admin, timeout=30)
            # /v1/users/merge is also /v1/users/{user_id}: a GET there looks up a user "merge", and
            # a bodiless PATCH there is refused for its missing body (400) before any lookup.
            shadowed = any(
                o.service == service and o.method == method and o.path != path and o.shadows(concrete) for o in every
            )
            expected = {400, 403, 405, 404} if shadowed else {403, 405}
            note = "(another route's id)" if shadowed else ""
            ledger.expect(
                "methods",
                "a method the route does not have",
                expected,
                response.status_code,
                note,
                target=f"{service} {method.upper()} {path}",
            )


ALLOWED = {"product_id", "user_id", "course_id"}  # the fields these bodies may carry
MASS_ASSIGNMENT = [
    ("identity", "POST", "/v1/users", {"email": "m@attack.test", "first_name": "M", "last_name": "A", "org_id": "x"}),
    (
        "identity",
        "POST",
        "/v1/users",
        {"email": "m2@attack.test", "first_name": "M", "last_name": "A", "role": "super_admin"},
    ),
    (
        "identity",
        "POST",
        "/v1/users",
        {"email": "m3@attack.test", "first_name": "M", "last_name": "A", "disabled": True},
    ),
    ("identity", "PATCH", "/v1/users/{user_id}", {"org_id": "x"}),
    ("identity", "PATCH", "/v1/users/{user_id}", {"role": "super_admin"}),
    ("catalog", "POST", "/v1/courses", {"title": "T", "status": "published"}),
    ("catalog", "POST", "/v1/courses", {"title": "T", "org": "x"}),
    ("catalog", "POST", "/v1/courses", {"title": "T", "owner_id": "x"}),
    ("catalog", "PATCH", "/v1/courses/{course_id}", {"status": "published"}),
    ("catalog", "PATCH", "/v1/courses/{course_id}", {"org_id": "x"}),
    ("catalog", "PATCH", "/v1/courses/{course_id}", {"created_by": "x"}),
    (
        "enrollment",
        "POST",
        "/v1/grants",
        {"product_id": "{product_id}", "user_id": "{user_id}", "status": "active", "seats": 999},
    ),
    (
        "enrollment",
        "POST",
        "/v1/enrollments",
        {"user_id": "{user_id}", "course_id": "{course_id}", "status": "completed"},
    ),
    (
        "enrollment",
        "POST",
        "/v1/enrollments",
        {"user_id": "{user_id}", "course_id": "{course_id}", "progress_percent": 100},
    ),
    ("automation", "POST", "/v1/rules", {"name": "R", "trigger": "EmployeeOnboarded", "actions": [], "org_id": "x"}),
    ("automation", "PATCH", "/v1/rules/{rule_id}", {"org_id": "x"}),
]


def test_mass_assignment_is_refused(world: World, ledger: Ledger) -> None:
    for service, method, path, body in MASS_ASSIGNMENT:
        filled = {key: _fill(value, world.ids) for key, value in body.items()}
        response = call(world, method, service, _fill(path, world.ids), json=filled)
        extra = sorted(
            set(body) - {"email", "first_name", "last_name", "title", "name", "trigger", "actions"} - ALLOWED
        )
        ledger.expect(
            "mass-assign",
            f"body field {','.join(extra)}",
            422,
            response.status_code,
            target=f"{service} {method} {path}",
        )
    course = call(world, "GET", "catalog", f"/v1/courses/{world.ids['course_id']}").json()
    ledger.record(
        "mass-assign",
        "victim course still a draft",
        "draft",
        str(course.get("status")),
        course.get("status") == "draft",
    )


def _fill(value: object, ids: dict[str, str]) -> object:
    if isinstance(value, str):
        for name, id_ in ids.items():
            value = value.replace("{" + name + "}", id_)
    return value


def _code(response: requests.Response) -> str:
    try:
        return str(response.json().get("code") or "")
    except ValueError:
        return ""
