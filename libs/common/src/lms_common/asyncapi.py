"""Writes ``asyncapi.yaml``: every event of the suite, who publishes it and who consumes it.

``python -m lms_common.asyncapi identity catalog ...`` asks each named service, in a process of
its own (services never share an interpreter), which event types it handles, and prints the
AsyncAPI 3 document built from :mod:`lms_common.contracts`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from lms_common.contracts import SUITE_EVENTS
from lms_common.envelope import EventCatalog, EventType

OUTSIDE_DOMAINS = {"billing": "the billing system", "hr": "the HR system"}


def consumed_types(service: str) -> list[str]:
    code = f"import json; from {service}.service import SERVICE; print(json.dumps(sorted(SERVICE.all_handlers)))"
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return list(json.loads(output.strip().splitlines()[-1]))


def envelope_schema(event_type: EventType) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["specversion", "id", "source", "type", "time", "orgid", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string"},
            "source": {"type": "string"},
            "type": {"const": event_type.name},
            "time": {"type": "string", "format": "date-time"},
            "orgid": {"type": "string", "description": "the organization the fact belongs to"},
            "subject": {"type": "string"},
            "datacontenttype": {"const": "application/json"},
            "data": event_type.schema,
        },
    }


def document(consumers: Mapping[str, Sequence[str]], catalog: EventCatalog = SUITE_EVENTS) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type in sorted(catalog, key=lambda t: t.routing_key):
        key = event_type.routing_key
        publisher = OUTSIDE_DOMAINS.get(event_type.domain, f"the {event_type.domain} service")
        readers = sorted(service for service, types in consumers.items() if event_type.name in types)
        messages[event_type.name] = {
            "name": event_type.name,
            "summary": event_type.summary,
            "contentType": "application/cloudevents+json",
            "payload": envelope_schema(event_type),
        }
        channels[key] = {
            "address": key,
            "description": f"Published by {publisher}; consumed by {', '.join(readers) or 'no service yet'}.",
            "messages": {event_type.name: {"$ref": f"#/components/messages/{event_type.name}"}},
            "bindings": {
                "amqp": {"is": "routingKey", "exchange": {"name": "lms.events", "type": "topic", "durable": True}}
            },
        }
        operations[f"publish{event_type.name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": f"{publisher} publishes {event_type.name}",
        }
        for reader in readers:
            operations[f"{reader}Receives{event_type.name}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{key}"},
                "summary": f"{reader} handles {event_type.name} from its queue '{reader}'",
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "LMS event bus",
            "version": "1.0.0",
            "description": "CloudEvents 1.0 (JSON structured mode) on the topic exchange lms.events, "
            "routing key <domain>.<Type>. Generated from lms_common.contracts: do not edit by hand.",
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {"local": {"host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def render(consumers: Mapping[str, Sequence[str]]) -> str:
    import yaml

    return str(yaml.safe_dump(document(consumers), sort_keys=False, width=100))


def main(argv: Sequence[str]) -> int:
    print(render({service: consumed_types(service) for service in argv}), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
