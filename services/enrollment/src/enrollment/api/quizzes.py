"""Quiz attempts, graded on the server."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from enrollment import quizzes
from enrollment.access import LEARN, actor
from enrollment.api import schemas as s
from lms_common.api import unit_of_work
from lms_common.auth import require

blp = Blueprint("quizzes", __name__, url_prefix="/v1", description="Quiz attempts")


@blp.route("/quizzes/<quiz_id>/attempts", methods=["POST"])
@require(LEARN)
@blp.arguments(s.Attempt)
@blp.response(201, s.AttemptOut)
@blp.alt_response(409, description="every attempt is used (code attempts_exhausted), or course_locked")
def submit_attempt(body: dict[str, Any], quiz_id: str) -> Any:
    """Submit answers (question id -> answer); graded from the answer key, a pass completes the lesson"""
    with unit_of_work() as session:
        row = quizzes.attempt(session, actor(), quiz_id, body["answers"])
        return {"id": row.id, "score_percent": row.score_percent, "passed": row.passed, "attempt": row.attempt}
