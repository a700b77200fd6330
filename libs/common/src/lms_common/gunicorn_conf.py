"""gunicorn settings for every service's API (``-c python:lms_common.gunicorn_conf``).

Metrics: each gunicorn master gets its own prometheus-client multiprocess directory, set here
before the app (and so prometheus_client) is imported in the workers; dead workers' files are
marked so gauges stay right.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

_metrics_dir = os.environ.get("LMS_METRICS_DIR") or tempfile.mkdtemp(prefix="lms-metrics-")
os.makedirs(_metrics_dir, exist_ok=True)
for _name in os.listdir(_metrics_dir):  # a restarted master starts from zero, like a single process
    if _name.endswith(".db"):
        os.remove(os.path.join(_metrics_dir, _name))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir

workers = int(os.environ.get("LMS_API_WORKERS", "2"))
threads = int(os.environ.get("LMS_API_THREADS", "4"))
worker_class = "gthread" if threads > 1 else "sync"
timeout = int(os.environ.get("LMS_API_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
limit_request_line = 8190
limit_request_field_size = 8190
accesslog = None  # the app logs one JSON line per request


def child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
