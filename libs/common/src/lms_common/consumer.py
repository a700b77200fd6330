"""The worker's consumer loop on RabbitMQ.

The connection lives in the main thread; batches are handled in a helper thread while the main
thread keeps pumping the connection, so heartbeats flow however long a handler takes. Acks are
sent only after the batch's transaction has committed. A lost broker means reconnect with
backoff; a lost database means wait and handle the same batch again; SIGTERM finishes the
batch in hand, then stops.
"""

from __future__ import annotations

import heapq
import itertools
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pika
import structlog
from pika.adapters.blocking_connection import BlockingChannel

from lms_common import faults, metrics
from lms_common.config import Settings
from lms_common.messaging import CONNECTION_ERRORS, PERSISTENT, Topology, connection_parameters
from lms_common.processing import Delivery, MessageProcessor, Outcome, Result

log = structlog.get_logger("lms.consumer")

PUMP_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 10.0
MAX_RETRY_DELAY_SECONDS = 60.0


def _nothing() -> None:
    """A no-op callback whose arrival ends a wait on the connection."""


class Backoff:
    """Exponential delays for reconnecting: 0.5, 1, 2 ... capped."""

    def __init__(self, base: float = 0.5, cap: float = MAX_BACKOFF_SECONDS):
        self.base, self.cap, self.failures = base, cap, 0

    def next(self) -> float:
        self.failures += 1
        return float(min(self.cap, self.base * 2 ** (self.failures - 1)))

    def reset(self) -> None:
        self.failures = 0


def dead_letter_headers(delivery: Delivery, reason: str, queue: str) -> dict[str, Any]:
    return {
        **dict(delivery.headers),
        "x-lms-reason": reason[:2000],
        "x-lms-original-routing-key": delivery.routing_key,
        "x-lms-original-queue": queue,
        "x-lms-dead-lettered-at": datetime.now(UTC).isoformat(),
    }


class Consumer:
    """Consumes the service queue until :meth:`stop` is called."""

    def __init__(self, settings: Settings, topology: Topology, processor: MessageProcessor):
        self.settings = settings
        self.topology = topology
        self.processor = processor
        self._stopping = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="handler")
        self._buffer: deque[Delivery] = deque()
        self._buffered_since = 0.0  # when the oldest delivery in the buffer arrived
        self._retries: list[tuple[float, int, Delivery]] = []
        self._sequence = itertools.count()
        self.connected = threading.Event()

    def stop(self, *_args: Any) -> None:
        self._stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                self._run_connection(backoff)
            except CONNECTION_ERRORS as exc:
                self.connected.clear()
                delay = backoff.next()
                log.warning("broker connection lost", error=repr(exc), retry_in=delay)
                self._stopping.wait(delay)
        self._executor.shutdown(wait=True)
        log.info("consumer stopped", service=self.settings.service)

    # --- one connection's life -----------------------------------------------------------

    def _run_connection(self, backoff: Backoff) -> None:
        params = connection_parameters(
            self.settings.amqp_url, heartbeat=self.settings.heartbeat_seconds, name=f"{self.settings.service}-worker"
        )
        connection = pika.BlockingConnection(params)
        # Deliveries buffered or waiting for a retry belong to the lost connection's channel:
        # the broker gives them again, so they are forgotten here.
        self._buffer.clear()
        self._retries.clear()
        try:
            channel = connection.channel()
            self.topology.declare(channel)
            dead_channel = connection.channel()
            dead_channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self.settings.consumer_prefetch)
            channel.basic_consume(self.topology.queue, on_message_callback=self._on_message)
            self.connected.set()
            backoff.reset()
            log.info("consuming", queue=self.topology.queue, keys=list(self.topology.routing_keys))
            while not self._stopping.is_set():
                lingering = self._linger_left()
                if lingering > 0:
                    connection.process_data_events(time_limit=lingering)
                    continue
                batch = self._next_batch()
                if batch:
                    self._handle(connection, channel, dead_channel, batch)
                else:
                    connection.process_data_events(time_limit=self._idle_wait())
        finally:
            self.connected.clear()
            if connection.is_open:
                connection.close()

    def _on_message(self, _channel: BlockingChannel, method: Any, properties: Any, body: bytes) -> None:
        if not self._buffer:
            self._buffered_since = time.monotonic()
        self._buffer.append(
            Delivery(
                body=body,
                routing_key=method.routing_key,
                message_id=properties.message_id,
                headers=properties.headers or {},
                tag=method.delivery_tag,
            )
        )

    def _idle_wait(self) -> float:
        if not self._retries:
            return 0.2
        return max(0.0, min(0.2, self._retries[0][0] - time.monotonic()))

    def _linger_left(self) -> float:
        """Seconds a short batch still waits for more deliveries (``consumer_linger_seconds``);
        none for a full batch, a retry that is due, or an empty buffer (nothing to hold)."""
        linger = self.settings.consumer_linger_seconds
        if linger <= 0 or not self._buffer or len(self._buffer) >= self.settings.consumer_batch_size:
            return 0.0
        now = time.monotonic()
        if self._retries and self._retries[0][0] <= now:
            return 0.0
        return max(0.0, self._buffered_since + linger - now)

    def _next_batch(self) -> list[Delivery]:
        now = time.monotonic()
        batch: list[Delivery] = []
        limit = self.settings.consumer_batch_size
        while self._retries and self._retries[0][0] <= now and len(batch) < limit:
            batch.append(heapq.heappop(self._retries)[2])
        while self._buffer and len(batch) < limit:
            batch.append(self._buffer.popleft())
        return batch

    def _pump_until(self, connection: pika.BlockingConnection, done: Callable[[], bool]) -> None:
        while not done():
            connection.process_data_events(time_limit=PUMP_SECONDS)

    def _pause(self, connection: pika.BlockingConnection, seconds: float) -> None:
        """Wait, serving the connection, until ``seconds`` pass or the consumer is stopped."""
        deadline = time.monotonic() + seconds
        self._pump_until(connection, lambda: time.monotonic() >= deadline or self._stopping.is_set())

    def _run_in_handler_thread(
        self, connection: pika.BlockingConnection, batch: list[Delivery]
    ) -> Future[list[Result]]:
        """Handle the batch in the helper thread, serving the connection until it is done."""
        future = self._executor.submit(self.processor.process, batch)
        # Wake process_data_events the moment the batch is done rather than at its time limit.
        future.add_done_callback(lambda _: connection.add_callback_threadsafe(_nothing))
        while not future.done():
            connection.process_data_events(time_limit=1.0)
        return future

    def _handle(
        self,
        connection: pika.BlockingConnection,
        channel: BlockingChannel,
        dead_channel: BlockingChannel,
        batch: list[Delivery],
    ) -> None:
        backoff = Backoff()
        metrics.CONSUMER_BATCH.labels(self.settings.service).observe(len(batch))
        while True:
            future = self._run_in_handler_thread(connection, batch)
            try:
                results = future.result()
                break
            except Exception as exc:  # the database failed: nothing was committed
                metrics.CONSUMER_BATCHES_FAILED.labels(self.settings.service).inc()
                delay = backoff.next()
                log.error("batch failed, database unavailable", error=repr(exc), retry_in=delay)
                self._pause(connection, delay)
                if self._stopping.is_set():
                    return  # unacked: the broker hands the batch to the next consumer
        faults.maybe_crash("worker_after_commit")
        done = [
            delivery.tag
            for delivery, result in zip(batch, results, strict=True)
            if self._settle(dead_channel, delivery, result)
        ]
        self._acknowledge(channel, done)

    def _settle(self, dead_channel: BlockingChannel, delivery: Delivery, result: Result) -> bool:
        """Dead-letter or hold the delivery for a retry as its result says; True when it is done
        with and may be acknowledged."""
        if result.outcome is Outcome.RETRY:
            delivery.attempts += 1
            if delivery.attempts < self.settings.consumer_max_attempts:
                self._schedule_retry(delivery)
                return False
            result = Result(Outcome.DEAD_LETTER, f"failed {delivery.attempts} times; last error: {result.reason}")
            metrics.record_consumed(self.settings.service, "retries_exhausted", Outcome.DEAD_LETTER.value)
        if result.outcome is Outcome.DEAD_LETTER:
            self._dead_letter(dead_channel, delivery, result.reason or "unknown")
        return True

    def _acknowledge(self, channel: BlockingChannel, tags: list[int]) -> None:
        """One ack for the batch (``multiple``: every delivery up to its last tag) when nothing
        before that tag is held for a retry; otherwise one ack per delivery, since ``multiple``
        would settle the held ones too. Deliveries still buffered came later, with higher tags.
        An ack per message was a third of a busy consumer's CPU."""
        if not tags:
            return
        last = max(tags)
        if any(held.tag < last for _, _, held in self._retries):
            for tag in tags:
                channel.basic_ack(tag)
        else:
            channel.basic_ack(last, multiple=True)

    def _schedule_retry(self, delivery: Delivery) -> None:
        base = self.settings.consumer_retry_base_seconds
        delay = min(MAX_RETRY_DELAY_SECONDS, base * 2 ** (delivery.attempts - 1))
        heapq.heappush(self._retries, (time.monotonic() + delay, next(self._sequence), delivery))

    def _dead_letter(self, dead_channel: BlockingChannel, delivery: Delivery, reason: str) -> None:
        properties = pika.BasicProperties(
            content_type="application/cloudevents+json",
            delivery_mode=PERSISTENT,
            message_id=delivery.message_id,
            headers=dead_letter_headers(delivery, reason, self.topology.queue),
        )
        dead_channel.basic_publish(
            self.topology.dead_letter_exchange,
            self.topology.dead_letter_queue,
            delivery.body,
            properties=properties,
            mandatory=True,
        )
