"""Events identity publishes."""

from __future__ import annotations

from lms_common.contracts.schema import DATE_TIME, ID, UUID, obj
from lms_common.envelope import EventType

USER_DISABLED = EventType(
    domain="identity",
    name="UserDisabled",
    summary="A user was disabled: every service refuses its tokens issued before disabled_at.",
    schema=obj({"user_id": UUID, "disabled_at": DATE_TIME}, {"reason": {"type": "string", "maxLength": 500}}),
)

USER_ENABLED = EventType(
    domain="identity",
    name="UserEnabled",
    summary="A disabled user was enabled again: tokens issued from now on are accepted.",
    schema=obj({"user_id": UUID, "enabled_at": DATE_TIME}),
)

TOKEN_REVOKED = EventType(
    domain="identity",
    name="TokenRevoked",
    summary="An access token was revoked before its expiry: every service refuses its jti.",
    schema=obj({"jti": ID, "expires_at": DATE_TIME}),
)

EVENTS = [USER_DISABLED, USER_ENABLED, TOKEN_REVOKED]
