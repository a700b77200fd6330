"""The whole suite as real processes (tests-e2e/harness.py), benchmarked end to end.

Figures: invoices in a burst (10,000 and a tenth), the latency of one invoice at 10 per second,
onboarding in bulk (50,000 employees and a tenth; 500,000 with LMS_BENCH_HUGE=1), authenticated
reads under 32 connections against a bare JWT endpoint, and the peak memory of every API,
worker and relay process during the burst and bulk runs. BENCH_SCALE multiplies every size.

BENCH_ONBOARDING=5000,20000 runs only the bulk onboarding, at those sizes (no invoices, latency
or reads). BENCH_SAMPLE_SECONDS=5 prints, every that many seconds of each bulk run, every
service's queue depth (ready messages) and outbox backlog, to show which service holds the work.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import api_bench
import pika
import pipeline_bench as pipe
import requests
from cpu import CpuTime
from harness import RELAYS, SERVICES, remove_suite, start_suite
from memory import PeakRss
from suite_client import Client

Row = tuple[str, float, str, str, float | None, float | None]  # name, figure, unit, target, ceiling, ratio


def _sizes(scale: float) -> tuple[int, list[int]]:
    invoices = max(100, round(10_000 * scale))
    if os.environ.get("BENCH_ONBOARDING"):
        return 0, [int(size) for size in os.environ["BENCH_ONBOARDING"].split(",")]
    employees = [max(100, round(50_000 * scale / 10)), max(100, round(50_000 * scale))]
    if os.environ.get("LMS_BENCH_HUGE"):
        employees.append(round(500_000 * scale))
    return invoices, employees


def run(scale: float = 1.0) -> list[Row]:
    port_base = int(os.environ.get("LMS_E2E_PORT_BASE", "25000"))
    workers = os.environ.get("LMS_API_WORKERS", "2")
    env = {"LMS_API_WORKERS": workers, "LMS_LOG_LEVEL": os.environ.get("LMS_LOG_LEVEL", "WARNING")}
    invoices, employees = _sizes(scale)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="lms-bench-") as work:
        started = time.perf_counter()
        suite = start_suite(Path(work), port_base=port_base, extra_env=env)
        print(f"  suite started in {time.perf_counter() - started:.0f} s (API workers {workers})", flush=True)
        try:
            client = Client(suite)
            if invoices:
                rows += _latency_and_api(client, suite, scale, port_base)
            rows += _throughput(client, suite, invoices, employees)
        finally:
            remove_suite(suite)
    return rows


def _latency_and_api(client: Client, suite, scale: float, port_base: int) -> list[Row]:  # type: ignore[no-untyped-def]
    samples = max(30, round(200 * scale))
    rtt50, rtt99 = pipe.raw_round_trip_ms(suite, samples)
    courses = pipe.latency_courses(client, samples + 1)
    rows: list[Row] = [
        ("raw publish/consume round trip p50 (ms)", rtt50, "ms", "ceiling", None, None),
        ("raw publish/consume round trip p99 (ms)", rtt99, "ms", "ceiling", None, None),
    ]
    # A buyer for each invoice, as a shop's customers come; then one buyer for them all, whose
    # list, looked at every 2 ms, grows to as many courses as invoices (the figure of earlier runs).
    regular = pipe.sign_up_buyers(client, samples + 1)
    collector = pipe.sign_up_buyers(client, 1)
    for buyers, who in ((regular, "a buyer each"), (collector, f"one buyer of {samples + 1} courses")):
        p50, p99 = pipe.summary(pipe.latency(client, suite, buyers, courses))
        label = f"2. InvoicePaid -> GET /v1/me/courses %s ({samples} at 10/s, {who})"
        rows.append((label % "p50", p50, "ms", "< 30 ms", rtt50, p50 / rtt50))
        rows.append((label % "p99", p99, "ms", "< 150 ms", rtt99, p99 / rtt99))
    learner = collector[0].token
    seconds = max(5.0, 15 * min(1.0, scale * 10))
    results = api_bench.run(suite, client.token, learner, seconds, port_base + 300)
    bare_rate = results[0][1]
    for measured, rate, p99_ms, errors in results:
        is_bare = measured.startswith("bare")
        name = measured
        if measured.startswith("enrollment"):  # its first page: 50 courses at most
            name = f"{measured} (first page) for a learner of {samples + 1} courses"
        note = f" [{errors} errors]" if errors else ""
        rows.append(
            (
                f"4. {name} (req/s, {api_bench.generator()}){note}",
                rate,
                "req/s",
                "ceiling" if is_bare else ">= 0.5 x bare",
                None if is_bare else bare_rate,
                None if is_bare else rate / bare_rate,
            )
        )
        rows.append((f"4. {name} p99 (ms)", p99_ms, "ms", "" if is_bare else "< 25 ms", None, None))
    return rows


def _throughput(client: Client, suite, invoices: int, employees: list[int]) -> list[Row]:  # type: ignore[no-untyped-def]
    rows: list[Row] = []
    memory: dict[str, float] = {}
    limit = float(os.environ.get("BENCH_WAIT_SECONDS", "180"))
    if invoices:
        raw = pipe.raw_consume_rate(suite, invoices)
        rows.append(("raw pika consume, manual ack (events/s)", raw, "events/s", "ceiling", None, None))
    for count in (max(100, invoices // 10), invoices) if invoices else ():
        with PeakRss(suite.process.pid) as peaks, CpuTime(suite.process.pid) as cpu:
            seconds, done = pipe.invoices(client, suite, count, timeout=limit)
        _merge(memory, peaks.by_label())
        print(f"  CPU during {count:,} InvoicePaid: {cpu.line()}", flush=True)
        seconds, name = _projected(seconds, done, count, f"{count:,} InvoicePaid")
        rate = count / seconds
        rows.append((f"1. {name}, end to end (invoices/s)", rate, "invoices/s", ">= 500/s (1,000)", raw, rate / raw))
        rows.append((f"5. {name}, cost per 1,000 (s)", 1000 * seconds / count, "s", "flat", None, None))
    for count in employees:
        with PeakRss(suite.process.pid) as peaks, _sampling(suite), CpuTime(suite.process.pid) as cpu:
            seconds, done = pipe.onboarding(client, suite, count, timeout=limit)
        _merge(memory, peaks.by_label())
        print(f"  CPU during {count:,} EmployeeOnboarded: {cpu.line()}", flush=True)
        seconds, name = _projected(seconds, done, count, f"{count:,} EmployeeOnboarded x 3 courses")
        target = "< 60 s" if count == employees[min(1, len(employees) - 1)] else ""
        rows.append((f"3. {name} (s)", seconds, "s", target, None, None))
        rows.append((f"5. {name}, cost per 1,000 (s)", 1000 * seconds / count, "s", "flat", None, None))
    _print_handler_time(suite)
    for label, mib in memory.items():
        rows.append((f"6. peak RSS {label} (MiB)", mib, "MiB", "< 200 MB", None, None))
    return rows


@contextlib.contextmanager
def _sampling(suite) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """With BENCH_SAMPLE_SECONDS, print queue depths and outbox backlogs until the block ends."""
    interval = float(os.environ.get("BENCH_SAMPLE_SECONDS", "0"))
    if not interval:
        yield
        return
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(suite, interval, stop), daemon=True)
    sampler.start()
    try:
        yield
    finally:
        stop.set()
        sampler.join()


def _sample(suite, interval: float, stop: threading.Event) -> None:  # type: ignore[no-untyped-def]
    print("  every line: seconds, then each service's queue (ready) / outbox backlog", flush=True)
    started = time.perf_counter()
    channel = None
    while not stop.wait(interval):
        try:
            channel = channel if channel is not None and channel.is_open else _passive_channel(suite)
            cells = []
            for service in SERVICES:
                ready = channel.queue_declare(f"{suite.queue_prefix}{service}", passive=True).method.message_count
                backlog = _outbox_backlog(suite, service) if service in RELAYS else "-"
                cells.append(f"{service} {ready}/{backlog}")
        except pika.exceptions.AMQPError as error:  # a sample missed is no reason to stop sampling
            channel = None
            cells = [f"(no sample: {type(error).__name__})"]
        print(f"  {time.perf_counter() - started:6.0f} s  " + "  ".join(cells), flush=True)
    if channel is not None and channel.is_open:
        channel.connection.close()


def _passive_channel(suite):  # type: ignore[no-untyped-def]
    """A channel for passive declares; no heartbeat, since it sleeps between samples."""
    parameters = pika.URLParameters(suite.amqp_url)
    parameters.heartbeat = 0
    return pika.BlockingConnection(parameters).channel()


def _outbox_backlog(suite, service: str) -> str:  # type: ignore[no-untyped-def]
    try:
        found = re.search(r"^lms_outbox_backlog\{[^}]*\} (\S+)", suite.relay_metrics(service), re.MULTILINE)
    except requests.RequestException:
        return "?"
    return f"{float(found.group(1)):.0f}" if found else "?"


def _projected(seconds: float, done: int, count: int, name: str) -> tuple[float, str]:
    """A run cut short by BENCH_WAIT_SECONDS is reported at its pace: time x count / done."""
    if done >= count:
        return seconds, name
    if done == 0:
        return float("inf"), f"{name} [none done in {seconds:.0f} s]"
    return seconds * count / done, f"{name} [projected: {done:,} in {seconds:.0f} s]"


def _print_handler_time(suite) -> None:  # type: ignore[no-untyped-def]
    """Where the workers spent their time: handler seconds and ms per event, from /metrics."""
    print("  worker handler time over the whole run (service, event: events, seconds, ms/event):")
    for service in ("identity", "catalog", "enrollment", "automation", "reporting"):
        try:
            text = suite.worker_metrics(service)
        except requests.RequestException:
            continue
        sums, counts = {}, {}
        for line in text.splitlines():
            found = re.match(r'lms_consumer_handling_seconds_(sum|count)\{event_type="(\w+)".*\} (\S+)', line)
            if found:
                (sums if found.group(1) == "sum" else counts)[found.group(2)] = float(found.group(3))
        for event_type, seconds in sorted(sums.items(), key=lambda item: -item[1])[:4]:
            n = counts.get(event_type, 0)
            if n >= 100:
                print(f"    {service:<10} {event_type:<24} {n:>8.0f} {seconds:>8.1f} s {1000 * seconds / n:>7.2f}")
        _print_batch_sizes(service, text)


def _print_batch_sizes(service: str, metrics_text: str) -> None:
    """How many deliveries each transaction took on average: the worker's fixed costs are per batch."""
    found = dict(re.findall(r"lms_consumer_batch_deliveries_(sum|count)\{[^}]*\} (\S+)", metrics_text))
    batches = float(found.get("count", 0))
    if batches:
        deliveries = float(found["sum"])
        mean = deliveries / batches
        print(f"    {service:<10} {'(batches)':<24} {batches:>8.0f}   {mean:>6.1f} deliveries per batch")


def _merge(into: dict[str, float], peaks: dict[str, float]) -> None:
    for label, mib in peaks.items():
        into[label] = max(into.get(label, 0.0), mib)
