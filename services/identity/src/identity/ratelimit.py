"""Fixed-window counters kept in the database, so every API process shares them."""

from __future__ import annotations

import os
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from identity.models import LoginAttempt
from lms_common.db import utcnow

LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILED_LOGINS = 10
# Failed sign-ins from one client address, whatever the emails: one password tried on many
# accounts (spraying) is stopped too, not only many passwords on one account.
MAX_FAILED_LOGINS_PER_ADDRESS = int(os.environ.get("LMS_IDENTITY_FAILED_LOGINS_PER_ADDRESS", "100"))


def count(session: Session, bucket: str, window: timedelta) -> int:
    since = utcnow() - window
    return int(session.scalar(select(func.count()).where(LoginAttempt.bucket == bucket, LoginAttempt.at > since)) or 0)


def record(session: Session, bucket: str, window: timedelta) -> None:
    """Count one attempt in ``bucket``; attempts older than the window are dropped."""
    now = utcnow()
    session.execute(delete(LoginAttempt).where(LoginAttempt.bucket == bucket, LoginAttempt.at <= now - window))
    session.add(LoginAttempt(bucket=bucket, at=now))
    session.flush()


def login_bucket(email: str) -> str:
    return f"login:{email.strip().lower()[:320]}"


def address_bucket(address: str | None) -> str:
    return f"login-from:{address or 'unknown'}"


def login_blocked(session: Session, email: str, address: str | None = None) -> bool:
    """True once an email has had its 10 failed logins in the last 15 minutes, or the client
    address its ``MAX_FAILED_LOGINS_PER_ADDRESS``."""
    if count(session, login_bucket(email), LOGIN_WINDOW) >= MAX_FAILED_LOGINS:
        return True
    return count(session, address_bucket(address), LOGIN_WINDOW) >= MAX_FAILED_LOGINS_PER_ADDRESS


def record_failed_login(session: Session, email: str, address: str | None) -> None:
    record(session, login_bucket(email), LOGIN_WINDOW)
    record(session, address_bucket(address), LOGIN_WINDOW)


def over_limit(session: Session, bucket: str, limit: int, window: timedelta) -> bool:
    """Count this attempt; True when it is beyond ``limit`` within ``window``."""
    record(session, bucket, window)
    return count(session, bucket, window) > limit
