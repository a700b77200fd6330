"""Hostile input on every body-taking endpoint: 4xx, never 5xx; stored text escaped where rendered."""

from __future__ import annotations

import re

import requests
from attack_openapi import operations
from attack_seed import REDIRECT_URI, call
from attack_world import Ledger, World
from harness import SERVICES

PAYLOADS = {
    "SQL": "x' OR '1'='1'; DROP TABLE users; --",
    "HTML": "<script>alert(1)</script><img src=x onerror=alert(1)>\"'",
}
FOUR_XX = set(range(400, 500))
OK_OR_4XX = {200, 201, 202, 204} | FOUR_XX
NESTED = '{"title": ' + "[" * 100_000 + "]" * 100_000 + "}"


def body_operations(world: World) -> list:  # type: ignore[type-arg]
    return [op for op in operations(world.suite) if op.method in ("post", "put", "patch") and op.permissions]


def test_malformed_bodies_answer_4xx_everywhere(world: World, ledger: Ledger) -> None:
    json_headers = {**world.admin, "Content-Type": "application/json"}
    for op in body_operations(world):
        url = op.url(world.suite, world.ids)
        nested = requests.request(op.method, url, data=NESTED, headers=json_headers, timeout=60)
        ledger.expect("input", "JSON nested 100,000 deep", FOUR_XX, nested.status_code, target=op.name)
        bad = requests.request(op.method, url, data=b'{"title": "\xff\xfe\xc0"}', headers=json_headers, timeout=30)
        ledger.expect("input", "invalid UTF-8 in a JSON body", FOUR_XX, bad.status_code, target=op.name)
        nul = requests.request(op.method, url, data='{"title": "a\\u0000b"}', headers=json_headers, timeout=30)
        ledger.expect("input", "NUL character in a JSON string", FOUR_XX, nul.status_code, target=op.name)


def test_a_50_mb_body_and_a_huge_header_answer_4xx(world: World, ledger: Ledger) -> None:
    big = b"[" + b"1," * (25 * 1024 * 1024) + b"1]"
    for service, path in (("catalog", "/v1/courses"), ("identity", "/v1/users"), ("automation", "/v1/events")):
        for kind in ("application/json", "application/octet-stream"):
            headers = {**world.admin, "Content-Type": kind}
            try:
                status = requests.post(
                    world.suite.url(service, path), data=big, headers=headers, timeout=120
                ).status_code
            except requests.ConnectionError:
                status = 413  # the server answered 413 and closed while the body was still being sent
            ledger.expect("input", f"50 MB {kind} body", 413, status, target=f"{service} POST {path}")
    for service in SERVICES:
        huge = requests.get(world.suite.url(service, "/healthz"), headers={"X-Filler": "a" * 100_000}, timeout=30)
        ledger.expect("input", "a 100 kB header", FOUR_XX, huge.status_code, target=service)
        many = {f"X-H{i}": "a" * 100 for i in range(500)}
        crowded = requests.get(world.suite.url(service, "/healthz"), headers=many, timeout=30)
        ledger.expect("input", "500 headers", FOUR_XX, crowded.status_code, target=service)


def test_sql_and_html_in_every_text_field_never_answer_5xx(world: World, ledger: Ledger) -> None:
    for name, text in PAYLOADS.items():
        for op in body_operations(world):
            body = op.body(text, world.ids)
            response = requests.request(
                op.method, op.url(world.suite, world.ids), json=body, headers=world.admin, timeout=60
            )
            ledger.expect(
                "input", f"{name} in every text field of the body", OK_OR_4XX, response.status_code, target=op.name
            )
        for op in operations(world.suite):
            if op.method != "get" or not op.permissions:
                continue
            params = {"q": text, "email": text, "status": text, "cursor": text, "from": text}
            response = requests.get(op.url(world.suite, world.ids), params=params, headers=world.admin, timeout=60)
            ledger.expect("input", f"{name} in query parameters", OK_OR_4XX, response.status_code, target=op.name)


def test_stored_html_is_escaped_on_the_login_page(world: World, ledger: Ledger) -> None:
    html = PAYLOADS["HTML"]
    client = call(
        world,
        "POST",
        "identity",
        "/v1/oauth-clients",
        json={
            "name": html,
            "scopes": ["learner"],
            "grant_types": ["authorization_code"],
            "redirect_uris": [REDIRECT_URI],
        },
    )
    ledger.expect("escaping", "OAuth client named with HTML", 201, client.status_code)
    params = {
        "response_type": "code",
        "client_id": client.json()["client_id"],
        "redirect_uri": REDIRECT_URI,
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    page = requests.get(world.suite.url("identity", "/oauth/authorize"), params=params, timeout=30)
    raw = "<script>alert(1)</script>" in page.text or "<img src=x" in page.text
    ledger.record(
        "escaping",
        "client name on the login page",
        "escaped",
        "raw" if raw else "escaped",
        not raw and "&lt;script&gt;" in page.text,
    )
    session = requests.Session()
    first = session.get(world.suite.url("identity", "/oauth/authorize"), params=params, timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', first.text)
    assert token
    again = session.post(first.url, data={"csrf_token": token.group(1), "email": html, "password": "x"}, timeout=30)
    raw = "<script>alert(1)</script>" in again.text
    ledger.record(
        "escaping", "email echoed on the failed sign-in page", "escaped", "raw" if raw else "escaped", not raw
    )
