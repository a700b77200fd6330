"""The consumer against real RabbitMQ and PostgreSQL: duplicates, dead letters, retries, crashes,
broker restarts and handlers slower than the heartbeat."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from dataclasses import replace

from conftest import Bus, consuming, ping, spawn
from fixture_service import effect_counts

from lms_common import metrics
from lms_common.config import Settings
from lms_common.db import session_scope
from lms_common.service import Runtime
from lms_common.testing import wait_until


def effects(rt: Runtime) -> Counter[str]:
    with session_scope(rt.session_factory) as session:
        return effect_counts(session)


def consumed(outcome: str, event_type: str = "Ping") -> float:
    return metrics.CONSUMED.labels("fixture", event_type, outcome)._value.get()


def test_three_deliveries_of_one_event_id_have_one_effect(settings: Settings, runtime: Runtime, bus: Bus) -> None:
    event = ping(7)
    duplicates_before = consumed("duplicate")
    with consuming(settings, runtime):
        for _ in range(3):
            bus.publish_event(event)
        wait_until(lambda: consumed("duplicate") - duplicates_before == 2)
    assert effects(runtime) == Counter({event.id: 1})


def test_invalid_messages_are_dead_lettered_with_a_reason_and_the_consumer_keeps_going(
    settings: Settings, runtime: Runtime, bus: Bus
) -> None:
    good = ping(1)
    invalid_payload = ping(2).with_data({"n": "not a number"})
    unknown = json.loads(ping(3).to_json())
    unknown["type"] = "NoSuchThing"
    with consuming(settings, runtime):
        bus.publish("test.Ping", b"{not json", "bad-json")
        bus.publish("test.Ping", invalid_payload.to_json(), invalid_payload.id)
        bus.publish("test.Ping", json.dumps(unknown).encode(), "unknown-type")
        bus.publish("test.Ping", b"\xff\xfe not utf-8", "bad-utf8")
        bus.publish_event(good)
        wait_until(lambda: effects(runtime)[good.id] == 1)
        dead = bus.dead_letters(expected=4)

    reasons = {message.message_id: message.headers["x-lms-reason"] for message in dead}
    assert "not JSON" in reasons["bad-json"]
    assert "payload invalid at n" in reasons[invalid_payload.id]
    assert "unknown event type 'NoSuchThing'" in reasons["unknown-type"]
    assert "not UTF-8" in reasons["bad-utf8"]
    assert all(message.headers["x-lms-original-routing-key"] == "test.Ping" for message in dead)
    assert all(message.headers["x-lms-original-queue"] == settings.queue for message in dead)
    assert effects(runtime) == Counter({good.id: 1})


def test_a_transient_failure_succeeds_on_retry(settings: Settings, runtime: Runtime, bus: Bus) -> None:
    event = ping(1, fail_times=2)
    with consuming(settings, runtime):
        bus.publish_event(event)
        wait_until(lambda: effects(runtime)[event.id] == 1)
    assert bus.get_all(settings.dead_letter_queue) == []


def test_a_handler_that_always_fails_is_dead_lettered_after_the_limit(
    settings: Settings, runtime: Runtime, bus: Bus
) -> None:
    doomed, fine = ping(1, fail_times=1000), ping(2)
    with consuming(settings, runtime):
        bus.publish_event(doomed)
        bus.publish_event(fine)
        [dead] = bus.dead_letters(expected=1)
        wait_until(lambda: effects(runtime)[fine.id] == 1)
    assert dead.message_id == doomed.id
    assert f"failed {settings.consumer_max_attempts} times" in dead.headers["x-lms-reason"]
    assert "transient failure" in dead.headers["x-lms-reason"]
    assert doomed.id not in effects(runtime)


def test_kill_9_of_a_consumer_mid_stream_loses_nothing_and_doubles_nothing(
    settings: Settings, runtime: Runtime, bus: Bus
) -> None:
    events = [ping(n, sleep=0.002) for n in range(600)]
    for event in events:
        bus.publish_event(event)
    worker = spawn(settings, "worker", LMS_CONSUMER_BATCH_SIZE="20")
    wait_until(lambda: len(effects(runtime)) >= 100, timeout=30)
    worker.send_signal(signal.SIGKILL)
    assert worker.wait(timeout=10) == -signal.SIGKILL
    handled_at_kill = len(effects(runtime))
    assert handled_at_kill < len(events), "killed mid-stream"

    worker = spawn(settings, "worker")
    try:
        wait_until(lambda: len(effects(runtime)) == len(events), timeout=60)
    finally:
        worker.terminate()
        assert worker.wait(timeout=20) == 0, "SIGTERM stops the worker cleanly"
    counts = effects(runtime)
    assert set(counts) == {event.id for event in events}
    assert set(counts.values()) == {1}


def test_a_broker_restart_mid_stream_loses_nothing(settings: Settings, runtime: Runtime, bus: Bus) -> None:
    first, second = [ping(n) for n in range(200)], [ping(n) for n in range(200, 400)]
    for event in first:
        bus.publish_event(event)
    bus.close()
    with consuming(settings, runtime) as consumer:
        wait_until(lambda: len(effects(runtime)) >= 50, timeout=30)
        subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=60)
        time.sleep(1)
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=120)
        wait_until(consumer.connected.is_set, timeout=60)
        again = Bus(settings)
        try:
            for event in second:
                again.publish_event(event)
        finally:
            again.close()
        wait_until(lambda: len(effects(runtime)) == 400, timeout=60)
    counts = effects(runtime)
    assert set(counts) == {event.id for event in first + second}
    assert set(counts.values()) == {1}


def test_a_handler_slower_than_the_heartbeat_keeps_its_connection(
    settings: Settings, runtime: Runtime, bus: Bus
) -> None:
    slow_settings = replace(settings, heartbeat_seconds=1)
    event = ping(1, sleep=4.0)
    duplicates_before = consumed("duplicate")
    with consuming(slow_settings, runtime) as consumer:
        bus.publish_event(event)
        wait_until(lambda: effects(runtime)[event.id] == 1, timeout=20)
        time.sleep(1.5)
        assert consumer.connected.is_set()
    assert consumed("duplicate") == duplicates_before, "never redelivered: heartbeats kept flowing"
    assert effects(runtime) == Counter({event.id: 1})


def test_a_delivery_held_for_a_retry_stays_unacknowledged_while_later_ones_are_acknowledged(
    settings: Settings, runtime: Runtime, bus: Bus
) -> None:
    """A batch is acknowledged with one ack for its last tag only when nothing before it waits
    for a retry: that ack would settle the waiting delivery too, and a consumer stopping before
    the retry would lose it."""
    held, later = ping(1, fail_times=2), [ping(n) for n in range(2, 12)]  # fails in the batch and alone
    for event in [held, *later]:
        bus.publish_event(event)
    slow_retry = replace(settings, consumer_retry_base_seconds=60)
    with consuming(slow_retry, runtime):
        wait_until(lambda: all(effects(runtime)[event.id] == 1 for event in later), timeout=20)
        more = [ping(n) for n in range(12, 20)]  # a batch of its own, after the held delivery
        for event in more:
            bus.publish_event(event)
        wait_until(lambda: all(effects(runtime)[event.id] == 1 for event in more), timeout=20)
        time.sleep(0.5)  # the acks reach the broker
    time.sleep(1)
    left = bus.channel.queue_declare(settings.queue, passive=True).method.message_count
    assert left == 1, "only the delivery waiting for its retry went back to the queue"
    assert held.id not in effects(runtime)

    with consuming(settings, runtime):  # this process failed it once already: now it succeeds
        wait_until(lambda: effects(runtime)[held.id] == 1, timeout=20)
    counts = effects(runtime)
    assert set(counts) == {event.id for event in [held, *later, *more]}
    assert set(counts.values()) == {1}
    assert bus.channel.queue_declare(settings.queue, passive=True).method.message_count == 0


def _batches() -> tuple[float, float]:
    """(batches, deliveries) handled so far by the fixture service's consumers."""
    samples = {s.name: s.value for s in metrics.CONSUMER_BATCH.collect()[0].samples if s.labels["service"] == "fixture"}
    name = "lms_consumer_batch_deliveries"
    return samples.get(f"{name}_count", 0.0), samples.get(f"{name}_sum", 0.0)


def test_a_lingering_consumer_gathers_a_trickle_into_one_batch_and_still_handles_a_lone_event(
    settings: Settings, runtime: Runtime, bus: Bus
) -> None:
    lingering = replace(settings, consumer_linger_seconds=1.0)
    trickle, lone = [ping(n) for n in range(5)], ping(99)
    with consuming(lingering, runtime):
        batches, deliveries = _batches()
        for event in trickle:
            bus.publish_event(event)
            time.sleep(0.05)
        wait_until(lambda: all(effects(runtime)[event.id] == 1 for event in trickle), timeout=10)
        assert _batches() == (batches + 1, deliveries + 5), "five events within the linger: one batch"
        published = time.monotonic()
        bus.publish_event(lone)
        wait_until(lambda: effects(runtime)[lone.id] == 1, timeout=10)
        waited = time.monotonic() - published
    assert 0.9 <= waited < 5.0, f"a lone event waits out the linger, then is handled ({waited:.2f} s)"
    assert _batches()[0] == batches + 2
