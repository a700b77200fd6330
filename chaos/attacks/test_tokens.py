"""Forged, stale, misdirected and stolen tokens: every service answers 401, nothing is fetched."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from attack_seed import user_login
from attack_tokens import claims, hs256_with_public_key, sign, stranger_key, unsigned
from attack_world import Ledger, World
from harness import SERVICES

# One endpoint per service that any signed-in caller with some permission reaches.
PROBES = {
    "identity": "/v1/me",
    "catalog": "/v1/courses",
    "enrollment": "/v1/me/courses",
    "automation": "/v1/rules",
    "reporting": "/v1/reports/completions",
}


def answers(world: World, token: str) -> dict[str, int]:
    """Each service's status for ``token`` on its probe endpoint."""
    headers = {"Authorization": f"Bearer {token}"}
    return {
        service: requests.get(world.suite.url(service, path), headers=headers, timeout=30).status_code
        for service, path in PROBES.items()
    }


def token_kinds(world: World, listener: str) -> dict[str, Callable[[], str]]:
    key, issuer, org = world.signing_key, world.bootstrap["issuer"], world.ids["org_id"]
    now = int(time.time())
    stranger = stranger_key()
    return {
        "alg none": lambda: unsigned(key, claims(issuer, org)),
        "HS256 keyed with identity's public key": lambda: hs256_with_public_key(key, claims(issuer, org)),
        "expired": lambda: sign(key, claims(issuer, org, iat=now - 1000, nbf=now - 1000, exp=now - 100)),
        "nbf in the future": lambda: sign(key, claims(issuer, org, nbf=now + 3600)),
        "no exp": lambda: sign(key, claims(issuer, org, exp=None)),
        "wrong aud": lambda: sign(key, claims(issuer, org, aud="billing")),
        "wrong iss": lambda: sign(key, claims("http://evil.test", org)),
        "unknown signing key (same kid shape)": lambda: sign(stranger, claims(issuer, org)),
        "unknown key under identity's kid": lambda: sign({**stranger, "kid": key["kid"]}, claims(issuer, org)),
        "kid holding a path": lambda: sign(key, claims(issuer, org), kid="../../../../etc/passwd"),
        "kid holding SQL": lambda: sign(key, claims(issuer, org), kid="x' OR '1'='1' --"),
        "jku to a listener, attacker's key": lambda: sign(stranger, claims(issuer, org), jku=f"{listener}/jwks.json"),
        "jku to a listener, identity's key": lambda: sign(key, claims(issuer, org), jku=f"{listener}/jwks.json"),
        "x5u to a listener": lambda: sign(stranger, claims(issuer, org), x5u=f"{listener}/cert.pem"),
        "id token (typ JWT, aud client)": lambda: sign(
            key, claims(issuer, org, aud=world.bootstrap["client_id"], nonce="n", scope=None), typ="JWT"
        ),
        "id token (no typ)": lambda: sign(key, claims(issuer, org, nonce="n"), typ=None),
    }


class Listener:
    """A local HTTP server a forged token points at: it must never be asked for anything."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                body = b'{"keys": []}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    running = Listener()
    try:
        yield running
    finally:
        running.close()


def test_a_genuine_token_signed_the_same_way_is_accepted(world: World, ledger: Ledger) -> None:
    """The forging works: with nothing wrong, the same kind of token passes everywhere."""
    token = sign(world.signing_key, claims(world.bootstrap["issuer"], world.ids["org_id"]))
    for service, status in answers(world, token).items():
        ledger.expect("tokens", "well-formed forged-key token (control)", 200, status, target=service)


def test_every_bad_token_is_refused_by_every_service(world: World, ledger: Ledger, listener: Listener) -> None:
    for kind, make in token_kinds(world, listener.url).items():
        for service, status in answers(world, make()).items():
            ledger.expect("tokens", kind, 401, status, target=service)
    ledger.record(
        "tokens",
        "jku/x5u listener contacted",
        "0 requests",
        f"{len(listener.requests)} requests",
        not listener.requests,
    )


def refresh(world: World, refresh_token: str) -> requests.Response:
    boot = world.bootstrap
    return requests.post(
        world.suite.url("identity", "/oauth/token"),
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(str(boot["client_id"]), str(boot["client_secret"])),
        timeout=30,
    )


def test_a_reused_refresh_token_is_refused_and_revokes_its_family(world: World, ledger: Ledger) -> None:
    _, first = user_login(world)
    rotated = refresh(world, first["refresh_token"])
    ledger.expect("tokens", "refresh token, first use", 200, rotated.status_code)
    second = rotated.json()["refresh_token"]
    reused = refresh(world, first["refresh_token"])
    ledger.expect("tokens", "spent refresh token used again", 400, reused.status_code, reused.json().get("error", ""))
    family = refresh(world, second)
    ledger.expect("tokens", "its successor after the reuse (family revoked)", 400, family.status_code)


def test_a_revoked_refresh_token_is_refused(world: World, ledger: Ledger) -> None:
    boot = world.bootstrap
    _, tokens = user_login(world)
    revoked = requests.post(
        world.suite.url("identity", "/oauth/revoke"),
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(str(boot["client_id"]), str(boot["client_secret"])),
        timeout=30,
    )
    ledger.expect("tokens", "revoke a refresh token", 200, revoked.status_code)
    ledger.expect("tokens", "revoked refresh token used", 400, refresh(world, tokens["refresh_token"]).status_code)


def test_a_disabled_users_live_token_is_refused_by_every_service(world: World, ledger: Ledger) -> None:
    user_id, tokens = user_login(world)
    live = tokens["access_token"]
    for service, status in answers(world, live).items():
        ledger.expect("tokens", "live user token before disabling (control)", {200, 403}, status, target=service)
    disabled = requests.post(
        world.suite.url("identity", f"/v1/users/{user_id}/disable"), headers=world.admin, timeout=30
    )
    assert disabled.status_code in (200, 204), disabled.text
    deadline = time.monotonic() + 90
    statuses = answers(world, live)
    while time.monotonic() < deadline and set(statuses.values()) != {401}:
        time.sleep(1)
        statuses = answers(world, live)
    for service in SERVICES:
        ledger.expect("tokens", "disabled user's live token", 401, statuses[service], target=service)


def test_the_token_endpoint_issues_no_id_token_to_pass_as_an_access_token(world: World, ledger: Ledger) -> None:
    _, tokens = user_login(world)
    ledger.record(
        "tokens", "token response carries no id_token", "absent", str("id_token" in tokens), "id_token" not in tokens
    )
    assert uuid.UUID(str(world.ids["org_id"]))
