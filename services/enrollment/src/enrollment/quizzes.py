"""Quiz attempts, graded here from the answer key catalog published in QuizChanged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from enrollment import learning
from enrollment.access import Actor
from enrollment.events import publish, stamp
from enrollment.models import CourseLesson, Enrollment, Quiz, QuizAttempt
from lms_common.contracts import enrollment as contract
from lms_common.errors import Conflict, NotFound


def _norm(answer: Any) -> Any:
    if isinstance(answer, bool):
        return answer
    if isinstance(answer, list):
        return sorted(_norm(item) for item in answer)
    return str(answer).strip().casefold()


def is_correct(question: Mapping[str, Any], given: Any) -> bool:
    """Whether an answer matches the key (text compared trimmed and case-insensitively)."""
    if given is None:
        return False
    key = question["answer"]
    if question["kind"] == "true_false" and isinstance(given, str):
        given = given.strip().lower() == "true"
    if question["kind"] == "multiple_choice" and not isinstance(given, list):
        given = [given]
    return bool(_norm(key) == _norm(given))


def grade(quiz: Quiz, answers: Mapping[str, Any]) -> tuple[int, int, list[dict[str, Any]]]:
    """(correct count, score percent, every answer with its verdict)."""
    marked = [
        {
            "question_id": q["question_id"],
            "answer": answers.get(q["question_id"]),
            "correct": is_correct(q, answers.get(q["question_id"])),
        }
        for q in quiz.questions
    ]
    correct = sum(1 for item in marked if item["correct"])
    score = correct * 100 // len(marked) if marked else 100
    return correct, score, marked


def quiz_in(session: Session, who: Actor, quiz_id: str) -> Quiz:
    quiz = session.get(Quiz, quiz_id)
    if quiz is None or quiz.org_id not in who.orgs():
        raise NotFound("no such quiz", code="quiz_not_found")
    return quiz


def attempt(session: Session, who: Actor, quiz_id: str, answers: Mapping[str, Any]) -> QuizAttempt:
    """Grade a learner's attempt; the attempt limit holds however many arrive at once.

    The learner's enrollment row is locked first (``SELECT ... FOR UPDATE``), so concurrent
    attempts of one learner count one after the other; the unique (user, quiz, attempt) key
    backs that up.
    """
    quiz = quiz_in(session, who, quiz_id)
    if session.get(CourseLesson, (quiz.course_id, quiz.lesson_id)) is None:
        raise NotFound("this quiz's lesson is not published", code="quiz_not_found")
    enrollment = _locked_enrollment(session, who, quiz)
    learning.check_may_learn(session, enrollment)
    used = (
        session.scalar(select(func.count()).where(QuizAttempt.user_id == who.user, QuizAttempt.quiz_id == quiz.id)) or 0
    )
    if quiz.max_attempts is not None and used >= quiz.max_attempts:
        raise Conflict(f"all {quiz.max_attempts} attempts are used", code="attempts_exhausted")
    correct, score, marked = grade(quiz, answers)
    row = QuizAttempt(
        org_id=enrollment.org_id, user_id=who.user, quiz_id=quiz.id, enrollment_id=enrollment.id,
        attempt=used + 1, score_percent=score, passed=score >= quiz.pass_percent, answers=marked,
    )  # fmt: skip
    session.add(row)
    session.flush()
    _publish(session, quiz, enrollment, row, correct)
    if row.passed:
        learning.record_lesson(session, enrollment, quiz.lesson_id)
    return row


def _locked_enrollment(session: Session, who: Actor, quiz: Quiz) -> Enrollment:
    learning.open_grant_enrollments(session, who.user, who.org)
    query = select(Enrollment).where(Enrollment.user_id == who.user, Enrollment.course_id == quiz.course_id)
    enrollment = session.scalar(query.with_for_update().execution_options(populate_existing=True))
    if enrollment is None:
        raise NotFound("you are not enrolled in this quiz's course", code="enrollment_not_found")
    return enrollment


def _publish(session: Session, quiz: Quiz, enrollment: Enrollment, row: QuizAttempt, correct: int) -> None:
    payload = {
        "attempt_id": row.id,
        "org_id": row.org_id,
        "user_id": row.user_id,
        "quiz_id": quiz.id,
        "lesson_id": quiz.lesson_id,
        "course_id": quiz.course_id,
        "enrollment_id": enrollment.id,
        "attempt": row.attempt,
        "max_attempts": quiz.max_attempts,
        "score_percent": row.score_percent,
        "pass_percent": quiz.pass_percent,
        "passed": row.passed,
        "correct": correct,
        "questions": len(quiz.questions),
        "submitted_at": stamp(row.submitted_at),
    }
    publish(session, contract.QUIZ_ATTEMPTED, row.org_id, payload)
