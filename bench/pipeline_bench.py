"""End to end through the running suite: invoices to grants and enrollments, onboarding to
assignments, and the latency of one invoice to the buyer's course list.

Only HTTP and AMQP: events are published on the suite's exchange as billing and HR would, and
the results are read through enrollment's and reporting's APIs. The raw ceilings are taken on
the same broker in the same run.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bus
import pika
import requests
from harness import Suite
from suite_client import Client, Publisher, employee_onboarded, invoice_paid

Row = tuple[str, float, str, float | None]


def raw_consume_rate(suite: Suite, count: int) -> float:
    """Ceiling: pika consuming a quorum queue with manual acks (prefetch 200), events/s."""
    body = b"x" * 600  # about the size of an InvoicePaid event
    return bus.raw_rates(suite.amqp_url, f"{suite.queue_prefix}bench.raw", body, count)[1]


def raw_round_trip_ms(suite: Suite, samples: int) -> tuple[float, float]:
    """Ceiling: publish one persistent message and consume it on a second connection (p50, p99 ms)."""
    consumer = pika.BlockingConnection(pika.URLParameters(suite.amqp_url))
    publisher = pika.BlockingConnection(pika.URLParameters(suite.amqp_url))
    queue = f"{suite.queue_prefix}bench.rtt"
    channel = consumer.channel()
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    out = publisher.channel()
    out.confirm_delivery()
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        out.basic_publish("", queue, b"ping", pika.BasicProperties(delivery_mode=2))
        while True:
            method, _properties, _body = channel.basic_get(queue)
            if method is not None:
                channel.basic_ack(method.delivery_tag)
                break
        times.append((time.perf_counter() - started) * 1000)
    channel.queue_delete(queue)
    consumer.close()
    publisher.close()
    return _percentile(times, 50), _percentile(times, 99)


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


# --- 1. invoices in a burst ------------------------------------------------------------------------


def _completions_enrolled(client: Client, course_id: str) -> int:
    report = client.ok("GET", "reporting", "/v1/reports/completions", params={"course_id": course_id, "limit": 1})
    return int((report.get("totals") or {}).get("enrolled") or 0)


def _count(client: Client, path: str, params: dict[str, Any]) -> int:
    return sum(1 for _ in client.items("enrollment", path, params))


def invoices(client: Client, suite: Suite, count: int, timeout: float) -> tuple[float, int]:
    """Seconds from the first InvoicePaid published until every enrollment is counted in
    reporting's completions report and every grant and enrollment is listed by enrollment's API;
    with how many were done (fewer than ``count`` when ``timeout`` passed first)."""
    course_id, product_id = client.published_course(f"Invoice course {count}")
    run = uuid.uuid4().hex[:6]
    publisher = Publisher(suite)
    messages = (invoice_paid(client.org, run, n, product_id) for n in range(count))
    started = time.perf_counter()
    publisher.burst("billing.InvoicePaid", messages)
    published = time.perf_counter() - started
    publisher.close()
    deadline = started + timeout
    # Looked at every 0.1 s: at 0.5 s the wait for the next look was a tenth of a 1,000-invoice run.
    reported = until(lambda: _completions_enrolled(client, course_id), count, deadline, 0.1)
    grants = until(lambda: _count(client, "/v1/grants", {"product_id": product_id}), count, deadline, 0.1)
    enrolled = until(lambda: _count(client, "/v1/enrollments", {"course_id": course_id}), count, deadline, 0.1)
    elapsed = time.perf_counter() - started
    done = min(reported, grants, enrolled)
    print(f"  {count} invoices: published in {published:.1f} s, {done} done after {elapsed:.1f} s", flush=True)
    return elapsed, done


def until(progress: Callable[[], int], target: int, deadline: float, interval: float) -> int:
    """Poll ``progress`` until it reaches ``target`` or the deadline passes; its last value."""
    while True:
        done = progress()
        if done >= target or time.perf_counter() >= deadline:
            return done
        time.sleep(interval)


# --- 2. one invoice at a time ----------------------------------------------------------------------


@dataclass(frozen=True)
class Buyer:
    """A customer who signed up with a password and signed in: the token reads its course list."""

    email: str
    token: str


def sign_up_buyers(client: Client, count: int) -> list[Buyer]:
    """``count`` customers signed up (POST /v1/users) and signed in through one browser app,
    as people who buy on a shop that knows them would be."""
    app = client.learner_app()
    buyers = []
    for _ in range(count):
        email, password = f"buyer-{uuid.uuid4().hex[:8]}@bench.example", "Bench-password-1234"
        person = {"email": email, "first_name": "Lat", "last_name": "Ency", "kind": "customer", "password": password}
        client.ok("POST", "identity", "/v1/users", json=person)
        buyers.append(Buyer(email, client.learner_token(email, password, app)))
    return buyers


def latency_courses(client: Client, count: int) -> list[tuple[str, str]]:
    """``count`` published courses, each sold alone: (course id, product id)."""
    return [client.published_course(f"Latency course {n}") for n in range(count)]


def latency(
    client: Client, suite: Suite, buyers: list[Buyer], courses: list[tuple[str, str]], *, rate: float = 10.0
) -> list[float]:
    """ms from publishing an InvoicePaid to its course in its buyer's GET /v1/me/courses, one
    invoice at a time, ``rate`` a second: invoice n sells ``courses[n]`` to ``buyers[n]`` (to the
    one buyer when there is one). The last course and buyer are the warm-up's.

    With a buyer for each invoice the looks cost the same all along; with one buyer its list
    grows by a course per invoice, and so does every look at it, every 2 ms."""
    me = suite.url("enrollment", "/v1/me/courses")
    publisher = Publisher(suite)
    run = uuid.uuid4().hex[:6]

    def one(n: int, buyer: Buyer, course_id: str, product_id: str, timeout: float) -> float | None:
        headers = {"Authorization": f"Bearer {buyer.token}"}
        started = time.perf_counter()
        publisher.publish("billing.InvoicePaid", invoice_paid(client.org, run, n, product_id, email=buyer.email))
        while time.perf_counter() < started + timeout:
            listed = client.http.get(me, headers=headers, params={"limit": 500}, timeout=10).json()
            if any(item["course_id"] == course_id for item in listed.get("items", [])):
                return (time.perf_counter() - started) * 1000
            time.sleep(0.002)
        return None

    # The last course created is the last to reach enrollment's copy of the catalog, and the
    # last buyer signed up the last to be announced: once the warm-up's course reaches that
    # buyer, every course and buyer is known everywhere.
    if one(len(courses) - 1, buyers[-1], *courses[-1], timeout=120) is None:
        print("  latency: the warm-up invoice never reached the buyer", flush=True)
    times: list[float] = []
    next_at = time.perf_counter()
    for n, (course_id, product_id) in enumerate(courses[:-1]):
        time.sleep(max(0.0, next_at - time.perf_counter()))
        next_at += 1 / rate
        measured = one(n, buyers[n % len(buyers)], course_id, product_id, timeout=10)
        if measured is not None:
            times.append(measured)
    publisher.close()
    return times


# --- 3. onboarding in bulk --------------------------------------------------------------------------


def _assignments_reported(client: Client) -> int:
    report = client.ok("GET", "reporting", "/v1/reports/compliance", params={"limit": 1})
    return sum(int(row["assignments"]) for row in report.get("overdue_by_location") or [])


class _Looks:
    """The compliance report's count, looked at again after a failed look rather than ending the
    run; failures are counted. At 500,000 employees the looks come every 5 s, gunicorn's
    keep-alive, so a reused connection can meet the server closing it."""

    def __init__(self, client: Client, before: int):
        self.client, self.before, self.last, self.failed, self.slowest = client, before, 0, 0, 0.0

    def __call__(self) -> int:
        began = time.perf_counter()
        try:
            self.last = _assignments_reported(self.client) - self.before
        except (requests.RequestException, RuntimeError) as error:
            self.failed += 1
            print(f"  a look at the compliance report failed ({self.failed} so far): {error}", flush=True)
        self.slowest = max(self.slowest, time.perf_counter() - began)
        return self.last

    def summary(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        return f"slowest look at the report {self.slowest:.1f} s{failed}"


def onboarding(client: Client, suite: Suite, count: int, timeout: float) -> tuple[float, int]:
    """Seconds from the first EmployeeOnboarded until every assignment is in the compliance
    report, with how many employees' assignments were (fewer when ``timeout`` passed first)."""
    run = uuid.uuid4().hex[:6]
    courses = [client.published_course(f"Mandatory {run} {n}")[0] for n in range(3)]
    code = f"B{run}"
    client.location(code)
    client.onboarding_rule(f"Dept {run}", courses)
    before = _assignments_reported(client)
    publisher = Publisher(suite)
    messages = (employee_onboarded(client.org, run, n, f"Dept {run}", code) for n in range(count))
    started = time.perf_counter()
    publisher.burst("hr.EmployeeOnboarded", messages)
    published = time.perf_counter() - started
    publisher.close()
    # The report counts every assignment on each look (0.4 s and more of the server's CPU at a
    # million rows): a look a second kept nearly half a core busy through a 500,000-employee run.
    look_every = max(1.0, count / 100_000)
    looks = _Looks(client, before)
    assigned = until(looks, 3 * count, started + timeout, look_every)
    elapsed = time.perf_counter() - started
    print(
        f"  {count} employees: published in {published:.1f} s, {assigned} assignments after {elapsed:.1f} s"
        f" ({looks.summary()})",
        flush=True,
    )
    return elapsed, assigned // 3


def summary(times: list[float]) -> tuple[float, float]:
    if not times:
        return float("nan"), float("nan")
    return statistics.median(times), _percentile(times, 99)
