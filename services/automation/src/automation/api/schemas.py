"""Request and response bodies of the automation API (requests are strict: unknown fields are 422)."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from automation.deadletters import SERVICES
from automation.evaluation import RUN_STATUSES
from automation.rules import ActionField, Condition, flag
from lms_common.api import PageArgs, StrictSchema, page_schema

NAME = validate.Length(min=1, max=200)


def _conditions(**kwargs: object) -> fields.List:  # type: ignore[type-arg]
    return fields.List(fields.Nested(Condition), validate=validate.Length(max=50), **kwargs)  # type: ignore[arg-type]


def _actions(**kwargs: object) -> fields.List:  # type: ignore[type-arg]
    return fields.List(ActionField(), validate=validate.Length(min=1, max=20), **kwargs)  # type: ignore[arg-type]


class RuleCreate(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    trigger = fields.String(required=True, validate=validate.Length(min=1, max=100))
    conditions = _conditions(load_default=list)
    actions = _actions(required=True)
    enabled = flag(load_default=True)


class RuleUpdate(StrictSchema):
    name = fields.String(validate=NAME)
    trigger = fields.String(validate=validate.Length(min=1, max=100))
    conditions = _conditions()
    actions = _actions()
    enabled = flag()


class RuleQuery(PageArgs):
    trigger = fields.String(validate=validate.Length(max=100))
    enabled = fields.Boolean()


class RuleOut(Schema):
    id = fields.String()
    name = fields.String()
    trigger = fields.String()
    conditions = fields.List(fields.Dict())
    actions = fields.List(fields.Dict())
    enabled = fields.Boolean()
    version = fields.Integer()
    created_by = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class RunQuery(PageArgs):
    rule_id = fields.String(validate=validate.Length(max=100))
    status = fields.String(validate=validate.OneOf(RUN_STATUSES))
    event_id = fields.String(validate=validate.Length(max=200))


class RunOut(Schema):
    id = fields.String()
    rule_id = fields.String(allow_none=True)
    rule_key = fields.String()
    event_id = fields.String()
    event_type = fields.String()
    matched = fields.Boolean()
    status = fields.String()
    actions = fields.List(fields.Dict())
    error = fields.String(allow_none=True)
    attempts = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class Defaults(StrictSchema):
    invoice_paid_grants = flag(required=True)


class Accepted(Schema):
    id = fields.String()


class DeadLetterQuery(PageArgs):
    service = fields.String(validate=validate.OneOf(SERVICES))
    status = fields.String(validate=validate.OneOf(["dead", "replayed"]))
    drain = fields.Boolean(load_default=True, metadata={"description": "take new dead letters from the queues first"})


class DeadLetterOut(Schema):
    id = fields.String()
    service = fields.String()
    queue = fields.String()
    original_queue = fields.String()
    original_routing_key = fields.String()
    reason = fields.String()
    message_id = fields.String(allow_none=True)
    org_id = fields.String(allow_none=True)
    event_type = fields.String(allow_none=True)
    headers = fields.Dict()
    payload = fields.Raw(metadata={"description": "the body as JSON, or as text when it is not JSON"})
    dead_lettered_at = fields.String(allow_none=True)
    drained_at = fields.DateTime()
    status = fields.String()
    replay_count = fields.Integer()
    replayed_at = fields.DateTime(allow_none=True)


class Replay(StrictSchema):
    to = fields.String(load_default="queue", validate=validate.OneOf(["queue", "exchange"]))


class ReplayMany(Replay):
    ids = fields.List(
        fields.String(validate=validate.Length(max=36)), required=True, validate=validate.Length(min=1, max=500)
    )


class Purge(StrictSchema):
    ids = fields.List(fields.String(validate=validate.Length(max=36)), validate=validate.Length(min=1, max=500))
    all = flag(load_default=False, metadata={"description": "every dead letter the caller sees"})


class Count(Schema):
    count = fields.Integer()


RulePage = page_schema(RuleOut, "RulePage")
RunPage = page_schema(RunOut, "RunPage")
DeadLetterPage = page_schema(DeadLetterOut, "DeadLetterPage")
