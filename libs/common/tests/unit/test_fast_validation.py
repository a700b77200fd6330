"""The compiled payload validator agrees with the reference validator on every event type.

Consumers and publishers accept a payload the compiled validator (jsonschema-rs) accepts and ask
the reference validator (python-jsonschema) about the rest, so the compiled one must never accept
what the reference refuses. Payloads are generated from each schema, mostly valid and with wrong
values planted at random depths, from a fixed seed so that a failure can be replayed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from lms_common.contracts import SUITE_EVENTS
from lms_common.envelope import Event, EventCatalog, EventType, InvalidEvent, _fast_validator

SAMPLES_PER_TYPE = 300

# Values that sit on the edges of the schemas' keywords: formats, lengths, integer look-alikes.
TRICKY: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.0,
    1.5,
    10**20,
    "",
    "x",
    "x" * 201,
    "x" * 321,
    [],
    {},
    {"x": 1},
    "2026-02-30",
    "2026-12-01",
    "20261201",
    "2026-W48-2",
    "2026-12-01T10:00:00",
    "2026-12-01T10:00:00Z",
    "2026-12-01T10:00:00+01:00",
    "2026-12-01 10:00:00Z",
    "2026-13-01T10:00:00Z",
    "not-a-uuid",
    str(uuid.uuid4()),
    str(uuid.uuid4()).upper(),
    "{" + str(uuid.uuid4())[:34] + "}",
    "a@b",
    "a@b.example",
    "a b@c.example",
    "@b.example",
    "ü@bücher.example",
]


def value_for(schema: dict[str, Any], rng: random.Random, wrong: float) -> Any:
    """A value for ``schema``: valid where the dice say so, otherwise a tricky one."""
    if rng.random() < wrong:
        return rng.choice(TRICKY)
    if "anyOf" in schema:
        return value_for(rng.choice(schema["anyOf"]), rng, wrong)
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return object_for(schema, rng, wrong)
    if kind == "array":
        count = rng.randint(schema.get("minItems", 0), min(schema.get("maxItems", 3), 3))
        return [value_for(schema.get("items", {}), rng, wrong) for _ in range(count)]
    return scalar_for(schema, rng)


def scalar_for(schema: dict[str, Any], rng: random.Random) -> Any:
    made = {
        "integer": lambda: rng.randint(schema.get("minimum", -5), schema.get("maximum", 1000)),
        "boolean": lambda: rng.random() < 0.5,
        "null": lambda: None,
        "string": lambda: string_for(schema, rng),
    }
    return made.get(schema.get("type", ""), lambda: rng.choice(TRICKY))()


def string_for(schema: dict[str, Any], rng: random.Random) -> str:
    made = {
        "uuid": lambda: str(uuid.UUID(int=rng.getrandbits(128))),
        "email": lambda: f"p{rng.randint(1, 99)}@org{rng.randint(1, 9)}.example",
        "date": lambda: f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "date-time": lambda: f"2026-11-{rng.randint(1, 28):02d}T08:{rng.randint(0, 59):02d}:00Z",
    }
    if schema.get("format") in made:
        return made[schema["format"]]()
    low, high = schema.get("minLength", 0), min(schema.get("maxLength", 12), 12)
    return "".join(rng.choice("abcxyzé- ") for _ in range(rng.randint(low, max(low, high))))


def object_for(schema: dict[str, Any], rng: random.Random, wrong: float) -> dict[str, Any]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    made = {
        name: value_for(sub, rng, wrong) for name, sub in properties.items() if name in required or rng.random() < 0.6
    }
    if required and rng.random() < wrong:
        made.pop(rng.choice(sorted(required)), None)
    if rng.random() < wrong:
        made["unexpected"] = 1
    return made


def reference_accepts(catalog: EventCatalog, type_name: str, data: Any) -> bool:
    return not any(True for _ in catalog._validators[type_name](data))


@pytest.mark.parametrize("event_type", list(SUITE_EVENTS), ids=lambda t: t.name)
def test_compiled_and_reference_validators_agree(event_type: EventType) -> None:
    rng = random.Random(f"fast-validation-{event_type.name}")
    fast = _fast_validator(event_type.schema)
    verdicts = {True: 0, False: 0}
    for n in range(SAMPLES_PER_TYPE):
        data = object_for(event_type.schema, rng, wrong=(n % 4) * 0.08)
        expected = reference_accepts(SUITE_EVENTS, event_type.name, data)
        assert fast(data) is expected, (event_type.name, data)
        verdicts[expected] += 1
    assert verdicts[True] > 0 and verdicts[False] > 0, verdicts  # both verdicts were exercised


def test_a_value_json_cannot_hold_goes_to_the_reference(make_event: Callable[..., Event]) -> None:
    """The compiled validator cannot read a Python object such as a set; the reference decides."""
    event = make_event("UserDisabled", user_id={1, 2})
    with pytest.raises(InvalidEvent, match="user_id"):
        SUITE_EVENTS.validate(event)


def test_refusal_keeps_the_reference_reason(make_event: Callable[..., Event]) -> None:
    event = make_event("UserDisabled", user_id="not-a-uuid")
    with pytest.raises(InvalidEvent, match=r"UserDisabled payload invalid at user_id: 'not-a-uuid' is not a 'uuid'"):
        SUITE_EVENTS.validate(event)
