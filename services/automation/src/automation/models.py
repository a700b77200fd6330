"""Automation's tables: rules and their runs, the ledger of natural keys, replicas of the facts
rules need (catalog items, course completions), webhook deliveries, ingress and dead letters.

Every row carries its ``org_id``; every query made for a caller is filtered by it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lms_common.db import Base, new_id, utcnow

TEXT = 200
ID = 36


def _id() -> Mapped[str]:
    return mapped_column(String(ID), primary_key=True, default=new_id)


def _org() -> Mapped[str]:
    return mapped_column(String(TEXT), index=True)


class Rule(Base):
    """When ``trigger`` arrives and every condition holds, carry out ``actions`` in order."""

    __tablename__ = "rules"

    id: Mapped[str] = _id()
    org_id: Mapped[str] = _org()
    name: Mapped[str] = mapped_column(String(TEXT))
    trigger: Mapped[str] = mapped_column(String(100))
    conditions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(TEXT))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_rules_org_trigger", "org_id", "trigger"),
        Index("ix_rules_org_created", "org_id", "created_at", "id"),
    )


class SourceEvent(Base):
    """An event rules were evaluated against, kept so that a failed run can be retried."""

    __tablename__ = "source_events"

    event_id: Mapped[str] = mapped_column(String(TEXT), primary_key=True)
    org_id: Mapped[str] = _org()
    event_type: Mapped[str] = mapped_column(String(100))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    """One evaluation of one rule (or of a default behaviour) against one event."""

    __tablename__ = "runs"

    id: Mapped[str] = _id()
    # No index of its own: both indexes below lead with it (see migration 0004).
    org_id: Mapped[str] = mapped_column(String(TEXT))
    rule_id: Mapped[str | None] = mapped_column(String(ID), index=True)
    # The rule's id, or the name of a default behaviour ("default:invoice_paid_grants").
    rule_key: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str] = mapped_column(String(TEXT))
    event_type: Mapped[str] = mapped_column(String(100))
    matched: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20))
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("org_id", "rule_key", "event_id", name="uq_runs_rule_event"),
        Index("ix_runs_org_created", "org_id", "created_at", "id"),
    )


class Effect(Base):
    """A natural key automation has acted on: the same fact under a new event id is skipped."""

    __tablename__ = "effects"

    org_id: Mapped[str] = mapped_column(String(TEXT), primary_key=True)
    natural_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    command_id: Mapped[str] = mapped_column(String(ID))
    run_id: Mapped[str] = mapped_column(String(ID))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Employment(Base):
    """One employment of an employee, known by its start date: a rehire opens the next cycle of
    its mandatory training, while the same onboarding sent again stays in its own cycle."""

    __tablename__ = "employments"

    org_id: Mapped[str] = mapped_column(String(TEXT), primary_key=True)
    employee_id: Mapped[str] = mapped_column(String(TEXT), primary_key=True)
    start_date: Mapped[date] = mapped_column(Date, primary_key=True)
    cycle: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CatalogItem(Base):
    """Replica of catalog's products, courses and programs (highest version wins)."""

    __tablename__ = "catalog_items"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    org_id: Mapped[str] = _org()
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(TEXT))
    status: Mapped[str] = mapped_column(String(20))
    course_ids: Mapped[list[str]] = mapped_column(JSON, default=list)


class OrgSettings(Base):
    """Default behaviours of an organization; an organization without a row has them all on."""

    __tablename__ = "org_settings"

    org_id: Mapped[str] = mapped_column(String(TEXT), primary_key=True)
    invoice_paid_grants: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Completion(Base):
    """Replica of enrollment's CourseCompleted: the latest completion per user and course."""

    __tablename__ = "completions"

    org_id: Mapped[str] = mapped_column(String(TEXT), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    course_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    completed_at: Mapped[datetime]

    __table_args__ = (Index("ix_completions_course", "org_id", "course_id", "completed_at"),)


class Recertification(Base):
    """The last recertification cycle a rule assigned to a user for a course, and for which
    completion: a completion already recertified is not assigned again."""

    __tablename__ = "recertifications"

    rule_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    course_id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    org_id: Mapped[str] = _org()
    cycle: Mapped[int] = mapped_column(Integer)
    completion_at: Mapped[datetime]
    assigned_on: Mapped[date] = mapped_column(Date)


class WebhookDelivery(Base):
    """A CallWebhook action waiting to be sent (or sent), outside any transaction."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = _id()
    org_id: Mapped[str] = _org()
    run_id: Mapped[str] = mapped_column(String(ID))
    natural_key: Mapped[str] = mapped_column(String(300))
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(500))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    timeout_seconds: Mapped[float] = mapped_column(default=5.0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    response_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("org_id", "natural_key", name="uq_webhook_deliveries_key"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )


class IngressEvent(Base):
    """An event an outside system posted: its id is taken once, whatever is posted again."""

    __tablename__ = "ingress_events"

    event_id: Mapped[str] = mapped_column(String(TEXT), primary_key=True)
    org_id: Mapped[str] = _org()
    event_type: Mapped[str] = mapped_column(String(100))
    client_id: Mapped[str] = mapped_column(String(TEXT))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeadLetter(Base):
    """A message taken from a service's dead-letter queue, for operators to inspect or replay."""

    __tablename__ = "dead_letters"

    id: Mapped[str] = _id()
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    service: Mapped[str] = mapped_column(String(50), index=True)
    queue: Mapped[str] = mapped_column(String(TEXT))
    original_queue: Mapped[str] = mapped_column(String(TEXT))
    original_routing_key: Mapped[str] = mapped_column(String(TEXT))
    reason: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(TEXT))
    org_id: Mapped[str | None] = mapped_column(String(TEXT), index=True)
    event_type: Mapped[str | None] = mapped_column(String(100))
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    dead_lettered_at: Mapped[str | None] = mapped_column(String(64))
    drained_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default="dead")
    replay_count: Mapped[int] = mapped_column(Integer, default=0)
    replayed_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_dead_letters_drained", "drained_at", "id"),)
