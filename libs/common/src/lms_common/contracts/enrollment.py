"""Events enrollment publishes: the learning record reporting and automation build on.

Every payload names its organization (``org_id``, the same as the envelope's ``orgid``), the
user it is about and the catalog ids involved, with the titles as they were when the fact
happened, so a report needs nobody else's API. Location and department are not here: reporting
keeps them from identity's UserProvisioned / UserUpdated. Timestamps are RFC 3339 UTC, dates
``YYYY-MM-DD``.

Sources of an enrollment: ``grant`` (a product grant), ``program`` (program membership),
``assignment`` (mandatory training), ``cohort``, ``direct`` (an admin enrolled the user).
"""

from __future__ import annotations

from typing import Any

from lms_common.contracts.schema import DATE, DATE_TIME, EMAIL, ID, NAME, UUID, array, obj
from lms_common.envelope import EventType

NULLABLE_UUID: dict[str, Any] = {"anyOf": [UUID, {"type": "null"}]}
NULLABLE_ID: dict[str, Any] = {"anyOf": [ID, {"type": "null"}]}
NULLABLE_TIME: dict[str, Any] = {"anyOf": [DATE_TIME, {"type": "null"}]}
NULLABLE_DATE: dict[str, Any] = {"anyOf": [DATE, {"type": "null"}]}
TITLE = {"type": "string", "maxLength": 200}
PERCENT = {"type": "integer", "minimum": 0, "maximum": 100}
SOURCE = {"enum": ["grant", "program", "assignment", "cohort", "direct"]}
# Who or what caused the change: "api" (a person, actor_id), "automation" (a command with its
# natural key), "system" (a replica event, a sweep, a merge).
CAUSE = {"enum": ["api", "automation", "system"]}
ACTOR: dict[str, Any] = {"actor_id": NULLABLE_ID, "cause": CAUSE}

_GRANT = {
    "grant_id": UUID,
    "org_id": ID,
    "product_id": UUID,
    "product_title": TITLE,
    # Exactly one of user_id / organization_id is set: the owner.
    "user_id": NULLABLE_UUID,
    "organization_id": NULLABLE_ID,
    "seats": {"type": "integer", "minimum": 0},
    "course_ids": array(UUID),
    **ACTOR,
}

PRODUCT_GRANTED = EventType(
    domain="enrollment",
    name="ProductGranted",
    summary="A product was granted to a user or an organization (its courses open while the product is active).",
    schema=obj(
        {**_GRANT, "granted_at": DATE_TIME, "product_active": {"type": "boolean"}},
        {"natural_key": {"type": "string", "maxLength": 300}},
    ),
)

PRODUCT_REVOKED = EventType(
    domain="enrollment",
    name="ProductRevoked",
    summary="A product grant was revoked; the learning history stays.",
    schema=obj(
        {**_GRANT, "revoked_at": DATE_TIME},
        {"natural_key": {"type": "string", "maxLength": 300}},
    ),
)

SEATS_ASSIGNED = EventType(
    domain="enrollment",
    name="SeatsAssigned",
    summary="A purchaser handed out seats of a grant; each seat holder is granted the product.",
    schema=obj(
        {
            "grant_id": UUID,
            "org_id": ID,
            "product_id": UUID,
            "purchaser_user_id": NULLABLE_UUID,
            "seats_total": {"type": "integer", "minimum": 0},
            "seats_used": {"type": "integer", "minimum": 0},
            "holders": array(
                obj({"email": EMAIL, "user_id": NULLABLE_UUID, "status": {"enum": ["granted", "pending"]}}),
                max_items=10_000,
            ),
            "assigned_at": DATE_TIME,
            **ACTOR,
        }
    ),
)

ENROLLMENT_CREATED = EventType(
    domain="enrollment",
    name="EnrollmentCreated",
    summary="A user was enrolled in a course (the first source; later sources do not repeat this).",
    schema=obj(
        {
            "enrollment_id": UUID,
            "org_id": ID,
            "user_id": UUID,
            "course_id": UUID,
            "course_title": TITLE,
            "source": SOURCE,
            "source_id": NULLABLE_ID,
            "enrolled_at": DATE_TIME,
        }
    ),
)

LESSON_COMPLETED = EventType(
    domain="enrollment",
    name="LessonCompleted",
    summary="A learner completed a published lesson (a quiz lesson through a passing attempt).",
    schema=obj(
        {
            "enrollment_id": UUID,
            "org_id": ID,
            "user_id": UUID,
            "course_id": UUID,
            "lesson_id": UUID,
            "progress_percent": PERCENT,
            "completed_at": DATE_TIME,
        }
    ),
)

COURSE_COMPLETED = EventType(
    domain="enrollment",
    name="CourseCompleted",
    summary="A learner reached 100% of a course's published lessons.",
    schema=obj(
        {
            "enrollment_id": UUID,
            "org_id": ID,
            "user_id": UUID,
            "course_id": UUID,
            "course_title": TITLE,
            "sources": array(SOURCE, max_items=5),
            "enrolled_at": DATE_TIME,
            "completed_at": DATE_TIME,
            # The best passing quiz score in the course, null for a course without quizzes.
            "score_percent": {"anyOf": [PERCENT, {"type": "null"}]},
            "certificate_id": NULLABLE_UUID,
            "verification_code": NULLABLE_ID,
        }
    ),
)

PROGRAM_MEMBER_ADDED = EventType(
    domain="enrollment",
    name="ProgramMemberAdded",
    summary="A user became a member of a program (an enrollment in each of its courses).",
    schema=obj(
        {
            "program_id": UUID,
            "org_id": ID,
            "user_id": UUID,
            "program_title": TITLE,
            "course_ids": array(UUID),
            "added_at": DATE_TIME,
            **ACTOR,
        }
    ),
)

PROGRAM_MEMBER_REMOVED = EventType(
    domain="enrollment",
    name="ProgramMemberRemoved",
    summary="A user stopped being a member of a program; its completed history stays.",
    schema=obj({"program_id": UUID, "org_id": ID, "user_id": UUID, "removed_at": DATE_TIME, **ACTOR}),
)

COHORT_MEMBER_ADDED = EventType(
    domain="enrollment",
    name="CohortMemberAdded",
    summary="A user joined a cohort (an enrollment in each of its courses, source cohort).",
    schema=obj(
        {
            "cohort_id": UUID,
            "org_id": ID,
            "user_id": UUID,
            "cohort_title": TITLE,
            "course_ids": array(UUID),
            "added_at": DATE_TIME,
            **ACTOR,
        }
    ),
)

COHORT_MEMBER_REMOVED = EventType(
    domain="enrollment",
    name="CohortMemberRemoved",
    summary="A user left a cohort: the cohort no longer opens its courses to it; its history stays.",
    schema=obj({"cohort_id": UUID, "org_id": ID, "user_id": UUID, "removed_at": DATE_TIME, **ACTOR}),
)

PROGRAM_COMPLETED = EventType(
    domain="enrollment",
    name="ProgramCompleted",
    summary="A member completed every course of a program.",
    schema=obj(
        {
            "program_id": UUID,
            "org_id": ID,
            "user_id": UUID,
            "program_title": TITLE,
            "course_ids": array(UUID),
            # course id -> when the member completed it, for days-between-courses reports.
            "course_completed_at": {"type": "object", "additionalProperties": DATE_TIME},
            "added_at": DATE_TIME,
            "completed_at": DATE_TIME,
            "certificate_id": NULLABLE_UUID,
            "verification_code": NULLABLE_ID,
        }
    ),
)

_ASSIGNMENT = {
    "assignment_id": UUID,
    "org_id": ID,
    "user_id": UUID,
    # Exactly one of course_id / program_id is set.
    "course_id": NULLABLE_UUID,
    "program_id": NULLABLE_UUID,
    "title": TITLE,
    "due_on": DATE,
    "mandatory": {"type": "boolean"},
    "cycle": {"type": "integer", "minimum": 1},
}

ASSIGNMENT_CREATED = EventType(
    domain="enrollment",
    name="AssignmentCreated",
    summary="A course or program was assigned to a user, due on a date (a new cycle for recertification).",
    schema=obj(
        {**_ASSIGNMENT, "assigned_at": DATE_TIME, **ACTOR},
        {"natural_key": {"type": "string", "maxLength": 300}, "previous_assignment_id": NULLABLE_UUID},
    ),
)

ASSIGNMENT_COMPLETED = EventType(
    domain="enrollment",
    name="AssignmentCompleted",
    summary="A user completed an assigned course or program (on time or late).",
    schema=obj({**_ASSIGNMENT, "completed_at": DATE_TIME, "late": {"type": "boolean"}}),
)

ASSIGNMENT_OVERDUE = EventType(
    domain="enrollment",
    name="AssignmentOverdue",
    summary="An assignment passed its due date incomplete (published once per assignment by the daily sweep).",
    schema=obj({**_ASSIGNMENT, "overdue_since": DATE}),
)

QUIZ_ATTEMPTED = EventType(
    domain="enrollment",
    name="QuizAttempted",
    summary="A learner submitted a quiz attempt, graded on the server from the answer key.",
    schema=obj(
        {
            "attempt_id": UUID,
            "org_id": ID,
            "user_id": UUID,
            "quiz_id": UUID,
            "lesson_id": UUID,
            "course_id": UUID,
            "enrollment_id": UUID,
            "attempt": {"type": "integer", "minimum": 1},
            "max_attempts": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
            "score_percent": PERCENT,
            "pass_percent": PERCENT,
            "passed": {"type": "boolean"},
            "correct": {"type": "integer", "minimum": 0},
            "questions": {"type": "integer", "minimum": 0},
            "submitted_at": DATE_TIME,
        }
    ),
)

CERTIFICATE_ISSUED = EventType(
    domain="enrollment",
    name="CertificateIssued",
    summary="A certificate was issued for a completed course or program; the code verifies it publicly.",
    schema=obj(
        {
            "certificate_id": UUID,
            "org_id": ID,
            "user_id": UUID,
            "course_id": NULLABLE_UUID,
            "program_id": NULLABLE_UUID,
            "title": TITLE,
            "learner_name": NAME,
            "verification_code": ID,
            "issued_at": DATE_TIME,
        }
    ),
)

USER_HISTORY_MERGED = EventType(
    domain="enrollment",
    name="UserHistoryMerged",
    summary="After ContactsMerged, from_user_id's enrollments, progress and certificates now belong to to_user_id.",
    schema=obj(
        {
            "org_id": ID,
            "from_user_id": UUID,
            "to_user_id": UUID,
            "enrollment_ids": array(UUID, max_items=100_000),
            "certificate_ids": array(UUID, max_items=100_000),
            "merged_at": DATE_TIME,
        }
    ),
)

ACCESS_CLOSED = EventType(
    domain="enrollment",
    name="LearnerAccessClosed",
    summary="A disabled user's access to its courses was closed; its history is kept.",
    schema=obj({"org_id": ID, "user_id": UUID, "closed_at": DATE_TIME, "reason": NAME}),
)

EVENTS: list[EventType] = [
    PRODUCT_GRANTED,
    PRODUCT_REVOKED,
    SEATS_ASSIGNED,
    ENROLLMENT_CREATED,
    LESSON_COMPLETED,
    COURSE_COMPLETED,
    PROGRAM_MEMBER_ADDED,
    PROGRAM_MEMBER_REMOVED,
    COHORT_MEMBER_ADDED,
    COHORT_MEMBER_REMOVED,
    PROGRAM_COMPLETED,
    ASSIGNMENT_CREATED,
    ASSIGNMENT_COMPLETED,
    ASSIGNMENT_OVERDUE,
    QUIZ_ATTEMPTED,
    CERTIFICATE_ISSUED,
    USER_HISTORY_MERGED,
    ACCESS_CLOSED,
]
