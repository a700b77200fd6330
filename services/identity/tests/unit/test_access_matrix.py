"""Who may do what where: a table of every built-in role against identity's endpoints,
and another organization's ids answering 404 on every by-id endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from identity import services

ENDPOINTS = [
    "read nyc user",
    "edit nyc user",
    "edit bos user",
    "list users",
    "create user at nyc",
    "assign role at nyc",
    "create role",
    "set lms managers",
    "add location under nyc",
    "add oauth client",
    "add client org",
    "reset sf password",
]
NO = dict.fromkeys(ENDPOINTS, 403)
LOCAL = [200, 200, 404, 200, 201, 201, 403, 403, 201, 403, 403, 404]
MULTI = [200, 200, 200, 200, 201, 201, 403, 403, 201, 403, 403, 404]
ORG = [200, 200, 200, 200, 201, 201, 201, 200, 201, 201, 403, 202]
MASTER = [200, 200, 200, 200, 201, 201, 201, 200, 201, 201, 201, 202]

# role -> (where it is held, expected status per endpoint)
MATRIX: dict[str, tuple[dict[str, Any], dict[str, int]]] = {
    "student": ({}, NO),
    "purchaser": ({}, NO),
    "instructor": ({}, NO),
    "course_creator": ({}, NO),
    "moderator": ({}, NO),
    "local_admin": ({"at": "NYC"}, dict(zip(ENDPOINTS, LOCAL, strict=True))),
    "local_admin_reports": ({"at": "NYC"}, NO),
    "multi_location_admin": ({"at": "EAST", "descendants": True}, dict(zip(ENDPOINTS, MULTI, strict=True))),
    "multi_location_admin_reports": ({"at": "EAST", "descendants": True}, NO),
    "org_admin": ({}, dict(zip(ENDPOINTS, ORG, strict=True))),
    "org_admin_reports": ({}, NO),
    "master_admin": ({}, dict(zip(ENDPOINTS, MASTER, strict=True))),
    "master_admin_reports": ({}, NO),
    "super_admin": ({}, dict(zip(ENDPOINTS, MASTER, strict=True))),
}


def call(world, name: str, headers: dict[str, str], targets: dict[str, str]) -> int:  # type: ignore[no-untyped-def]
    c, loc = world.client, world.locations
    requests = {
        "read nyc user": lambda: c.get(f"/v1/users/{targets['NYC']}", headers=headers),
        "edit nyc user": lambda: c.patch(f"/v1/users/{targets['NYC']}", json={"department": "Ops"}, headers=headers),
        "edit bos user": lambda: c.patch(f"/v1/users/{targets['BOS']}", json={"department": "Ops"}, headers=headers),
        "list users": lambda: c.get("/v1/users", headers=headers),
        "create user at nyc": lambda: c.post(
            "/v1/users",
            json={"email": f"new-{len(name)}@x.test", "first_name": "N", "last_name": "U", "location_id": loc["NYC"]},
            headers=headers,
        ),
        "assign role at nyc": lambda: c.post(
            f"/v1/users/{targets['NYC']}/roles", json={"role": "student", "location_id": loc["NYC"]}, headers=headers
        ),
        "create role": lambda: c.post(
            "/v1/roles", json={"name": "helper", "permissions": ["learner"]}, headers=headers
        ),
        "set lms managers": lambda: c.put("/v1/settings/lms-managers", json={"all_staff": True}, headers=headers),
        "add location under nyc": lambda: c.post(
            "/v1/locations", json={"name": "Soho", "code": "SOHO", "parent_id": loc["NYC"]}, headers=headers
        ),
        "add oauth client": lambda: c.post(
            "/v1/oauth-clients",
            json={"name": "x", "scopes": ["learner"], "grant_types": ["client_credentials"]},
            headers=headers,
        ),
        "add client org": lambda: c.post(
            f"/v1/organizations/{world.org_id}/clients", json={"name": "Acme"}, headers=headers
        ),
        "reset sf password": lambda: c.post(f"/v1/users/{targets['SF']}/password-reset", headers=headers),
    }
    return int(requests[name]().status_code)


@pytest.mark.parametrize("role", sorted(MATRIX))
def test_role_matrix(world, role: str) -> None:
    where, expected = MATRIX[role]
    targets = {code: world.user(f"{code.lower()}@example.com", location=code) for code in ("NYC", "BOS", "SF")}
    _, headers = world.person(f"{role}@example.com", role, **where)
    actual = {name: call(world, name, headers, targets) for name in ENDPOINTS}
    assert actual == expected


def test_reports_only_roles_have_no_write_permission(world) -> None:
    for role in ("local_admin_reports", "multi_location_admin_reports", "org_admin_reports", "master_admin_reports"):
        _, headers = world.person(
            f"{role}@example.com", role, at="NYC" if role.startswith(("local", "multi")) else None
        )
        me = world.client.get("/v1/me", headers=headers).json
        assert set(me["scope"]) == {"learner", "catalog:read", "reports:read"}


def test_lms_managers_get_moderator_permissions_but_never_freelancers(world) -> None:
    staff = world.user("staff@example.com", kind="staff")
    freelancer = world.user("free@example.com", kind="freelancer")
    headers = {"Authorization": f"Bearer {world.admin_token()}"}
    assert world.client.put("/v1/settings/lms-managers", json={"all_staff": True}, headers=headers).status_code == 200
    scope = {
        uid: set(world.client.get("/v1/me", headers={"Authorization": f"Bearer {world.token_for(uid)}"}).json["scope"])
        for uid in (staff, freelancer)
    }
    assert "catalog:write" in scope[staff] and "catalog:write" not in scope[freelancer]
    body = {"roles": ["instructor"], "user_ids": [freelancer], "team_ids": [], "all_staff": False}
    assert world.client.put("/v1/settings/lms-managers", json=body, headers=headers).json["user_ids"] == [freelancer]


def test_role_changes_reach_every_holder(world) -> None:
    holder, _ = world.person("h@example.com")
    headers = {"Authorization": f"Bearer {world.admin_token()}"}
    role = world.client.post(
        "/v1/roles", json={"name": "auditor", "permissions": ["reports:read"]}, headers=headers
    ).json
    world.client.post(f"/v1/users/{holder}/roles", json={"role": "auditor"}, headers=headers)
    world.client.patch(
        f"/v1/roles/{role['id']}", json={"permissions": ["reports:read", "automation:read"]}, headers=headers
    )
    me = world.client.get("/v1/me", headers={"Authorization": f"Bearer {world.token_for(holder)}"}).json
    assert {"reports:read", "automation:read"} <= set(me["scope"])
    assert world.events("RoleAssigned")[-1]["data"]["role"] == "auditor"


def test_no_one_hands_out_more_than_it_holds(world) -> None:
    target, _ = world.person("t@example.com", home="NYC")
    _, headers = world.person("boss@example.com", "local_admin", at="NYC")
    assert (
        world.client.post(f"/v1/users/{target}/roles", json={"role": "super_admin"}, headers=headers).status_code == 403
    )
    assert (
        world.client.post(f"/v1/users/{target}/roles", json={"role": "local_admin"}, headers=headers).status_code == 403
    )  # org-wide


def test_another_orgs_ids_answer_404(world) -> None:
    with world.session() as session:
        other = services.create_organization(session, "Other")
        location = services.create_location(session, other.id, "Far", "FAR", None)
        user = services.create_user(
            session,
            other.id,
            {"email": "x@other.test", "first_name": "X", "last_name": "Y", "location_id": location.id},
        )
        role = services.role_by_name(session, other.id, "student")
        assignment = services.grant_role(session, user, "student")
        team = services.create_team(session, other.id, "Team", [user.id])
        client_org = services.add_client(session, other.id, "Client of other")
        ids = {"user": user.id, "role": role.id, "assignment": assignment.id, "location": location.id, "team": team.id}
        ids.update(org=other.id, client_org=client_org.id)
    mine, _ = world.person("mine@example.com")
    headers = {"Authorization": f"Bearer {world.admin_token()}"}
    c = world.client
    calls = [
        c.get(f"/v1/users/{ids['user']}", headers=headers),
        c.patch(f"/v1/users/{ids['user']}", json={"department": "x"}, headers=headers),
        c.post(f"/v1/users/{ids['user']}/disable", headers=headers),
        c.post(f"/v1/users/{ids['user']}/enable", headers=headers),
        c.put(f"/v1/users/{ids['user']}/kind", json={"kind": "staff"}, headers=headers),
        c.post(f"/v1/users/{ids['user']}/password-reset", headers=headers),
        c.get(f"/v1/users/{ids['user']}/roles", headers=headers),
        c.post(f"/v1/users/{ids['user']}/roles", json={"role": "student"}, headers=headers),
        c.delete(f"/v1/users/{ids['user']}/roles/{ids['assignment']}", headers=headers),
        c.delete(f"/v1/users/{mine}/roles/{ids['assignment']}", headers=headers),
        c.post("/v1/users/merge", json={"from_user_id": ids["user"], "to_user_id": mine}, headers=headers),
        c.post("/v1/users/merge", json={"from_user_id": mine, "to_user_id": ids["user"]}, headers=headers),
        c.get(f"/v1/roles/{ids['role']}", headers=headers),
        c.patch(f"/v1/roles/{ids['role']}", json={"title": "x"}, headers=headers),
        c.get(f"/v1/locations/{ids['location']}", headers=headers),
        c.get(f"/v1/teams/{ids['team']}", headers=headers),
        c.get(f"/v1/organizations/{ids['org']}", headers=headers),
        c.get(f"/v1/organizations/{ids['client_org']}", headers=headers),
        c.get(f"/v1/organizations/{ids['org']}/clients", headers=headers),
        c.post(f"/v1/organizations/{ids['org']}/clients", json={"name": "x"}, headers=headers),
    ]
    assert [response.status_code for response in calls] == [404] * len(calls)
    listed = c.get(f"/v1/users?email=x@other.test&location_id={ids['location']}", headers=headers).json["items"]
    assert listed == []
