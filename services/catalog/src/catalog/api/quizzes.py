"""Quizzes of quiz lessons; learners never see the answer key."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from catalog import services, views
from catalog.api import schemas as s
from catalog.api.common import READERS, WRITERS, actor
from lms_common.api import unit_of_work
from lms_common.auth import require

blp = Blueprint("quizzes", __name__, url_prefix="/v1", description="Quizzes")


@blp.route("/quizzes", methods=["POST"])
@require(*WRITERS)
@blp.arguments(s.QuizCreate)
@blp.response(201, s.QuizOut)
@blp.alt_response(409, description="the lesson is not a quiz lesson, or already has a quiz")
def create_quiz(body: dict[str, Any]) -> Any:
    """Create the quiz of a quiz lesson: questions, pass percent, max attempts"""
    with unit_of_work() as session:
        return views.quiz(services.create_quiz(session, actor(), body), answers=True)


@blp.route("/quizzes/<quiz_id>")
class QuizItem(MethodView):
    @require(*READERS)
    @blp.response(200, s.QuizOut)
    def get(self, quiz_id: str) -> Any:
        """Read a quiz (the answers only for those who may edit it)"""
        who = actor()
        with unit_of_work() as session:
            quiz = services.get_quiz(session, who, quiz_id)
            return views.quiz(quiz, answers=services.shows_answers(session, who, quiz))

    @require(*WRITERS)
    @blp.arguments(s.QuizUpdate)
    @blp.response(200, s.QuizOut)
    def patch(self, body: dict[str, Any], quiz_id: str) -> Any:
        """Change a quiz's pass percent, attempt limit or questions (replaced as a whole)"""
        with unit_of_work() as session:
            return views.quiz(services.update_quiz(session, actor(), quiz_id, body), answers=True)
