"""Hand-built, schema-valid events of the suite, and a scenario with known answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from lms_common.contracts import SUITE_EVENTS
from lms_common.envelope import Event, format_time

ORG, OTHER_ORG = "org-1", "org-2"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def uid(name: str) -> str:
    """A stable UUID for a readable name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def at(days: float) -> str:
    return format_time(T0 + timedelta(days=days))


def event(kind: str, days: float, org: str = ORG, /, **data: Any) -> Event:
    """A validated event of ``kind`` happening ``days`` after T0."""
    built = Event(type=kind, data=data, orgid=org, source="/test", time=T0 + timedelta(days=days))
    return SUITE_EVENTS.validate(built)


def location(name: str, parent: str | None = None, org: str = ORG) -> Event:
    return event("LocationCreated", 0, org, location_id=uid(name), org_id=org, name=name, code=name[:3],
                 parent_id=uid(parent) if parent else None)  # fmt: skip


def user(
    name: str, loc: str | None, days: float = 0, org: str = ORG, kind: str = "UserProvisioned", **extra: Any
) -> Event:
    data = {"user_id": uid(name), "email": f"{name}@example.com", "org_id": org, "first_name": name.title(),
            "last_name": "Tester", "department": extra.pop("department", "Ops"),
            "location_id": uid(loc) if loc else None, "kind": "staff"}  # fmt: skip
    if kind == "UserProvisioned":
        data |= {"cause": "api", "cause_event_id": None, "created": True}
    return event(kind, days, org, **data, **extra)


def course(name: str, version: int = 1, days: float = 0, org: str = ORG, title: str | None = None) -> Event:
    return event("CoursePublished", days, org, course_id=uid(name), version=version, title=title or name.title(),
                 status="published", lesson_ids=[uid(f"{name}-l1"), uid(f"{name}-l2")], quiz_ids=[],
                 derived_from=None, created_by="author")  # fmt: skip


def program(name: str, courses: list[str], org: str = ORG) -> Event:
    return event("ProgramPublished", 0, org, program_id=uid(name), version=1, title=name.title(), published=True,
                 enforce_course_order=True, course_ids=[uid(c) for c in courses])  # fmt: skip


def enrolled(who: str, what: str, days: float, org: str = ORG) -> Event:
    return event("EnrollmentCreated", days, org, enrollment_id=uid(f"{who}/{what}"), org_id=org, user_id=uid(who),
                 course_id=uid(what), course_title=what.title(), source="assignment", source_id=None,
                 enrolled_at=at(days))  # fmt: skip


def lesson(who: str, what: str, n: int, percent: int, days: float, *, org: str = ORG) -> Event:
    return event("LessonCompleted", days, org, enrollment_id=uid(f"{who}/{what}"), org_id=org, user_id=uid(who),
                 course_id=uid(what), lesson_id=uid(f"{what}-l{n}"), progress_percent=percent,
                 completed_at=at(days))  # fmt: skip


def completed(
    who: str, what: str, days: float, *, score: int | None = 90, code: str | None = None, org: str = ORG
) -> Event:
    return event("CourseCompleted", days, org, enrollment_id=uid(f"{who}/{what}"), org_id=org, user_id=uid(who),
                 course_id=uid(what), course_title=what.title(), sources=["assignment"], enrolled_at=at(0),
                 completed_at=at(days), score_percent=score, certificate_id=uid(code) if code else None,
                 verification_code=code)  # fmt: skip


def assigned(who: str, what: str, due_days: int, days: float = 0, org: str = ORG, **extra: Any) -> Event:
    return event("AssignmentCreated", days, org, **_assignment(who, what, due_days, org, extra.pop("cycle", 1)),
                 assigned_at=at(days), actor_id=None, cause="automation", **extra)  # fmt: skip


def _assignment(who: str, what: str, due_days: int, org: str, cycle: int = 1) -> dict[str, Any]:
    return {"assignment_id": uid(f"a/{who}/{what}/{cycle}"), "org_id": org, "user_id": uid(who), "course_id": uid(what),
            "program_id": None, "title": what.title(), "due_on": (T0 + timedelta(days=due_days)).date().isoformat(),
            "mandatory": True, "cycle": cycle}  # fmt: skip


def assignment_done(who: str, what: str, due_days: int, days: float, org: str = ORG) -> Event:
    return event("AssignmentCompleted", days, org, **_assignment(who, what, due_days, org), completed_at=at(days),
                 late=days > due_days)  # fmt: skip


def member(who: str, prog: str, courses: list[str], days: float, org: str = ORG) -> Event:
    return event("ProgramMemberAdded", days, org, program_id=uid(prog), org_id=org, user_id=uid(who),
                 program_title=prog.title(), course_ids=[uid(c) for c in courses], added_at=at(days), actor_id=None,
                 cause="api")  # fmt: skip


def quiz(who: str, what: str, n: int, score: int, days: float, *, org: str = ORG) -> Event:
    return event("QuizAttempted", days, org, attempt_id=uid(f"q/{who}/{what}/{n}"), org_id=org, user_id=uid(who),
                 quiz_id=uid(f"{what}-quiz"), lesson_id=uid(f"{what}-l2"), course_id=uid(what),
                 enrollment_id=uid(f"{who}/{what}"), attempt=n, max_attempts=3, score_percent=score, pass_percent=70,
                 passed=score >= 70, correct=score // 10, questions=10, submitted_at=at(days))  # fmt: skip


def certificate(who: str, what: str, code: str, days: float, org: str = ORG) -> Event:
    return event("CertificateIssued", days, org, certificate_id=uid(code), org_id=org, user_id=uid(who),
                 course_id=uid(what), program_id=None, title=what.title(), learner_name=who.title(),
                 verification_code=code, issued_at=at(days))  # fmt: skip


def scenario() -> list[Event]:
    """Two locations (north with a child north-east, and south), three learners, a program of
    two courses, mandatory assignments, and a learner of another organization."""
    return [
        location("north"), location("north-east", "north"), location("south"),
        user("ann", "north"), user("bob", "north-east"), user("cat", "south"),
        user("zed", None, org=OTHER_ORG),
        course("safety"), course("privacy"), program("onboarding", ["safety", "privacy"]),
        member("ann", "onboarding", ["safety", "privacy"], 0.5),
        member("bob", "onboarding", ["safety", "privacy"], 0.5),
        enrolled("ann", "safety", 1), enrolled("ann", "privacy", 1), enrolled("bob", "safety", 1),
        enrolled("cat", "safety", 2),
        lesson("ann", "safety", 1, 50, 2), lesson("ann", "safety", 2, 100, 3),
        quiz("ann", "safety", 1, 60, 2.5), quiz("ann", "safety", 2, 95, 3),
        completed("ann", "safety", 3, score=95, code="CERT-ANN-1"),
        lesson("ann", "privacy", 1, 50, 5), lesson("ann", "privacy", 2, 100, 7),
        completed("ann", "privacy", 7, score=None),
        certificate("ann", "privacy", "CERT-ANN-2", 7.5),
        lesson("bob", "safety", 1, 50, 4),
        assigned("ann", "safety", 10), assigned("bob", "safety", 3650), assigned("cat", "safety", 3),
        assigned("cat", "privacy", 3650),
        assignment_done("ann", "safety", 10, 3),
        enrolled("zed", "safety", 1, org=OTHER_ORG), completed("zed", "safety", 2, org=OTHER_ORG, code="CERT-ZED"),
        assigned("zed", "safety", 1, org=OTHER_ORG),
    ]  # fmt: skip
