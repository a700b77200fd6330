"""Settings read from the environment (12-factor), names and defaults as the contract says.

Every variable has a working default so that a fresh checkout runs with no configuration:
SQLite files under ``var/`` and RabbitMQ on localhost.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_ISSUER = "http://127.0.0.1:8001"
DEFAULT_EXCHANGE = "lms.events"
AUDIENCE = "lms"

# The contract's ports; workers and relays expose their metrics on the API port + 100 / + 200.
API_PORTS = {
    "identity": 8001,
    "catalog": 8002,
    "enrollment": 8003,
    "automation": 8004,
    "reporting": 8005,
}


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def default_var_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get("LMS_VAR_DIR") or Path.cwd() / "var")


def sqlite_url(var_dir: Path, service: str) -> str:
    return f"sqlite:///{var_dir / f'{service}.sqlite3'}"


# How long a consumer lets a short batch wait for more deliveries, by service. Only a service
# no request waits on lingers: reporting's projections, read by people, are written in fewer
# and larger batches when events trickle in (a batch costs the same few statements whatever
# its size). Every other service hands each delivery to its handler at once.
CONSUMER_LINGER = {"reporting": 0.05}


@dataclass(frozen=True)
class Settings:
    """Everything a service process needs to know about its surroundings."""

    service: str
    database_url: str
    amqp_url: str = DEFAULT_AMQP_URL
    issuer: str = DEFAULT_ISSUER
    audience: str = AUDIENCE
    exchange: str = DEFAULT_EXCHANGE
    queue_prefix: str = ""
    var_dir: Path = field(default_factory=lambda: Path("var"))
    api_port: int = 8000
    max_body_bytes: int = 1024 * 1024
    jwks_url: str = ""
    jwks_min_refresh_seconds: float = 5.0
    token_leeway_seconds: int = 10
    # A batch pays a transaction, a commit (a WAL flush) and the same few statements whatever
    # its size; in a burst of 5,000 onboardings batches of up to 500 instead of 100 cost the
    # suite a sixth less CPU. A lone delivery is still handled at once.
    consumer_prefetch: int = 1000
    consumer_batch_size: int = 500
    consumer_max_attempts: int = 5
    consumer_retry_base_seconds: float = 0.5
    consumer_delivery_limit: int = 20
    consumer_linger_seconds: float = 0.0
    relay_batch_size: int = 500
    relay_poll_seconds: float = 1.0
    heartbeat_seconds: int = 30
    log_level: str = "INFO"
    serve_metrics: bool = True

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings of one service from the environment (``os.environ`` by default)."""
        env = os.environ if env is None else env
        var_dir = default_var_dir(env)
        issuer = env.get("LMS_ISSUER") or DEFAULT_ISSUER
        api_port = API_PORTS.get(service, 8000)
        return cls(
            service=service,
            database_url=env.get(f"LMS_{service.upper()}_DATABASE_URL") or sqlite_url(var_dir, service),
            # A service may have its own broker user (deploy/rabbitmq/users.json).
            amqp_url=env.get(f"LMS_{service.upper()}_AMQP_URL") or env.get("LMS_AMQP_URL") or DEFAULT_AMQP_URL,
            issuer=issuer.rstrip("/"),
            exchange=env.get("LMS_EXCHANGE") or DEFAULT_EXCHANGE,
            queue_prefix=env.get("LMS_QUEUE_PREFIX", ""),
            var_dir=var_dir,
            api_port=_int(env, f"LMS_{service.upper()}_PORT", api_port),
            max_body_bytes=_int(env, "LMS_MAX_BODY_BYTES", 1024 * 1024),
            jwks_url=env.get("LMS_JWKS_URL") or f"{issuer.rstrip('/')}/.well-known/jwks.json",
            jwks_min_refresh_seconds=_float(env, "LMS_JWKS_MIN_REFRESH_SECONDS", 5.0),
            token_leeway_seconds=_int(env, "LMS_TOKEN_LEEWAY_SECONDS", 10),
            consumer_prefetch=_int(env, "LMS_CONSUMER_PREFETCH", 1000),
            consumer_batch_size=_int(env, "LMS_CONSUMER_BATCH_SIZE", 500),
            consumer_max_attempts=_int(env, "LMS_CONSUMER_MAX_ATTEMPTS", 5),
            consumer_retry_base_seconds=_float(env, "LMS_CONSUMER_RETRY_BASE_SECONDS", 0.5),
            consumer_delivery_limit=_int(env, "LMS_CONSUMER_DELIVERY_LIMIT", 20),
            consumer_linger_seconds=_float(env, "LMS_CONSUMER_LINGER_SECONDS", CONSUMER_LINGER.get(service, 0.0)),
            relay_batch_size=_int(env, "LMS_RELAY_BATCH_SIZE", 500),
            relay_poll_seconds=_float(env, "LMS_RELAY_POLL_SECONDS", 1.0),
            heartbeat_seconds=_int(env, "LMS_HEARTBEAT_SECONDS", 30),
            log_level=env.get("LMS_LOG_LEVEL", "INFO").upper(),
            serve_metrics=env.get("LMS_SERVE_METRICS", "1") not in ("0", "false", "no"),
        )

    @property
    def queue(self) -> str:
        """The service's work queue, e.g. ``enrollment`` (prefixed in isolated test runs)."""
        return f"{self.queue_prefix}{self.service}"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}.dead"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.exchange}.dead"

    @property
    def worker_metrics_port(self) -> int:
        """Where a worker serves /metrics (0: not at all)."""
        return self.api_port + 100 if self.serve_metrics else 0

    @property
    def relay_metrics_port(self) -> int:
        return self.api_port + 200 if self.serve_metrics else 0
