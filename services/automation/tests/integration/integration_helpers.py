"""Helpers of automation's integration tests: the organization, consumers in threads, the relay."""

from __future__ import annotations

import threading

from lms_common.config import Settings
from lms_common.consumer import Consumer
from lms_common.db import make_engine, make_session_factory
from lms_common.messaging import ConfirmingPublisher
from lms_common.relay import Relay
from lms_common.testing import wait_until

ORG = "org-9"


def start_consumer(consumer: Consumer) -> threading.Thread:
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    wait_until(consumer.connected.is_set)
    return thread


def relay_all(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    publisher = ConfirmingPublisher(settings.amqp_url, settings.exchange, app_id="automation", heartbeat=10)
    try:
        relay = Relay("automation", make_session_factory(engine), publisher)
        while relay.relay_once():
            pass
    finally:
        publisher.close()
        engine.dispose()
