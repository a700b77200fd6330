"""Fixtures shared by identity's unit and integration tests: a migrated app and its world."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from identity import passwords, services, tokens
from identity.app import create_app
from identity.bootstrap import bootstrap
from identity.models import Location, OAuthClient, User
from identity.permissions import PERMISSIONS
from identity.service import SERVICE
from lms_common import migrations
from lms_common.auth import Principal
from lms_common.config import Settings
from lms_common.db import session_scope
from lms_common.outbox import OutboxMessage
from lms_common.testing import isolated_settings

PASSWORD = "correct horse battery"
REDIRECT = "https://app.example.test/callback"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class World:
    """A bootstrapped identity: the default org, a location tree, clients and token helpers."""

    PASSWORD = PASSWORD
    REDIRECT = REDIRECT

    app: Flask
    client: FlaskClient
    settings: Settings
    boot: dict[str, Any]
    locations: dict[str, str] = field(default_factory=dict)

    pkce = staticmethod(pkce_pair)

    @property
    def org_id(self) -> str:
        return str(self.boot["org_id"])

    def session(self) -> Iterator[Session]:
        return session_scope(self.app.extensions["lms"].session_factory)  # type: ignore[return-value]

    def admin_token(self) -> str:
        with self.session() as session:
            admin = services.find_by_email(session, self.org_id, self.boot["admin_email"])
            return self.token_for(admin.id)  # type: ignore[union-attr]

    def token_for(self, user_id: str, client_id: str | None = None) -> str:
        with self.session() as session:
            client = session.scalars(
                select(OAuthClient).where(OAuthClient.client_id == (client_id or self.boot["client_id"]))
            ).one()
            return tokens.mint_for_user(session, self.settings.issuer, session.get(User, user_id), client)

    def user(self, email: str, *, location: str | None = None, kind: str = "staff", org_id: str | None = None) -> str:
        fields = {
            "email": email,
            "first_name": "Test",
            "last_name": email.split("@", maxsplit=1)[0],
            "kind": kind,
            "password": PASSWORD,
        }
        if location:
            fields["location_id"] = self.locations[location]
        with self.session() as session:
            return services.create_user(session, org_id or self.org_id, fields).id

    def assign(self, user_id: str, role: str, *, location: str | None = None, descendants: bool = False) -> None:
        with self.session() as session:
            user = session.get(User, user_id)
            root = Principal(subject="test", org=user.org_id, permissions=frozenset(tokens_all()))
            location_id = self.locations[location] if location else None
            services.assign_role(session, root, user, role, location_id=location_id, include_descendants=descendants)

    def person(self, email: str, role: str | None = None, **kwargs: Any) -> tuple[str, dict[str, str]]:
        """A user holding ``role`` (at ``location``), and the Authorization header of its token."""
        location = kwargs.pop("at", None)
        user_id = self.user(email, location=kwargs.pop("home", location))
        if role:
            self.assign(user_id, role, location=location, **kwargs)
        return user_id, {"Authorization": f"Bearer {self.token_for(user_id)}"}

    def oauth_client(self, **values: Any) -> tuple[str, str | None]:
        body = {
            "name": "App",
            "scopes": ["learner", "catalog:read", "identity:read", "identity:write"],
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": [REDIRECT],
            "trusted": True,
            **values,
        }
        with self.session() as session:
            client, secret = services.create_oauth_client(session, self.org_id, body)
            return client.client_id, secret

    def events(self, event_type: str) -> list[dict[str, Any]]:
        with self.session() as session:
            rows = session.scalars(
                select(OutboxMessage).where(OutboxMessage.event_type == event_type).order_by(OutboxMessage.id)
            )
            return [json.loads(row.body) for row in rows]

    # --- the browser side of the authorization-code flow, through the test client -------------

    def authorize_url(self, client_id: str, challenge: str | None, redirect_uri: str = REDIRECT, **extra: str) -> str:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "state": "st4te",
            **extra,
        }
        if challenge:
            params.update(code_challenge=challenge, code_challenge_method="S256")
        return f"/oauth/authorize?{urlencode(params)}"

    def login(self, url: str, email: str, password: str = PASSWORD) -> Any:
        page = self.client.get(url)
        assert page.status_code == 200, page.data
        csrf = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()  # type: ignore[union-attr]
        return self.client.post(url, data={"csrf_token": csrf, "email": email, "password": password})

    def code_for(self, client_id: str, email: str, challenge: str) -> str:
        response = self.login(self.authorize_url(client_id, challenge), email)
        assert response.status_code == 302, response.data
        query = parse_qs(urlparse(response.headers["Location"]).query)
        assert query["state"] == ["st4te"]
        return query["code"][0]


def tokens_all() -> set[str]:
    return set(PERMISSIONS)


def make_world(database_url: str, var_dir: Path, settings: Settings | None = None) -> World:
    migrations.upgrade(SERVICE.migrations, database_url)
    settings = replace(settings or isolated_settings("identity", database_url), var_dir=var_dir)
    app = create_app(settings)
    boot = bootstrap(app.extensions["lms"].session_factory, settings, env={})
    world = World(app, app.test_client(), settings, boot)
    _location_tree(world)
    return world


def _location_tree(world: World) -> None:
    """HQ > EAST > (NYC, BOS); HQ > WEST > SF."""
    tree = [("HQ", None), ("EAST", "HQ"), ("WEST", "HQ"), ("NYC", "EAST"), ("BOS", "EAST"), ("SF", "WEST")]
    with world.session() as session:
        for code, parent in tree:
            parent_id = world.locations.get(parent) if parent else None
            world.locations[code] = services.create_location(session, world.org_id, code.title(), code, parent_id).id
        assert session.scalars(select(Location)).first() is not None


@pytest.fixture()
def world_factory():  # type: ignore[no-untyped-def]
    """make_world, for the unit (SQLite) and integration (PostgreSQL) fixtures."""
    return make_world


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with its production cost makes every test user take tens of milliseconds."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
