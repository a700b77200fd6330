"""What makes a service a service: its definition, its runtime, and its command line.

A service module declares one :class:`ServiceDefinition` (name, blueprints, event handlers,
migrations) and gets from it ``create_app()`` for gunicorn and ``python -m <service>`` with the
commands ``api``, ``worker``, ``relay``, ``migrate``, ``topology`` and ``revision``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pika
import structlog
from flask import Flask
from flask_smorest import Blueprint
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from lms_common import denylist, metrics, migrations
from lms_common.api import build_app
from lms_common.auth import JWKSCache, KeySource, TokenVerifier
from lms_common.config import Settings
from lms_common.consumer import Consumer
from lms_common.contracts import SUITE_EVENTS
from lms_common.db import is_postgres, make_engine, make_session_factory
from lms_common.envelope import EventCatalog
from lms_common.health import Readiness, check_broker, check_database
from lms_common.logging import configure_logging
from lms_common.messaging import ConfirmingPublisher, Topology, connection_parameters
from lms_common.processing import BatchHandler, Handler, MessageProcessor
from lms_common.relay import ListenWaker, PollWaker, Relay, Waker
from lms_common.statistics import StatisticsKeeper

log = structlog.get_logger("lms.service")


@dataclass
class Runtime:
    """The wired-up dependencies of one process of a service."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    verifier: TokenVerifier
    readiness: Readiness
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    title: str
    migrations: str
    blueprints: Sequence[Blueprint] = ()
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    # Event types whose consecutive deliveries in a batch are handled together (set-based).
    batch_handlers: Mapping[str, BatchHandler] = field(default_factory=dict)
    extra_bindings: Sequence[str] = ()
    catalog: EventCatalog = SUITE_EVENTS
    # The tables the handlers' lookups read, analyzed by the worker as they grow.
    statistics: StatisticsKeeper | None = None

    @property
    def all_handlers(self) -> dict[str, Handler]:
        """The service's handlers plus the deny-list handlers every service has."""
        return {**denylist.HANDLERS, **self.handlers}

    def routing_keys(self) -> list[str]:
        types = {*self.all_handlers, *self.batch_handlers}
        keys = {self.catalog.get(event_type).routing_key for event_type in types}
        return sorted(keys | set(self.extra_bindings))

    def settings(self) -> Settings:
        return Settings.from_env(self.name)

    def runtime(self, settings: Settings | None = None, key_source: KeySource | None = None) -> Runtime:
        settings = settings or self.settings()
        engine = make_engine(settings.database_url)
        session_factory = make_session_factory(engine)
        keys = key_source or JWKSCache(settings.jwks_url, settings.jwks_min_refresh_seconds)
        verifier = TokenVerifier(
            keys,
            issuer=settings.issuer,
            audience=settings.audience,
            leeway=settings.token_leeway_seconds,
            revocations=denylist.DenyList(session_factory),
        )
        readiness = Readiness([lambda: check_database(engine), lambda: check_broker(settings.amqp_url)])
        return Runtime(settings, engine, session_factory, verifier, readiness)

    def create_app(self, settings: Settings | None = None, key_source: KeySource | None = None) -> Flask:
        """The WSGI app of this service (gunicorn calls it with no arguments)."""
        settings = settings or self.settings()
        configure_logging(self.name, settings.log_level)
        return build_app(self.name, self.title, self.blueprints, self.runtime(settings, key_source))

    # --- processes ---------------------------------------------------------------------------

    def topology(self, settings: Settings) -> Topology:
        return Topology.for_service(settings, self.routing_keys())

    def processor(self, rt: Runtime) -> MessageProcessor:
        return MessageProcessor(
            self.name,
            rt.session_factory,
            self.all_handlers,
            self.catalog,
            batch_handlers=self.batch_handlers,
            statistics=self.statistics,
        )

    def run_worker(self, settings: Settings) -> None:
        rt = self.runtime(settings)
        metrics.serve(settings.worker_metrics_port)
        consumer = Consumer(settings, self.topology(settings), self.processor(rt))
        consumer.install_signal_handlers()
        consumer.run()

    def run_relay(self, settings: Settings) -> None:
        rt = self.runtime(settings)
        metrics.serve(settings.relay_metrics_port)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        publisher = ConfirmingPublisher(
            settings.amqp_url, settings.exchange, app_id=self.name, heartbeat=settings.heartbeat_seconds
        )
        waker: Waker = ListenWaker(settings.database_url, stop) if is_postgres(rt.engine) else PollWaker(stop)
        relay = Relay(
            self.name,
            rt.session_factory,
            publisher,
            batch_size=settings.relay_batch_size,
            poll_seconds=settings.relay_poll_seconds,
        )
        try:
            relay.run(stop, waker)
        finally:
            publisher.close()

    def declare_topology(self, settings: Settings) -> None:
        params = connection_parameters(
            settings.amqp_url, heartbeat=settings.heartbeat_seconds, name=f"{self.name}-setup"
        )
        connection = pika.BlockingConnection(params)
        try:
            self.topology(settings).declare(connection.channel())
        finally:
            connection.close()

    def run_api(self, settings: Settings, extra_args: Sequence[str]) -> None:
        """Serve the API with gunicorn (replaces this process)."""
        module = f"{self.name}.app"
        args = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:lms_common.gunicorn_conf",
            "-b",
            os.environ.get("LMS_BIND", f"127.0.0.1:{settings.api_port}"),
            *extra_args,
            f"{module}:create_app()",
        ]
        os.execv(sys.executable, args)  # noqa: S606 - our own interpreter and arguments

    # --- command line ------------------------------------------------------------------------

    def main(self, argv: Sequence[str] | None = None) -> int:
        parser = argparse.ArgumentParser(prog=f"python -m {self.name}", description=self.title)
        commands = parser.add_subparsers(dest="command", required=True)
        commands.add_parser("api", help="serve the REST API with gunicorn")
        commands.add_parser("worker", help="consume the service queue")
        commands.add_parser("relay", help="publish the outbox")
        commands.add_parser("migrate", help="apply database migrations")
        commands.add_parser("topology", help="declare the service's exchanges, queues and bindings")
        new_revision = commands.add_parser("revision", help="create a migration from model changes")
        new_revision.add_argument("-m", "--message", required=True)
        args, extra = parser.parse_known_args(argv)
        settings = self.settings()
        configure_logging(self.name, settings.log_level)
        if args.command == "api":
            self.run_api(settings, extra)
        elif args.command == "worker":
            self.run_worker(settings)
        elif args.command == "relay":
            self.run_relay(settings)
        elif args.command == "migrate":
            migrations.upgrade(self.migrations, settings.database_url)
            log.info("migrated", database=settings.database_url.split("@")[-1])
        elif args.command == "topology":
            self.declare_topology(settings)
        elif args.command == "revision":
            migrations.revision(self.migrations, settings.database_url, args.message)
        return 0
