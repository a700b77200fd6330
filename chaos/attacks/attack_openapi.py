"""Every operation of every service, read from its /openapi.json, and bodies that fit them."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any

import requests
from harness import SERVICES, Suite

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Operation:
    service: str
    method: str
    path: str  # the template, e.g. /v1/courses/{course_id}
    permissions: tuple[str, ...]  # empty: public
    body_schema: dict[str, Any] | None
    spec: dict[str, Any]
    takes_body: bool = False  # JSON or any other request body

    @property
    def by_id(self) -> bool:
        return "{" in self.path

    def shadows(self, path: str) -> bool:
        """True when this operation's template also matches the concrete ``path``."""
        pattern = re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(self.path))
        return re.fullmatch(pattern, path) is not None

    @property
    def name(self) -> str:
        return f"{self.service} {self.method.upper()} {self.path}"

    def url(self, suite: Suite, ids: dict[str, str]) -> str:
        path = self.path
        while "{" in path:
            start, end = path.index("{"), path.index("}")
            name = path[start + 1 : end]
            path = path[:start] + ids.get(name, str(uuid.uuid4())) + path[end + 1 :]
        return suite.url(self.service, path)

    def body(self, text: str = "x", ids: dict[str, str] | None = None) -> Any:
        """A body the schema accepts, every free text field holding ``text``."""
        if self.body_schema is None:
            return None
        return example(self.spec, self.body_schema, text, ids or {}, "")


@cache
def _document(url: str) -> dict[str, Any]:
    return dict(requests.get(url, timeout=30).json())


def operations(suite: Suite) -> list[Operation]:
    found = []
    for service in SERVICES:
        spec = _document(suite.url(service, "/openapi.json"))
        for path, item in spec["paths"].items():
            for method in METHODS:
                if method not in item:
                    continue
                operation = item[method]
                security = operation.get("security") or []
                permissions = tuple(p for rule in security for p in rule.get("bearerAuth", []))
                content = (operation.get("requestBody") or {}).get("content", {})
                schema = content.get("application/json", {}).get("schema")
                takes_body = "requestBody" in operation
                found.append(Operation(service, method, path, permissions, schema, spec, takes_body))
    return found


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged.update(_resolve(spec, part))
        return merged
    return schema


def example(  # noqa: PLR0911 - one return per JSON Schema type
    spec: dict[str, Any], schema: dict[str, Any], text: str, ids: dict[str, str], name: str
) -> Any:
    schema = _resolve(spec, schema)
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        return {
            key: example(spec, value, text, ids, key) for key, value in properties.items() if not value.get("readOnly")
        }
    if kind == "array":
        return [example(spec, schema.get("items", {}), text, ids, name.removesuffix("s"))]
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    if kind == "string":
        return _string(schema, text, ids, name)
    return text


def _string(schema: dict[str, Any], text: str, ids: dict[str, str], name: str) -> str:
    form = schema.get("format")
    if name.endswith("_id") or name.endswith("_ids") or name == "id":
        return ids.get(name.removesuffix("s"), str(uuid.uuid4()))
    if form == "email" or "email" in name:
        return f"a{uuid.uuid4().hex[:8]}@attack.test"
    if form == "date":
        return "2030-01-01"
    if form == "date-time":
        return "2030-01-01T00:00:00Z"
    if form in ("url", "uri"):
        return "https://example.com/x"
    return text[: schema.get("maxLength", len(text))] if schema.get("maxLength") else text
