"""Building blocks of the payload schemas (JSON Schema 2020-12)."""

from __future__ import annotations

from typing import Any

ID = {"type": "string", "minLength": 1, "maxLength": 200}
UUID = {"type": "string", "format": "uuid", "minLength": 36, "maxLength": 36}
EMAIL = {"type": "string", "format": "email", "maxLength": 320}
NAME = {"type": "string", "maxLength": 200}
DATE = {"type": "string", "format": "date"}
DATE_TIME = {"type": "string", "format": "date-time"}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None, *, strict: bool = True) -> dict[str, Any]:
    """A JSON Schema object with these required and optional properties.

    Events from outside systems are read tolerantly (``strict=False``): a billing system that
    adds a field must not see its invoices dead-lettered. Our own events are strict.
    """
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": sorted(required),
        "additionalProperties": not strict,
    }


def array(items: dict[str, Any], *, min_items: int = 0, max_items: int = 10_000) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": min_items, "maxItems": max_items}
