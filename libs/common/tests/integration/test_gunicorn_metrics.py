"""/metrics under gunicorn counts the requests of every worker process."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from conftest import HERE, process_env

from lms_common.config import Settings
from lms_common.testing import wait_until

ROUNDS = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric_total(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_add_up_requests_served_by_two_workers(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:lms_common.gunicorn_conf",
            "-b",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "1",
            "fixture_service:create_app()",
        ],
        env=process_env(settings, LMS_METRICS_DIR=str(tmp_path / "metrics")),
        cwd=HERE,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{base}/healthz"), timeout=30)

        def call(_: int) -> int:
            with requests.Session() as session:  # a new connection each time, spread over workers
                return int(session.get(f"{base}/pid", timeout=5).json()["pid"])

        # Which worker accepts a connection is up to the kernel: one worker may take a whole
        # round when requests are quick, so rounds go on (a bounded number) until both answered.
        pids: Counter[int] = Counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(ROUNDS):
                pids.update(pool.map(call, range(200)))
                if len(pids) == 2:
                    break
        assert len(pids) == 2, f"both workers answered: {pids}"
        calls = sum(pids.values())

        text = requests.get(f"{base}/metrics", timeout=5).text
        served = metric_total(text, "lms_http_requests_total", endpoint="/pid", status="200")
        assert served == calls
        assert re.search(rf'lms_http_request_seconds_count\{{.*endpoint="/pid".*\}} {calls}\.0', text)
    finally:
        server.terminate()
        server.wait(timeout=20)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        time.sleep(0.1)
        return False
