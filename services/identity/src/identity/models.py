"""The identity database: organizations, locations, teams, users, roles, OAuth 2 state."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lms_common.db import Base, new_id, utcnow

ID = String(36)


class Organization(Base):
    """A tenant; a client organization has the master organization as ``parent_id``."""

    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str | None] = mapped_column(String(100), unique=True)
    parent_id: Mapped[str | None] = mapped_column(ID, ForeignKey("organizations.id"), index=True)
    # The IANA time zone its dates are days of (assignment due dates, for one).
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None]


class Location(Base):
    """A node of an organization's location tree; ``code`` is unique within the organization."""

    __tablename__ = "locations"
    __table_args__ = (UniqueConstraint("org_id", "code", name="uq_locations_org_code"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ID, ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[str | None] = mapped_column(ID, ForeignKey("locations.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Team(Base):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_teams_org_name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ID, ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TeamMember(Base):
    __tablename__ = "team_members"

    team_id: Mapped[str] = mapped_column(ID, ForeignKey("teams.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), primary_key=True, index=True)


class User(Base):
    """A contact. Disabled, never deleted; a merged user logs in as ``merged_into_id``."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("org_id", "email_key", name="uq_users_org_email"),
        UniqueConstraint("org_id", "employee_id", name="uq_users_org_employee"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ID, ForeignKey("organizations.id"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    # The lower-cased email: uniqueness per organization is case-insensitive on every database.
    email_key: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str] = mapped_column(String(200), default="")
    last_name: Mapped[str] = mapped_column(String(200), default="")
    title: Mapped[str | None] = mapped_column(String(200))
    department: Mapped[str | None] = mapped_column(String(200), index=True)
    phone_office: Mapped[str | None] = mapped_column(String(50))
    phone_mobile: Mapped[str | None] = mapped_column(String(50))
    locale: Mapped[str | None] = mapped_column(String(20))
    location_id: Mapped[str | None] = mapped_column(ID, ForeignKey("locations.id"), index=True)
    photo: Mapped[str | None] = mapped_column(String(1000))
    kind: Mapped[str] = mapped_column(String(20), default="customer")
    instructor_status: Mapped[str | None] = mapped_column(String(20))
    employee_id: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    disabled_at: Mapped[datetime | None]
    merged_into_id: Mapped[str | None] = mapped_column(ID, ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def photo_url(self) -> str:
        """The uploaded photo, else the Gravatar of the email."""
        if self.photo:
            return self.photo
        digest = hashlib.md5(self.email.strip().lower().encode(), usedforsecurity=False).hexdigest()
        return f"https://www.gravatar.com/avatar/{digest}?d=identicon"

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


class Role(Base):
    """A named set of permissions; changing it changes every holder's next token."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_roles_org_name"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ID, ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(200), default="")
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    reaches_clients: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RoleAssignment(Base):
    """A role held by a user in one scope (see ``permissions.SCOPE_KINDS``)."""

    __tablename__ = "role_assignments"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ID, ForeignKey("organizations.id"), index=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), index=True)
    role_id: Mapped[str] = mapped_column(ID, ForeignKey("roles.id"), index=True)
    scope_kind: Mapped[str] = mapped_column(String(30), default="organization")
    location_id: Mapped[str | None] = mapped_column(ID, ForeignKey("locations.id"))
    client_org_id: Mapped[str | None] = mapped_column(ID, ForeignKey("organizations.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OAuthClient(Base):
    """An OAuth 2 client; only the hash of its secret is kept."""

    __tablename__ = "oauth_clients"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    client_id: Mapped[str] = mapped_column(String(100), unique=True)
    org_id: Mapped[str] = mapped_column(ID, ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str | None] = mapped_column(String(300))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(Text, default="")
    code_challenge: Mapped[str | None] = mapped_column(String(200))
    code_challenge_method: Mapped[str | None] = mapped_column(String(10))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> None:
        return None

    def get_auth_time(self) -> int:
        return int(self.created_at.timestamp())


class RefreshToken(Base):
    """A refresh token (hash only). Rotation keeps the ``family_id``; reuse revokes the family."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(ID, index=True)
    client_id: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), index=True)
    scope: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class SigningKey(Base):
    """An RSA key (private JWK). ``active`` signs; ``retiring`` is still published in the JWKS."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(100), primary_key=True)
    private_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]


class PasswordResetToken(Base):
    __tablename__ = "password_reset_tokens"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MailMessage(Base):
    """A mail waiting for the SMTP sender (``sent_at`` empty) or sent."""

    __tablename__ = "mail_outbox"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]


class LoginAttempt(Base):
    """One counted attempt in a rate-limit bucket (``login:<email>``, ``token:<address>``)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_bucket_at", "bucket", "at"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    bucket: Mapped[str] = mapped_column(String(400))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class LmsManagerSettings(Base):
    """Who can manage the LMS in one organization: they get the moderator permissions."""

    __tablename__ = "lms_manager_settings"

    org_id: Mapped[str] = mapped_column(ID, ForeignKey("organizations.id"), primary_key=True)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    user_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    team_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    all_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProvisioningWarning(Base):
    """Something provisioning could not do as asked (an unknown location code), for admins."""

    __tablename__ = "provisioning_warnings"

    id: Mapped[str] = mapped_column(ID, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ID, ForeignKey("organizations.id"), index=True)
    user_id: Mapped[str | None] = mapped_column(ID, ForeignKey("users.id"))
    cause_event_id: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(100))
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InstanceSecret(Base):
    """Secrets shared by every API process (the CSRF and consent signing key)."""

    __tablename__ = "instance_secrets"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))
