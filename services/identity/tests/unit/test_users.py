"""Users through the REST API: create, list, read, change, disable, merge, password resets."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, update

from identity.models import MailMessage, PasswordResetToken
from identity.service import SERVICE
from lms_common import migrations
from lms_common.auth import JWKSCache, TokenVerifier
from lms_common.db import make_engine, make_session_factory, session_scope, utcnow
from lms_common.denylist import DenyList, on_user_disabled
from lms_common.envelope import from_dict
from lms_common.testing import wait_until


def admin(world) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {world.admin_token()}"}


def test_create_read_list_patch(world) -> None:
    headers = admin(world)
    body = {
        "email": "Grace@Example.com",
        "first_name": "Grace",
        "last_name": "Hopper",
        "location_id": world.locations["NYC"],
        "kind": "staff",
    }
    created = world.client.post("/v1/users", json=body, headers=headers)
    assert created.status_code == 201, created.json
    user = created.json
    assert user["photo_url"].startswith("https://www.gravatar.com/avatar/") and user["org_id"] == world.org_id
    assert world.client.get(f"/v1/users/{user['id']}", headers=headers).json["email"] == "Grace@Example.com"
    found = world.client.get("/v1/users?email=grace@example.COM", headers=headers).json["items"]
    assert [u["id"] for u in found] == [user["id"]]
    patched = world.client.patch(
        f"/v1/users/{user['id']}", json={"department": "Navy", "instructor_status": "approved"}, headers=headers
    )
    assert patched.json["department"] == "Navy"
    assert world.events("InstructorStatusChanged")[0]["data"]["status"] == "approved"
    provisioned = world.events("UserProvisioned")[-1]["data"]
    assert provisioned["user_id"] == user["id"] and provisioned["cause"] == "api"


def test_email_is_unique_per_org_case_insensitively(world) -> None:
    body = {"email": "a@example.com", "first_name": "A", "last_name": "B"}
    assert world.client.post("/v1/users", json=body, headers=admin(world)).status_code == 201
    again = world.client.post("/v1/users", json={**body, "email": "A@EXAMPLE.com"}, headers=admin(world))
    assert again.status_code == 409


def test_no_mass_assignment_and_unknown_fields(world) -> None:
    user_id, _ = world.person("ada@example.com")
    headers = admin(world)
    for field, value in [
        ("kind", "staff"),
        ("org_id", "x"),
        ("role", "super_admin"),
        ("disabled_at", None),
        ("nope", 1),
    ]:
        response = world.client.patch(f"/v1/users/{user_id}", json={field: value}, headers=headers)
        assert response.status_code == 422, field
        assert field in response.json["errors"]
    bad = world.client.post("/v1/users", data="{", headers={**headers, "Content-Type": "application/json"})
    assert bad.status_code == 400


def test_kind_changes_through_its_own_endpoint(world) -> None:
    user_id, _ = world.person("ada@example.com")
    response = world.client.put(f"/v1/users/{user_id}/kind", json={"kind": "instructor"}, headers=admin(world))
    assert response.json["kind"] == "instructor"


def test_list_paginates_with_cursor_and_link(world) -> None:
    for n in range(3):
        world.user(f"u{n}@example.com")
    first = world.client.get("/v1/users?limit=2", headers=admin(world))
    assert len(first.json["items"]) == 2 and first.json["next_cursor"]
    assert 'rel="next"' in first.headers["Link"]
    rest = world.client.get(f"/v1/users?limit=2&cursor={first.json['next_cursor']}", headers=admin(world)).json
    seen = [u["id"] for u in first.json["items"] + rest["items"]]
    assert len(seen) == len(set(seen)) == 4  # three users and the super admin


def test_me(world) -> None:
    user_id, headers = world.person("ada@example.com", "local_admin", at="EAST", descendants=True)
    me = world.client.get("/v1/me", headers=headers).json
    assert me["sub"] == user_id and me["user"]["email"] == "ada@example.com"
    assert set(me["locations"]["identity:write"]) == {world.locations[c] for c in ("EAST", "NYC", "BOS")}
    assert world.client.get("/v1/me").status_code == 401


def test_disable_publishes_and_other_services_refuse_the_token(world, tmp_path) -> None:
    user_id, headers = world.person("ada@example.com", "student")
    token = headers["Authorization"].split()[1]
    # "Another service": its own database with the deny list, identity's JWKS through HTTP.
    other_url = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    migrations.upgrade(SERVICE.migrations, other_url, "0001")
    other_db = make_session_factory(make_engine(other_url))
    keys = JWKSCache("http://identity/jwks", 0, fetch=lambda url: world.client.get("/.well-known/jwks.json").json)
    verifier = TokenVerifier(
        keys, issuer=world.settings.issuer, audience="lms", revocations=DenyList(other_db, refresh_seconds=0)
    )
    assert verifier.verify(token).subject == user_id

    disabled = world.client.post(f"/v1/users/{user_id}/disable", headers=admin(world))
    assert disabled.status_code == 200 and disabled.json["disabled"] is True
    [event] = world.events("UserDisabled")
    assert event["data"]["user_id"] == user_id and event["orgid"] == world.org_id
    with session_scope(other_db) as session:  # what the other service's worker does with it
        on_user_disabled(session, from_dict(event))
    try:
        verifier.verify(token)
        raise AssertionError("a disabled user's token was accepted")
    except Exception as exc:
        assert "disabled" in str(exc)
    # identity's own API reloads its deny list every two seconds.
    wait_until(lambda: world.client.get("/v1/me", headers=headers).status_code == 401, timeout=5)


def test_merge_moves_the_login(world) -> None:
    old_id, _ = world.person("old@example.com", "student")
    new_id, _ = world.person("new@example.com", "instructor")
    response = world.client.post(
        "/v1/users/merge", json={"from_user_id": old_id, "to_user_id": new_id}, headers=admin(world)
    )
    assert response.status_code == 200 and response.json["id"] == new_id
    [merged] = world.events("ContactsMerged")
    assert merged["data"]["from_user_id"] == old_id and merged["data"]["to_user_id"] == new_id
    client_id, secret = world.oauth_client()
    verifier, challenge = world.pkce()
    code = world.code_for(client_id, "old@example.com", challenge)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": world.REDIRECT, "code_verifier": verifier}
    tokens = world.client.post("/oauth/token", data=data, auth=(client_id, secret)).json
    me = world.client.get("/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}).json
    assert me["sub"] == new_id
    again = world.client.post(
        "/v1/users/merge", json={"from_user_id": old_id, "to_user_id": new_id}, headers=admin(world)
    )
    assert again.status_code == 409


def _reset_token(world, user_id: str) -> str:  # type: ignore[no-untyped-def]
    assert world.client.post(f"/v1/users/{user_id}/password-reset", headers=admin(world)).status_code == 202
    with world.session() as session:
        body = session.scalars(select(MailMessage).order_by(MailMessage.created_at.desc())).first().body
    return re.search(r"^([A-Za-z0-9_\-]{20,})$", body, re.MULTILINE).group(1)  # type: ignore[union-attr]


def test_reset_token_works_once(world) -> None:
    user_id, _ = world.person("ada@example.com", "student")
    token = _reset_token(world, user_id)
    with world.session() as session:
        assert session.scalars(select(PasswordResetToken.token_hash)).one() != token  # only the hash
    ok = world.client.post("/v1/password-reset/confirm", json={"token": token, "new_password": "a brand new secret"})
    assert ok.status_code == 204
    again = world.client.post("/v1/password-reset/confirm", json={"token": token, "new_password": "another new secret"})
    assert again.status_code == 400 and again.json["code"] == "invalid_reset_token"
    client_id, _ = world.oauth_client()
    url = world.authorize_url(client_id, world.pkce()[1])
    assert world.login(url, "ada@example.com", "a brand new secret").status_code == 302


def test_expired_reset_token_fails(world) -> None:
    user_id, _ = world.person("ada@example.com", "student")
    token = _reset_token(world, user_id)
    with world.session() as session:
        session.execute(update(PasswordResetToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = world.client.post(
        "/v1/password-reset/confirm", json={"token": token, "new_password": "a brand new secret"}
    )
    assert response.status_code == 400


def test_an_instructor_status_cannot_be_cleared_once_set(world) -> None:
    headers = admin(world)
    user = world.client.post(
        "/v1/users", json={"email": "ida@example.com", "first_name": "Ida", "last_name": "Rhodes"}, headers=headers
    ).json
    assert (
        world.client.patch(f"/v1/users/{user['id']}", json={"instructor_status": None}, headers=headers).status_code
        == 200
    )
    world.client.patch(f"/v1/users/{user['id']}", json={"instructor_status": "approved"}, headers=headers)
    cleared = world.client.patch(
        f"/v1/users/{user['id']}", json={"instructor_status": None, "department": "Math"}, headers=headers
    )
    assert cleared.status_code == 422 and "instructor_status" in cleared.json["errors"]
    after = world.client.get(f"/v1/users/{user['id']}", headers=headers).json
    assert (after["instructor_status"], after["department"]) == ("approved", None)
    assert [e["data"]["status"] for e in world.events("InstructorStatusChanged")] == ["approved"]
