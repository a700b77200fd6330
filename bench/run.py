"""`make bench`: every benchmark on PostgreSQL and RabbitMQ, printed as one table.

These are measurements, not tests: the machine (2 cores for brokers, databases, services and
the load generator alike) is noisy, so compare the ratios taken in the same run.

BENCH_SCALE (default 1) multiplies every size (0.1 for a quick run); BENCH_ONLY picks some of
``bus,reporting,enrollment,identity,automation,suite``; LMS_BENCH_HUGE=1 adds the 500,000-person sizes;
BENCH_WAIT_SECONDS (default 180) bounds each end-to-end wait: a run cut short is reported at
the pace it kept, marked "projected".
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests-e2e"))  # the suite's launcher

from lms_common.testing import DEFAULT_TEST_AMQP_URL, DEFAULT_TEST_DATABASE_URL

SECTIONS = ("bus", "reporting", "enrollment", "identity", "automation", "suite")
# The in-process benchmarks run services whose info logs (JSON or console) are not the table's.
CHATTER = re.compile(r'^(\{.*"level": "info"|\d{4}-\d\d-\d\d \S+ \[(info|debug)\s*\])')

Row = tuple[str, float, str, str, float | None, float | None]


def _old(rows: list[tuple[str, float, str, float | None]]) -> list[Row]:
    return [(name, figure, "", target, None, ratio) for name, figure, target, ratio in rows]


def _machine() -> str:
    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    shared = "shared by RabbitMQ, PostgreSQL, the services and the load generator"
    return f"{platform.node()}, {os.cpu_count()} cores {shared}; load average {load}"


def section(name: str, scale: float) -> list[Row]:
    """One benchmark's rows; each runs in its own interpreter, since services never share one."""
    admin_url = os.environ.get("LMS_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    amqp_url = os.environ.get("LMS_TEST_AMQP_URL", DEFAULT_TEST_AMQP_URL)
    if name == "bus":
        import bus

        count = int(os.environ.get("LMS_BENCH_EVENTS", str(max(1000, round(20_000 * scale)))))
        return _old(bus.run(admin_url, amqp_url, count))
    if name == "reporting":
        import reporting_bench

        return _old(reporting_bench.run(admin_url, amqp_url, max(1000, round(10_000 * scale))))
    if name == "enrollment":
        import enrollment_bench

        return _old(enrollment_bench.run(admin_url, amqp_url))
    if name == "identity":
        import identity_bench

        return _old(identity_bench.run(admin_url, max(200, round(2_000 * scale))))
    if name == "automation":
        import automation_bench

        return _old(automation_bench.run(admin_url, amqp_url, max(1000, round(2_000 * scale))))
    import suite_bench

    return suite_bench.run(scale)


def main() -> int:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    only = [name for name in os.environ.get("BENCH_ONLY", ",".join(SECTIONS)).split(",") if name]
    started = time.perf_counter()
    print(f"LMS benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, scale {scale}", flush=True)
    print(f"machine: {_machine()}", flush=True)
    rows: list[Row] = []
    for name in only:
        print(f"== {name}", flush=True)
        child = subprocess.Popen([sys.executable, __file__, "--section", name], stdout=subprocess.PIPE, text=True)
        found = []
        for line in child.stdout or []:
            if line.startswith("ROWS "):
                found.append(json.loads(line[5:]))
            elif not CHATTER.match(line):
                print(line, end="", flush=True)
        if child.wait() or not found:
            print(f"  {name} failed (exit {child.returncode})", flush=True)
        rows += [tuple(row) for row in (found[0] if found else [])]  # type: ignore[misc]
    print()
    print(f"machine at the end: {_machine()}")
    width = max([66] + [len(row[0]) for row in rows])
    print(f"{'measure':<{width}} {'figure':>11}  {'target':<17} {'ceiling':>10} {'ratio':>7}")
    for name, figure, _unit, target, ceiling, ratio in rows:
        shown_ceiling = f"{ceiling:,.1f}" if ceiling is not None else ""
        shown_ratio = f"{ratio:.2f}" if ratio is not None else ""
        print(f"{name:<{width}} {figure:>11,.2f}  {target:<17} {shown_ceiling:>10} {shown_ratio:>7}")
    print(f"whole run: {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--section"]:
        print("ROWS " + json.dumps(section(sys.argv[2], float(os.environ.get("BENCH_SCALE", "1")))), flush=True)
        raise SystemExit(0)
    raise SystemExit(main())
