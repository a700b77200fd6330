"""Response schemas dumped by compiled functions give exactly what marshmallow gives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from marshmallow import Schema, fields, post_dump

from lms_common.api import CompiledDumpSchema, compile_dumper, page_schema


class Item(Schema):
    id = fields.String()
    title = fields.String()
    count = fields.Integer()
    done = fields.Boolean()
    at = fields.DateTime()
    maybe_at = fields.DateTime(allow_none=True)
    tags = fields.List(fields.String())
    renamed = fields.String(data_key="shown_as")
    sourced = fields.String(attribute="source_field")
    extra = fields.Raw()


class Parent(Schema):
    child = fields.Nested(Item)
    children = fields.Nested(Item, many=True)
    listed = fields.List(fields.Nested(Item))


@dataclass
class ItemObject:
    id: str
    title: str
    count: int
    at: datetime


def as_json(data: Any) -> str:
    """What the client receives: equal values of another type (1 and True) would differ here."""
    return json.dumps(data, sort_keys=True)


NOW = datetime(2026, 11, 24, 10, 30, 5, 123456, tzinfo=UTC)
ITEMS: list[Any] = [
    {
        "id": "a", "title": "T", "count": 3, "done": True, "at": NOW, "maybe_at": None, "tags": ["x", None],
        "renamed": "r", "source_field": "s", "extra": {"k": [1, 2]},
    },
    {"id": 7, "title": b"bytes", "count": "12", "done": None, "at": NOW.astimezone(timezone(timedelta(hours=2)))},
    {"id": "only"},
    {"items": None, "id": "a key named like a dict method"},
    {},
    ItemObject(id="o", title="object", count=1, at=NOW),
]  # fmt: skip


@pytest.mark.parametrize("item", ITEMS)
def test_a_flat_schema_dumps_as_marshmallow_does(item: Any) -> None:
    dumper = compile_dumper(Item())
    assert dumper is not None
    assert as_json(dumper(item)) == as_json(Item().dump(item))


def test_nested_schemas_dump_as_marshmallow_does() -> None:
    parent = {"child": ITEMS[0], "children": ITEMS, "listed": [ITEMS[1], None]}
    dumper = compile_dumper(Parent())
    assert dumper is not None
    assert as_json(dumper(parent)) == as_json(Parent().dump(parent))
    assert as_json(dumper({"child": None})) == as_json(Parent().dump({"child": None}))


def test_a_page_dumps_as_marshmallow_does() -> None:
    fast = page_schema(Item, "ItemPage")()
    slow = Schema.from_dict(
        {"items": fields.List(fields.Nested(Item)), "next_cursor": fields.String(allow_none=True)}, name="SlowPage"
    )()
    for body in ({"items": ITEMS, "next_cursor": None}, {"items": [], "next_cursor": "abc"}):
        assert as_json(fast.dump(body)) == as_json(slow.dump(body))
    assert as_json(fast.dump([{"items": []}], many=True)) == as_json(slow.dump([{"items": []}], many=True))


class WithHook(Schema):
    id = fields.String()

    @post_dump
    def shout(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return {key: value.upper() for key, value in data.items()}


class WithUnknownField(Schema):
    id = fields.Email()
    at = fields.DateTime(format="%Y")
    defaulted = fields.String(dump_default="d")


@pytest.mark.parametrize("schema", [WithHook, WithUnknownField])
def test_other_schemas_are_left_to_marshmallow(schema: type[Schema]) -> None:
    assert compile_dumper(schema()) is None
    page = page_schema(schema, f"{schema.__name__}Page")()
    assert isinstance(page, CompiledDumpSchema)
    body = {"items": [{"id": "a@b.example", "at": NOW}, {}], "next_cursor": None}
    assert page.dump(body)["items"] == schema(many=True).dump(body["items"])
