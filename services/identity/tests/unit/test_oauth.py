"""The OAuth 2 server: grants, PKCE, refresh rotation, revocation, introspection, login page."""

from __future__ import annotations

import base64
import re

import pytest

from identity import api, keys, ratelimit
from lms_common.auth import JWKSCache, TokenVerifier


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def exchange(world, client_id, code, verifier, secret=None, *, redirect_uri=None):  # type: ignore[no-untyped-def]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri or world.REDIRECT,
        "client_id": client_id,
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    headers = basic(client_id, secret) if secret else {}
    return world.client.post("/oauth/token", data=data, headers=headers)


def verifier_of(world) -> TokenVerifier:  # type: ignore[no-untyped-def]
    keys = JWKSCache(
        "http://identity/.well-known/jwks.json", 0, fetch=lambda url: world.client.get("/.well-known/jwks.json").json
    )
    return TokenVerifier(keys, issuer=world.settings.issuer, audience="lms")


def test_metadata_and_jwks(world) -> None:
    meta = world.client.get("/.well-known/oauth-authorization-server").json
    assert meta["issuer"] == world.settings.issuer
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert world.client.get("/.well-known/openid-configuration").json == meta
    keys = world.client.get("/.well-known/jwks.json").json["keys"]
    assert keys and all("d" not in key and key["kid"] for key in keys)


@pytest.mark.parametrize("method", ["basic", "post"])
def test_client_credentials_token_is_an_rfc9068_jwt(world, method: str) -> None:
    data = {"grant_type": "client_credentials", "scope": "catalog:read reports:read"}
    if method == "basic":
        response = world.client.post(
            "/oauth/token", data=data, headers=basic(world.boot["client_id"], world.boot["client_secret"])
        )
    else:
        data.update(client_id=world.boot["client_id"], client_secret=world.boot["client_secret"])
        response = world.client.post("/oauth/token", data=data)
    assert response.status_code == 200, response.json
    assert response.json["expires_in"] <= 900
    principal = verifier_of(world).verify(response.json["access_token"])
    assert principal.permissions == {"catalog:read", "reports:read"}
    assert principal.org == world.org_id and principal.client_id == world.boot["client_id"]


def test_wrong_client_secret_is_refused(world) -> None:
    response = world.client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(world.boot["client_id"], "nope")
    )
    assert response.status_code == 401 and response.json["error"] == "invalid_client"


def test_password_grant_is_refused(world) -> None:
    data = {"grant_type": "password", "username": world.boot["admin_email"], "password": world.boot["admin_password"]}
    response = world.client.post(
        "/oauth/token", data=data, headers=basic(world.boot["client_id"], world.boot["client_secret"])
    )
    assert response.status_code == 400 and response.json["error"] == "unsupported_grant_type"


def test_authorization_code_with_pkce_end_to_end(world) -> None:
    user_id, _ = world.person("ada@example.com", "local_admin", at="NYC")
    client_id, secret = world.oauth_client()
    verifier, challenge = world.pkce()
    code = world.code_for(client_id, "ADA@example.com", challenge)
    response = exchange(world, client_id, code, verifier, secret)
    assert response.status_code == 200, response.json
    assert response.json["refresh_token"]
    principal = verifier_of(world).verify(response.json["access_token"])
    assert principal.subject == user_id
    # The user's permissions within the client's scopes; identity:write only at NYC.
    assert principal.permissions == {"learner", "catalog:read", "identity:read", "identity:write"}
    assert principal.locations_for("identity:write") == {world.locations["NYC"]}
    assert principal.locations_for("learner") is None
    # A code works once.
    assert exchange(world, client_id, code, verifier, secret).json["error"] == "invalid_grant"


def test_authorization_without_pkce_is_refused(world) -> None:
    client_id, _ = world.oauth_client()
    response = world.client.get(world.authorize_url(client_id, None))
    assert response.status_code == 302
    assert "error=invalid_request" in response.headers["Location"]


def test_wrong_verifier_and_missing_verifier_are_refused(world) -> None:
    world.person("ada@example.com", "student")
    client_id, secret = world.oauth_client()
    _, challenge = world.pkce()
    code = world.code_for(client_id, "ada@example.com", challenge)
    assert exchange(world, client_id, code, None, secret).json["error"] == "invalid_request"
    assert exchange(world, client_id, code, world.pkce()[0], secret).json["error"] == "invalid_grant"


def test_altered_redirect_uri_is_refused(world) -> None:
    world.person("ada@example.com", "student")
    client_id, secret = world.oauth_client(redirect_uris=[world.REDIRECT, "https://app.example.test/other"])
    verifier, challenge = world.pkce()
    code = world.code_for(client_id, "ada@example.com", challenge)
    response = exchange(world, client_id, code, verifier, secret, redirect_uri="https://app.example.test/other")
    assert response.json["error"] == "invalid_grant"
    unknown = world.client.get(world.authorize_url(client_id, challenge, redirect_uri="https://evil.test/cb"))
    assert unknown.status_code == 400 and b"evil" not in unknown.headers.get("Location", "").encode()


def test_public_client_uses_pkce_without_secret(world) -> None:
    world.person("ada@example.com", "student")
    client_id, secret = world.oauth_client(public=True)
    assert secret is None
    verifier, challenge = world.pkce()
    code = world.code_for(client_id, "ada@example.com", challenge)
    assert exchange(world, client_id, code, verifier).status_code == 200


def _tokens(world, email="ada@example.com"):  # type: ignore[no-untyped-def]
    client_id, secret = world.oauth_client()
    verifier, challenge = world.pkce()
    code = world.code_for(client_id, email, challenge)
    return client_id, secret, exchange(world, client_id, code, verifier, secret).json


def refresh(world, client_id, secret, token):  # type: ignore[no-untyped-def]
    data = {"grant_type": "refresh_token", "refresh_token": token}
    return world.client.post("/oauth/token", data=data, headers=basic(client_id, secret))


def test_refresh_rotation_and_reuse_detection(world) -> None:
    world.person("ada@example.com", "student")
    client_id, secret, first = _tokens(world)
    second = refresh(world, client_id, secret, first["refresh_token"])
    assert second.status_code == 200 and second.json["refresh_token"] != first["refresh_token"]
    # The spent token comes back: refused, and the whole family with it.
    assert refresh(world, client_id, secret, first["refresh_token"]).json["error"] == "invalid_grant"
    assert refresh(world, client_id, secret, second.json["refresh_token"]).json["error"] == "invalid_grant"


def test_refresh_follows_role_changes(world) -> None:
    user_id, _ = world.person("ada@example.com", "student")
    client_id, secret, first = _tokens(world)
    assert "identity:read" not in first["scope"].split()
    world.assign(user_id, "org_admin")
    again = refresh(world, client_id, secret, first["refresh_token"]).json
    assert "identity:read" in again["scope"].split()


def test_revoke_then_introspect_inactive(world) -> None:
    world.person("ada@example.com", "student")
    client_id, secret, issued = _tokens(world)
    auth = basic(client_id, secret)
    active = world.client.post("/oauth/introspect", data={"token": issued["access_token"]}, headers=auth).json
    assert active["active"] is True and active["scope"] == issued["scope"]
    assert world.client.post("/oauth/revoke", data={"token": issued["access_token"]}, headers=auth).status_code == 200
    assert world.client.post("/oauth/introspect", data={"token": issued["access_token"]}, headers=auth).json == {
        "active": False
    }
    revoked = world.events("TokenRevoked")
    assert len(revoked) == 1 and revoked[0]["source"] == "/identity" and revoked[0]["orgid"] == world.org_id
    # identity's own API refuses the revoked token at once.
    assert world.client.get("/v1/me", headers={"Authorization": f"Bearer {issued['access_token']}"}).status_code == 401
    # Revoking a refresh token kills its family.
    world.client.post(
        "/oauth/revoke", data={"token": issued["refresh_token"], "token_type_hint": "refresh_token"}, headers=auth
    )
    assert refresh(world, client_id, secret, issued["refresh_token"]).json["error"] == "invalid_grant"


def test_login_form_needs_csrf_token(world) -> None:
    world.person("ada@example.com", "student")
    client_id, _ = world.oauth_client()
    url = world.authorize_url(client_id, world.pkce()[1])
    world.client.get(url)
    response = world.client.post(
        url, data={"email": "ada@example.com", "password": world.PASSWORD, "csrf_token": "forged"}
    )
    assert response.status_code == 400 and response.json["code"] == "csrf"


def test_sign_in_pages_let_the_browser_follow_the_redirect_to_the_client(world) -> None:
    # Browsers apply form-action to the redirect after the post: 'self' alone blocks the code.
    world.person("ada@example.com", "student")
    client_id, _ = world.oauth_client(trusted=False)
    url = world.authorize_url(client_id, world.pkce()[1])
    login = world.client.get(url)
    failed = world.login(url, "ada@example.com", "wrong password!")
    consent = world.login(url, "ada@example.com")
    for page in (login, failed, consent):
        policy = page.headers["Content-Security-Policy"]
        assert "form-action 'self' https://app.example.test;" in policy + ";"


def test_eleventh_bad_password_is_429(world) -> None:
    world.person("ada@example.com", "student")
    client_id, _ = world.oauth_client()
    url = world.authorize_url(client_id, world.pkce()[1])
    statuses = [world.login(url, "ada@example.com", "wrong password!").status_code for _ in range(11)]
    assert statuses == [401] * 10 + [429]
    # Even the right password waits out the window now.
    assert world.login(url, "ada@example.com").status_code == 429


def test_failed_sign_ins_from_one_address_across_many_emails_are_429(world, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_FAILED_LOGINS_PER_ADDRESS", 3)
    world.person("ada@example.com", "student")
    client_id, _ = world.oauth_client()
    url = world.authorize_url(client_id, world.pkce()[1])
    statuses = [world.login(url, f"guess{n}@example.com", "wrong password!").status_code for n in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert world.login(url, "ada@example.com").status_code == 429


def test_token_endpoint_is_rate_limited(world, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api.oauth, "TOKEN_RATE_PER_MINUTE", 3)
    auth = basic(world.boot["client_id"], world.boot["client_secret"])
    statuses = [
        world.client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=auth).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]


def test_disabled_user_cannot_log_in(world) -> None:
    user_id, _ = world.person("ada@example.com", "student")
    world.client.post(f"/v1/users/{user_id}/disable", headers={"Authorization": f"Bearer {world.admin_token()}"})
    client_id, _ = world.oauth_client()
    assert world.login(world.authorize_url(client_id, world.pkce()[1]), "ada@example.com").status_code == 401


def test_untrusted_client_asks_for_consent(world) -> None:
    world.person("ada@example.com", "student")
    client_id, _ = world.oauth_client(trusted=False)
    _, challenge = world.pkce()
    url = world.authorize_url(client_id, challenge)
    consent = world.login(url, "ada@example.com")
    assert consent.status_code == 200 and b"Allow" in consent.data
    csrf = re.search(rb'name="csrf_token" value="([^"]+)"', consent.data).group(1).decode()
    ticket = re.search(rb'name="consent_ticket" value="([^"]+)"', consent.data).group(1).decode()
    denied = world.client.post(url, data={"csrf_token": csrf, "consent_ticket": ticket, "consent": "deny"})
    assert "error=access_denied" in denied.headers["Location"]
    allowed = world.client.post(url, data={"csrf_token": csrf, "consent_ticket": ticket, "consent": "allow"})
    assert "code=" in allowed.headers["Location"]


def test_rotate_keys_publishes_old_and_new(world) -> None:
    before = {key["kid"] for key in world.client.get("/.well-known/jwks.json").json["keys"]}
    old_token = world.admin_token()
    with world.session() as session:
        new_kid = keys.rotate(session)
    after = {key["kid"] for key in world.client.get("/.well-known/jwks.json").json["keys"]}
    assert after == before | {new_kid}
    verifier = verifier_of(world)
    assert verifier.verify(old_token) and verifier.verify(world.admin_token())
    with world.session() as session:
        keys.rotate(session)
    assert len(world.client.get("/.well-known/jwks.json").json["keys"]) == 2
