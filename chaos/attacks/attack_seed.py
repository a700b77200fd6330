"""The victims: objects of the default organization, and people with real tokens.

Each object is made through the public API with the bootstrap client's token; the id of each
is kept under the name of the path parameter that takes it (``course_id``...), so that the
authorization attacks call every by-id endpoint with a real id of another organization.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from attack_world import World
from harness import Suite

REDIRECT_URI = "http://127.0.0.1:8001/oauth/callback"  # the bootstrap client's (identity's default)
TIMEOUT = 30


def call(world: World, method: str, service: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {**world.admin, **kwargs.pop("headers", {})}
    return requests.request(method, world.suite.url(service, path), headers=headers, timeout=TIMEOUT, **kwargs)


def _keep(world: World, name: str, response: requests.Response, key: str = "id") -> str | None:
    if response.status_code in (200, 201) and key in response.json():
        world.ids[name] = str(response.json()[key])
        return world.ids[name]
    return None


def create_user(world: World, role: str | None = "student") -> tuple[str, str, str]:
    """A new user of the default organization with a password: (id, email, password)."""
    email = f"u{uuid.uuid4().hex[:10]}@attack.test"
    password = secrets.token_urlsafe(16)
    body = {"email": email, "first_name": "Ada", "last_name": "Lovelace", "password": password, "kind": "staff"}
    response = call(world, "POST", "identity", "/v1/users", json=body)
    assert response.status_code == 201, response.text
    user_id = str(response.json()["id"])
    if role:
        call(world, "POST", "identity", f"/v1/users/{user_id}/roles", json={"role": role})
    return user_id, email, password


def login(suite: Suite, client_id: str, secret: str, email: str, password: str) -> dict[str, Any]:
    """The authorization-code flow with PKCE through identity's login form: the token response."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    browser = requests.Session()
    page = browser.get(suite.url("identity", "/oauth/authorize"), params=params, timeout=TIMEOUT)
    assert page.status_code == 200, page.text
    form = {"csrf_token": csrf_token(page.text), "email": email, "password": password}
    answer = browser.post(page.url, data=form, allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code in (302, 303), answer.text
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
    tokens = requests.post(suite.url("identity", "/oauth/token"), data=data, auth=(client_id, secret), timeout=TIMEOUT)
    assert tokens.status_code == 200, tokens.text
    return dict(tokens.json())


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def user_login(world: World, role: str | None = "student") -> tuple[str, dict[str, Any]]:
    """A new user and the tokens of its sign-in through the bootstrap client."""
    user_id, email, password = create_user(world, role)
    boot = world.bootstrap
    return user_id, login(world.suite, str(boot["client_id"]), str(boot["client_secret"]), email, password)


def seed(world: World) -> None:
    """One object of every kind the by-id endpoints take, in the default organization."""
    world.ids["org_id"] = str(world.bootstrap["org_id"])
    user_id, _, _ = create_user(world)
    world.ids["user_id"] = user_id
    _keep(
        world,
        "assignment_id",
        call(world, "POST", "identity", f"/v1/users/{user_id}/roles", json={"role": "instructor"}),
    )
    _keep(
        world,
        "role_id",
        call(
            world,
            "POST",
            "identity",
            "/v1/roles",
            json={"name": f"r{uuid.uuid4().hex[:8]}", "title": "R", "permissions": ["catalog:read"]},
        ),
    )
    _keep(
        world,
        "location_id",
        call(world, "POST", "identity", "/v1/locations", json={"name": "HQ", "code": uuid.uuid4().hex[:8]}),
    )
    _keep(world, "team_id", call(world, "POST", "identity", "/v1/teams", json={"name": "Team"}))
    course = _keep(world, "course_id", call(world, "POST", "catalog", "/v1/courses", json={"title": "Victim course"}))
    module = _keep(
        world, "module_id", call(world, "POST", "catalog", f"/v1/courses/{course}/modules", json={"title": "M"})
    )
    _keep(
        world,
        "lesson_id",
        call(
            world, "POST", "catalog", f"/v1/modules/{module}/lessons", json={"title": "L", "kind": "text", "body": "b"}
        ),
    )
    product = _keep(
        world, "product_id", call(world, "POST", "catalog", "/v1/products", json={"title": "P", "course_ids": [course]})
    )
    _keep(
        world,
        "program_id",
        call(world, "POST", "catalog", "/v1/programs", json={"title": "Pr", "course_ids": [course]}),
    )
    _keep(
        world,
        "rule_id",
        call(
            world,
            "POST",
            "automation",
            "/v1/rules",
            json={
                "name": "R",
                "trigger": "EmployeeOnboarded",
                "actions": [{"type": "GrantProduct", "product_ids": [product]}],
            },
        ),
    )
    _keep(
        world,
        "grant_id",
        call(world, "POST", "enrollment", "/v1/grants", json={"product_id": product, "user_id": user_id}),
    )
    # enrollment learns of the course from catalog's events (through catalog's broker user).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "enrollment_id" not in world.ids:
        response = call(world, "POST", "enrollment", "/v1/enrollments", json={"user_id": user_id, "course_id": course})
        if _keep(world, "enrollment_id", response) is None:
            time.sleep(1)
