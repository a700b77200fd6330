"""Recertification: on the daily tick, assign a course again to everyone whose last completion
of it is older than N months, in a new cycle with a new due date.

The completions come from enrollment's CourseCompleted (see :mod:`automation.replica`). A
completion that has been recertified once is not recertified again: the next cycle waits for
the next completion to grow old. Cycle 1 is the first assignment; recertifications are 2, 3...
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation import commands
from automation.commands import Step
from automation.models import Completion, Recertification
from lms_common.envelope import Event


def months_before(day: date, months: int) -> date:
    """The same day ``months`` earlier (clamped to the month's last day)."""
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    last_day = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last_day))


def plan(session: Session, event: Event, rule_id: str, today: date, action: Mapping[str, Any]) -> list[Step]:
    """The recertification assignments one rule owes today, one per (user, course)."""
    cutoff = datetime.combine(months_before(today, action["every_months"]), time.min, tzinfo=UTC)
    due_on = today + timedelta(days=action["due_in_days"])
    mandatory = action.get("mandatory", True)
    steps = []
    for course_id in action.get("course_ids", []):
        for completion in _stale(session, event.orgid, course_id, cutoff):
            cycle = _next_cycle(session, rule_id, completion, today)
            if cycle is None:
                continue
            steps.append(
                commands.recertify(
                    event, rule_id, completion.user_id, course_id, due_on=due_on, cycle=cycle, mandatory=mandatory
                )
            )
    return steps


def _stale(session: Session, org: str, course_id: str, cutoff: datetime) -> list[Completion]:
    query = select(Completion).where(
        Completion.org_id == org, Completion.course_id == course_id, Completion.completed_at < cutoff
    )
    return list(session.scalars(query.order_by(Completion.user_id)))


def _next_cycle(session: Session, rule_id: str, completion: Completion, today: date) -> int | None:
    """The cycle to assign for this completion, or None when it was recertified already."""
    key = (rule_id, completion.user_id, completion.course_id)
    state = session.get(Recertification, key)
    if state is not None and state.completion_at >= completion.completed_at:
        return None
    if state is None:
        state = Recertification(rule_id=rule_id, user_id=completion.user_id, course_id=completion.course_id, cycle=1)
        state.org_id = completion.org_id
        session.add(state)
    state.cycle += 1
    state.completion_at, state.assigned_on = completion.completed_at, today
    return state.cycle
