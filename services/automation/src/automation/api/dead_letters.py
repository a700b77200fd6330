"""Dead letters of every service: list, replay, purge.

A caller sees the dead letters of its own organization; those whose organization cannot be
read from the body (not JSON, no ``orgid``) only callers who also hold ``settings:write``.
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint
from sqlalchemy import ColumnElement, delete, or_, select

from automation import deadletters, views
from automation.api import schemas as s
from automation.api.common import READERS, WRITERS, listing
from automation.models import DeadLetter
from lms_common.api import runtime, unit_of_work
from lms_common.auth import Principal, current_principal, require
from lms_common.errors import NotFound

blp = Blueprint("dead_letters", __name__, url_prefix="/v1", description="Dead letters of every service")


def visible(principal: Principal) -> ColumnElement[bool]:
    if principal.has("settings:write"):
        return or_(DeadLetter.org_id == principal.org, DeadLetter.org_id.is_(None))
    return DeadLetter.org_id == principal.org


@blp.route("/dead-letters")
@require(*READERS)
@blp.arguments(s.DeadLetterQuery, location="query")
@blp.response(200, s.DeadLetterPage)
def list_dead_letters(args: dict[str, Any]) -> Any:
    """List dead letters with reason, original routing key and payload (drained from the queues first)"""
    rt = runtime()
    if args["drain"]:
        deadletters.drain_quietly(rt.session_factory, rt.settings)
    query = select(DeadLetter).where(visible(current_principal()))
    for column, value in ((DeadLetter.service, args.get("service")), (DeadLetter.status, args.get("status"))):
        if value:
            query = query.where(column == value)
    return listing(query, [DeadLetter.drained_at, DeadLetter.id], args, views.dead_letter)


def _letters(session: Any, ids: list[str]) -> list[DeadLetter]:
    query = select(DeadLetter).where(DeadLetter.id.in_(ids), visible(current_principal()))
    found = {letter.id: letter for letter in session.scalars(query)}
    missing = [letter_id for letter_id in ids if letter_id not in found]
    if missing:
        raise NotFound(f"no dead letter {', '.join(missing)}", code="not_found")
    return [found[letter_id] for letter_id in ids]


@blp.route("/dead-letters/<letter_id>/replay", methods=["POST"])
@require(*WRITERS)
@blp.arguments(s.Replay)
@blp.response(200, s.DeadLetterOut)
@blp.alt_response(409, description="nothing takes the message where it would go")
def replay_dead_letter(body: dict[str, Any], letter_id: str) -> Any:
    """Replay one dead letter to its original queue (or, `to: exchange`, to the bus under its routing key)"""
    with unit_of_work() as session:
        letter = _letters(session, [letter_id])[0]
        deadletters.replay(runtime().settings, letter, body["to"])
        return views.dead_letter(letter)


@blp.route("/dead-letters/replay", methods=["POST"])
@require(*WRITERS)
@blp.arguments(s.ReplayMany)
@blp.response(200, s.Count)
def replay_dead_letters(body: dict[str, Any]) -> Any:
    """Replay many dead letters, in the order given"""
    with unit_of_work() as session:
        letters = _letters(session, body["ids"])
        for letter in letters:
            deadletters.replay(runtime().settings, letter, body["to"])
        return {"count": len(letters)}


@blp.route("/dead-letters/<letter_id>", methods=["DELETE"])
@require(*WRITERS)
@blp.response(204)
def purge_dead_letter(letter_id: str) -> None:
    """Purge one dead letter from the view"""
    with unit_of_work() as session:
        session.delete(_letters(session, [letter_id])[0])


@blp.route("/dead-letters/purge", methods=["POST"])
@require(*WRITERS)
@blp.arguments(s.Purge)
@blp.response(200, s.Count)
def purge_dead_letters(body: dict[str, Any]) -> Any:
    """Purge the given dead letters, or (`all: true`) every one the caller sees"""
    with unit_of_work() as session:
        condition = visible(current_principal())
        if not body["all"]:
            condition = condition & DeadLetter.id.in_(
                [letter.id for letter in _letters(session, body.get("ids") or [])]
            )
        result = session.execute(delete(DeadLetter).where(condition))
        return {"count": int(getattr(result, "rowcount", 0) or 0)}
