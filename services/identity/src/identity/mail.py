"""The mail outbox: mails are written in the transaction that needs them, an SMTP sender sends.

The sender is configured with ``LMS_SMTP_HOST``, ``LMS_SMTP_PORT`` and ``LMS_MAIL_FROM``; with
no host the mails stay in the table (tests and local runs read them there).
"""

from __future__ import annotations

import os
import smtplib
from email.message import EmailMessage

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from identity.models import MailMessage
from lms_common.db import utcnow

log = structlog.get_logger("identity.mail")
MAX_ATTEMPTS = 10


def queue(session: Session, to_address: str, subject: str, body: str) -> MailMessage:
    """Add a mail to the outbox of this transaction."""
    message = MailMessage(to_address=to_address, subject=subject, body=body, created_at=utcnow(), attempts=0)
    session.add(message)
    return message


def send_pending(session: Session, limit: int = 50) -> int:
    """Send unsent mails through SMTP; returns how many went out."""
    host = os.environ.get("LMS_SMTP_HOST")
    if not host:
        return 0
    sent = 0
    pending = select(MailMessage).where(MailMessage.sent_at.is_(None), MailMessage.attempts < MAX_ATTEMPTS)
    with smtplib.SMTP(host, int(os.environ.get("LMS_SMTP_PORT", "25")), timeout=10) as smtp:
        for message in session.scalars(pending.order_by(MailMessage.created_at).limit(limit)):
            sent += _send_one(smtp, message)
    return sent


def _send_one(smtp: smtplib.SMTP, message: MailMessage) -> int:
    email = EmailMessage()
    email["From"] = os.environ.get("LMS_MAIL_FROM", "lms@localhost")
    email["To"] = message.to_address
    email["Subject"] = message.subject
    email.set_content(message.body)
    message.attempts += 1
    try:
        smtp.send_message(email)
    except smtplib.SMTPException as exc:
        message.last_error = repr(exc)
        log.warning("mail not sent", mail_id=message.id, error=repr(exc))
        return 0
    message.sent_at = utcnow()
    return 1
