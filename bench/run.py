"""`make bench`: every benchmark on PostgreSQL and RabbitMQ, printed as one table.

These are measurements, not tests: the machine (2 cores for brokers, databases, services and
the load generator alike) is noisy, so compare the ratios taken in the same run.
"""

from __future__ import annotations

import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bus
import enrollment_bench
import reporting_bench

from lms_common.testing import DEFAULT_TEST_AMQP_URL, DEFAULT_TEST_DATABASE_URL


def main() -> int:
    admin_url = os.environ.get("LMS_TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    amqp_url = os.environ.get("LMS_TEST_AMQP_URL", DEFAULT_TEST_AMQP_URL)
    count = int(os.environ.get("LMS_BENCH_EVENTS", "20000"))
    print(
        f"LMS benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores shared by RabbitMQ, PostgreSQL and the benchmark; {count} events"
    )
    rows = bus.run(admin_url, amqp_url, count)
    rows += reporting_bench.run(admin_url, amqp_url)
    rows += enrollment_bench.run(admin_url, amqp_url)
    print(f"{'measure':<52} {'figure':>10}  {'target':<12} {'vs raw':>7}")
    for name, figure, target, ratio in rows:
        shown = f"{ratio:.2f}" if ratio is not None else ""
        print(f"{name:<52} {figure:>10,.2f}  {target:<12} {shown:>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
