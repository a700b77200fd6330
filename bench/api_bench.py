"""Authenticated reads under load: catalog's course list and enrollment's "my courses" against
a bare endpoint that only verifies the same token under the same gunicorn settings.

The load generator is wrk (32 connections, 2 threads, --latency) when it is installed, else a
Python generator of 32 threads; the table says which. It shares the 2 cores with the suite.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from harness import Suite

HERE = Path(__file__).resolve().parent
CONNECTIONS = 32


def start_bare(suite: Suite, port: int) -> subprocess.Popen[bytes]:
    env = {
        **suite.env,
        "PYTHONPATH": str(HERE),
        "LMS_METRICS_DIR": str(Path(suite.env["LMS_VAR_DIR"]) / "bare-metrics"),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:lms_common.gunicorn_conf",
            "-b",
            f"127.0.0.1:{port}",
            "bare_app:create_app()",
        ],
        env=env,
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/bare", timeout=2)
            return process
        except requests.RequestException:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("the bare app did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def generator() -> str:
    return "wrk" if shutil.which("wrk") else "python"


def load(url: str, token: str, seconds: float) -> tuple[float, float, int]:
    """(requests/s, p99 ms, non-2xx responses) for ``url`` under 32 connections."""
    if generator() == "wrk":
        return _wrk(url, token, seconds)
    return _python_load(url, token, seconds)


def _wrk(url: str, token: str, seconds: float) -> tuple[float, float, int]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{CONNECTIONS}",
            f"-d{int(seconds)}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, p99, int(errors.group(1)) if errors else 0


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _python_load(url: str, token: str, seconds: float) -> tuple[float, float, int]:
    times: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def hammer() -> None:
        http = requests.Session()
        mine = []
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            status = http.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code
            mine.append((time.perf_counter() - started) * 1000)
            if status >= 300:
                with lock:
                    errors[0] += 1
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    times.sort()
    return len(times) / seconds, times[min(len(times) - 1, int(0.99 * len(times)))], errors[0]


def run(
    suite: Suite, admin_token: str, learner_token: str, seconds: float, bare_port: int
) -> list[tuple[str, float, float, int]]:
    """(name, requests/s, p99 ms, errors) for the bare endpoint and the two reads."""
    bare = start_bare(suite, bare_port)
    try:
        results = [("bare Flask + JWT verify", *load(f"http://127.0.0.1:{bare_port}/bare", admin_token, seconds))]
    finally:
        stop(bare)
    results.append(
        ("catalog GET /v1/courses?limit=20", *load(suite.url("catalog", "/v1/courses?limit=20"), admin_token, seconds))
    )
    results.append(
        ("enrollment GET /v1/me/courses", *load(suite.url("enrollment", "/v1/me/courses"), learner_token, seconds))
    )
    return results
