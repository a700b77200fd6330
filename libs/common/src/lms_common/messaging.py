"""RabbitMQ through pika: the topology, a confirming publisher and connection settings.

Topology (declared idempotently by every worker and relay):

- ``lms.events``: topic exchange, durable; routing key ``<domain>.<Type>``.
- ``lms.events.dead``: direct exchange for dead letters.
- ``<service>``: the service's durable quorum queue, bound to the keys it handles, with a
  delivery limit and the dead-letter exchange as a backstop for messages that crash consumers.
- ``<service>.dead``: the service's dead-letter queue. The consumer puts a message there itself,
  with the reason in its headers, as soon as it knows the message can never succeed.
"""

from __future__ import annotations

import enum
import itertools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pika
import structlog
from pika.adapters.blocking_connection import BlockingChannel
from pika.channel import Channel

from lms_common.config import Settings
from lms_common.envelope import CONTENT_TYPE

log = structlog.get_logger("lms.messaging")

PERSISTENT = pika.DeliveryMode.Persistent

# Errors that mean "the broker went away": reconnect and carry on.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    ConnectionError,
    OSError,
)


def connection_parameters(url: str, *, heartbeat: int, name: str) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = max(60, heartbeat * 2)
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.client_properties = {"connection_name": name}
    return params


@dataclass(frozen=True)
class Topology:
    exchange: str
    dead_letter_exchange: str
    queue: str
    dead_letter_queue: str
    routing_keys: tuple[str, ...]
    delivery_limit: int

    @classmethod
    def for_service(cls, settings: Settings, routing_keys: Sequence[str]) -> Topology:
        return cls(
            exchange=settings.exchange,
            dead_letter_exchange=settings.dead_letter_exchange,
            queue=settings.queue,
            dead_letter_queue=settings.dead_letter_queue,
            routing_keys=tuple(sorted(set(routing_keys))),
            delivery_limit=settings.consumer_delivery_limit,
        )

    def queue_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": self.dead_letter_exchange,
            "x-dead-letter-routing-key": self.dead_letter_queue,
            "x-delivery-limit": self.delivery_limit,
        }

    def declare(self, channel: BlockingChannel) -> None:
        """Declare exchanges, queues and bindings; running it again changes nothing."""
        channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
        channel.exchange_declare(self.dead_letter_exchange, exchange_type="direct", durable=True)
        channel.queue_declare(self.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(self.dead_letter_queue, self.dead_letter_exchange, routing_key=self.dead_letter_queue)
        channel.queue_declare(self.queue, durable=True, arguments=self.queue_arguments())
        for key in self.routing_keys:
            channel.queue_bind(self.queue, self.exchange, routing_key=key)


@dataclass(frozen=True)
class OutgoingMessage:
    routing_key: str
    body: bytes
    message_id: str
    headers: Mapping[str, Any] = field(default_factory=dict)
    event_type: str | None = None

    def properties(self, app_id: str) -> pika.BasicProperties:
        return pika.BasicProperties(
            content_type=CONTENT_TYPE,
            delivery_mode=PERSISTENT,
            message_id=self.message_id,
            type=self.event_type,
            app_id=app_id,
            headers=dict(self.headers),
        )


class Confirm(enum.Enum):
    CONFIRMED = "confirmed"
    RETURNED = "returned"  # no queue is bound for its routing key (mandatory flag)
    NACKED = "nacked"  # the broker refused it


@dataclass(frozen=True)
class PublishOutcome:
    confirm: Confirm
    reason: str | None = None

    @property
    def confirmed(self) -> bool:
        return self.confirm is Confirm.CONFIRMED


class PublishError(Exception):
    """The batch's fate is unknown (connection lost, no confirm in time): publish it again."""


class _Batch:
    def __init__(self, messages: Sequence[OutgoingMessage]):
        self.messages = messages
        self.outcomes: list[PublishOutcome | None] = [None] * len(messages)
        self.index = {message.message_id: i for i, message in enumerate(messages)}
        self.pending: dict[int, int] = {}
        self.done = threading.Event()
        self.error: str | None = None

    def settle(self, position: int, outcome: PublishOutcome) -> None:
        current = self.outcomes[position]
        if current is None or current.confirm is Confirm.CONFIRMED:
            self.outcomes[position] = outcome

    def fail(self, reason: str) -> None:
        if not self.done.is_set():
            self.error = reason
            self.done.set()


class ConfirmingPublisher:
    """Publishes batches with publisher confirms and the mandatory flag.

    Confirms are asynchronous: a whole batch goes out, then the broker's (multiple) acks come
    back, so one round trip serves many messages. pika's SelectConnection runs in its own
    thread; callers use :meth:`publish_batch`, which blocks until every message of the batch
    is confirmed, returned or refused.
    """

    def __init__(self, url: str, exchange: str, *, app_id: str, heartbeat: int = 30, timeout: float = 30.0):
        self.url = url
        self.exchange = exchange
        self.app_id = app_id
        self.heartbeat = heartbeat
        self.timeout = timeout
        self._lock = threading.Lock()
        self._connection: pika.SelectConnection | None = None
        self._channel: Channel | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._open_error: str | None = None
        self._batch: _Batch | None = None
        self._next_tag = 0

    # --- caller side ---------------------------------------------------------------------

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishOutcome]:
        if not messages:
            return []
        with self._lock:
            if self._channel is None or not self._channel.is_open:
                self._connect()
            batch = _Batch(messages)
            assert self._connection is not None
            self._connection.ioloop.add_callback_threadsafe(lambda: self._send(batch))
            if not batch.done.wait(self.timeout):
                self._shutdown()
                raise PublishError(f"no confirm for a batch of {len(messages)} within {self.timeout}s")
            if batch.error is not None:
                self._shutdown()
                raise PublishError(batch.error)
            return [outcome or PublishOutcome(Confirm.NACKED, "no confirm") for outcome in batch.outcomes]

    def close(self) -> None:
        with self._lock:
            self._shutdown()

    def _connect(self) -> None:
        self._shutdown()
        self._ready.clear()
        self._open_error = None
        params = connection_parameters(self.url, heartbeat=self.heartbeat, name=f"{self.app_id}-relay")
        connection = pika.SelectConnection(
            params,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_connection_closed,
        )
        self._connection = connection
        self._thread = threading.Thread(target=connection.ioloop.start, name="amqp-publisher", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.timeout) or self._open_error is not None:
            reason = self._open_error or "timed out opening the connection"
            self._shutdown()
            raise PublishError(f"cannot reach the broker: {reason}")

    def _shutdown(self) -> None:
        connection, thread = self._connection, self._thread
        self._connection, self._thread, self._channel = None, None, None
        if connection is not None and connection.is_open:
            try:
                connection.ioloop.add_callback_threadsafe(connection.close)
            except Exception:  # the loop may already be gone
                log.debug("publisher connection already closed")
        if thread is not None:
            thread.join(timeout=5)

    # --- I/O thread ----------------------------------------------------------------------

    def _on_open(self, connection: pika.SelectConnection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_open_error(self, connection: pika.SelectConnection, error: BaseException | str) -> None:
        self._open_error = str(error) or type(error).__name__
        self._ready.set()
        connection.ioloop.stop()

    def _on_connection_closed(self, connection: pika.SelectConnection, reason: BaseException) -> None:
        self._channel = None
        if self._batch is not None:
            self._batch.fail(f"connection closed: {reason}")
        connection.ioloop.stop()

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        self._next_tag = 0
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_confirm_mode)

    def _on_confirm_mode(self, _frame: Any) -> None:
        assert self._channel is not None
        self._channel.exchange_declare(
            self.exchange, exchange_type="topic", durable=True, callback=lambda _frame: self._ready.set()
        )

    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        self._channel = None
        if self._batch is not None:
            self._batch.fail(f"channel closed: {reason}")
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    def _send(self, batch: _Batch) -> None:
        channel = self._channel
        if channel is None or not channel.is_open:
            batch.fail("channel not open")
            return
        self._batch = batch
        for position, message in enumerate(batch.messages):
            self._next_tag += 1
            batch.pending[self._next_tag] = position
            channel.basic_publish(
                self.exchange,
                message.routing_key,
                message.body,
                properties=message.properties(self.app_id),
                mandatory=True,
            )

    def _on_return(self, _channel: Channel, method: Any, properties: pika.BasicProperties, _body: bytes) -> None:
        batch = self._batch
        if batch is None or properties.message_id not in batch.index:
            return
        reason = f"returned: {method.reply_code} {method.reply_text}"
        batch.settle(batch.index[properties.message_id], PublishOutcome(Confirm.RETURNED, reason))

    def _on_confirm(self, frame: Any) -> None:
        batch = self._batch
        if batch is None:
            return
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        outcome = PublishOutcome(Confirm.CONFIRMED) if acked else PublishOutcome(Confirm.NACKED, "nacked by broker")
        if method.multiple:  # pending tags are in ascending order: settle the run up to this one
            settled = list(itertools.takewhile(lambda tag: tag <= method.delivery_tag, batch.pending))
        else:
            settled = [method.delivery_tag]
        for tag in settled:
            position = batch.pending.pop(tag, None)
            if position is not None:
                batch.settle(position, outcome)
        if not batch.pending:
            batch.done.set()
