"""An in-memory stand-in for RabbitMQ, for unit tests only.

It has the publisher interface the relay uses and delivers to a :class:`MessageProcessor` the
way the consumer does (batches, retries, dead letters), so handlers and use cases can be tested
with SQLite and no broker. Integration tests use the real RabbitMQ.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence

from lms_common.envelope import Event, EventCatalog
from lms_common.messaging import Confirm, OutgoingMessage, PublishOutcome
from lms_common.processing import Delivery, MessageProcessor, Outcome, Result


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more."""

    def match(words: list[str], keys: list[str]) -> bool:
        if not words:
            return not keys
        head, rest = words[0], words[1:]
        if head == "#":
            return any(match(rest, keys[i:]) for i in range(len(keys) + 1))
        return bool(keys) and head in ("*", keys[0]) and match(rest, keys[1:])

    return match(pattern.split("."), routing_key.split("."))


class InMemoryBus:
    def __init__(self) -> None:
        self.bindings: dict[str, set[str]] = defaultdict(set)
        self.queues: dict[str, deque[Delivery]] = defaultdict(deque)
        self.dead_letters: dict[str, list[tuple[Delivery, str]]] = defaultdict(list)
        self.published: list[OutgoingMessage] = []

    def bind(self, queue: str, routing_keys: Iterable[str]) -> None:
        self.bindings[queue].update(routing_keys)
        self.queues.setdefault(queue, deque())

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishOutcome]:
        return [self._route(message) for message in messages]

    def publish_event(self, event: Event, catalog: EventCatalog) -> PublishOutcome:
        """Publish as an outside system would, straight onto the bus."""
        message = OutgoingMessage(catalog.routing_key(event), event.to_json(), event.id, event_type=event.type)
        return self._route(message)

    def publish_raw(self, routing_key: str, body: bytes, message_id: str | None = None) -> PublishOutcome:
        return self._route(OutgoingMessage(routing_key, body, message_id or ""))

    def _route(self, message: OutgoingMessage) -> PublishOutcome:
        self.published.append(message)
        targets = [q for q, keys in self.bindings.items() if any(topic_matches(k, message.routing_key) for k in keys)]
        for queue in targets:
            self.queues[queue].append(
                Delivery(message.body, message.routing_key, message.message_id, dict(message.headers))
            )
        return PublishOutcome(Confirm.CONFIRMED) if targets else PublishOutcome(Confirm.RETURNED, "no route")

    def drain(
        self, queue: str, processor: MessageProcessor, *, max_attempts: int = 5, batch_size: int = 100
    ) -> list[Result]:
        """Deliver until the queue is empty; failing messages are retried, then dead-lettered."""
        results: list[Result] = []
        pending = self.queues[queue]
        while pending:
            batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
            for delivery, result in zip(batch, processor.process(batch), strict=True):
                results.append(result)
                self._settle(queue, delivery, result, max_attempts)
        return results

    def _settle(self, queue: str, delivery: Delivery, result: Result, max_attempts: int) -> None:
        if result.outcome is Outcome.RETRY:
            delivery.attempts += 1
            if delivery.attempts < max_attempts:
                self.queues[queue].append(delivery)
                return
        if result.outcome in (Outcome.RETRY, Outcome.DEAD_LETTER):
            self.dead_letters[queue].append((delivery, result.reason or ""))
