"""Answers encoded by orjson read as Flask's own encoder would have written them."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask, jsonify

from lms_common.api import FastJSONProvider


@dataclasses.dataclass
class Due:
    course: str
    on: date


def fast_app(debug: bool = False) -> Flask:
    app = Flask("fast")
    app.debug = debug
    app.json = FastJSONProvider(app)
    return app


def answer(app: Flask, value: Any) -> bytes:
    with app.app_context():
        return bytes(jsonify(value).get_data())


CASES = [
    {"title": "Fire safety", "position": 3, "ratio": 0.25, "published": True, "removed_at": None},
    {"b": [1, {"d": 2, "c": 3}], "a": "first"},
    {3: "three", 1: "one"},
    {
        "at": datetime(2026, 11, 24, 9, 30, 5, 120, tzinfo=UTC),
        "on": date(2026, 11, 24),
        "id": uuid.UUID(int=7),
        "price": Decimal("19.90"),
        "due": Due("c-1", date(2026, 12, 1)),
    },
    {"huge": 2**70, "negative": -(2**63)},
    [],
]


@pytest.mark.parametrize("value", CASES)
def test_the_same_document_as_flask_byte_for_byte_where_all_is_ascii(value: Any) -> None:
    assert answer(fast_app(), value) == answer(Flask("reference"), value)


def test_text_outside_ascii_is_utf8_and_reads_the_same() -> None:
    value = {"title": "Sécurité incendie \u2028 消防安全", "nul": "a\x00b"}
    fast, reference = answer(fast_app(), value), answer(Flask("reference"), value)
    assert "Sécurité incendie \u2028 消防安全".encode() in fast
    assert json.loads(fast) == json.loads(reference) == value


def test_debug_answers_stay_indented_for_people() -> None:
    value = {"b": 1, "a": [1, 2]}
    assert answer(fast_app(debug=True), value) == answer(_debug_reference(), value)
    assert b"\n  " in answer(fast_app(debug=True), value)


def _debug_reference() -> Flask:
    reference = Flask("reference")
    reference.debug = True
    return reference


def test_what_neither_encoder_knows_is_still_an_error() -> None:
    with pytest.raises(TypeError):
        answer(fast_app(), {"value": object()})


def test_every_service_app_answers_with_it() -> None:
    from lms_common.api import _App

    assert isinstance(_App("catalog").json, FastJSONProvider)
