"""The broker tier's fixtures: a private vhost on the real broker, and agents on it.

Every test run gets its own vhost (so two runs at once never see each other's queues) and
every test its own station id. A broker that cannot be reached fails the test with a
message saying how to start it; it never skips. The system tier uses these fixtures too:
tests/conftest.py registers this module once (`pytest_plugins`), so a run makes one vhost,
and refuses them to the unit tier.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from printstation.agent.central.tools import EventTap, HandbackRelay, Submitter
from printstation.agent.config import Settings
from printstation.agent.signing import Verifier
from printstation.agent.station.agent import Agent
from tests.support import KEY_ID, wait_for
from tests.support.broker import (
    BROKER_HOST,
    BROKER_PORT,
    START_BROKER,
    Events,
    Station,
    rabbitmqctl,
)


@pytest.fixture(scope="session")
def vhost() -> Iterator[str]:
    try:
        socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=3).close()
    except OSError:
        pytest.fail(START_BROKER, pytrace=False)
    # RabbitMQ 3.10 loses the supervisor of at-least-once dead-lettering when a vhost with
    # quorum queues is deleted within seconds of a restart (another run's chaos test on
    # the same broker, say); every quorum queue declared after fails with INTERNAL_ERROR.
    if rabbitmqctl("eval", "whereis(rabbit_fifo_dlx_sup).").strip() == "undefined":
        pytest.fail("the broker's dead-letter supervisor (rabbit_fifo_dlx_sup) is down, so no "
                    "quorum queue can be declared: restart the broker's application with "
                    "`rabbitmqctl stop_app && rabbitmqctl start_app`", pytrace=False)
    name = f"printstation-test-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    rabbitmqctl("delete_vhost", name)


@pytest.fixture(scope="session")
def broker_url(vhost: str) -> str:
    return f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}/{quote(vhost, safe='')}"


@pytest.fixture
def make_station(tmp_path: Path, broker_url: str,
                 signing_key: Ed25519PrivateKey) -> Iterator[Callable[..., Station]]:
    started: list[Agent] = []

    def make(station_id: str, *, sim: str = "print_time=0.05&render=0", start: bool = True,
             state_dir: Path | None = None, printer_url: str | None = None,
             **settings: Any) -> Station:
        cards = tmp_path / f"cards-{station_id}"
        settings.setdefault("broker_url", broker_url)
        s = Settings(station_id=station_id,
                     state_dir=state_dir or tmp_path / f"state-{station_id}",
                     printer_url=printer_url or f"sim://?{sim}&out={cards}", heartbeat=10,
                     reconnect_max_delay=2.0, **settings)
        agent = Agent(s, verifier=Verifier({KEY_ID: signing_key.public_key()}))
        if start:
            agent.start()
            started.append(agent)
            wait_for(lambda: agent.station.broker.all_up or agent.fatal, 20,
                     "the agent to connect to the broker")
        return Station(agent, cards)

    yield make
    for agent in started:
        agent.stop()


@pytest.fixture
def submitter(broker_url: str, signing_key: Ed25519PrivateKey) -> Iterator[Submitter]:
    with Submitter(broker_url, key=signing_key, key_id=KEY_ID) as sub:
        yield sub


@pytest.fixture
def raw_publish(broker_url: str) -> Iterator[Callable[..., None]]:
    """Publish arbitrary bytes and headers to a station, as a misbehaving sender would."""
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    ch.confirm_delivery()

    def publish(station: str, body: bytes, headers: dict | None = None,
                message_id: str | None = None, exchange: str = "printstation.jobs") -> None:
        ch.basic_publish(exchange, f"station.{station}", body,
                         pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                              headers=headers, message_id=message_id),
                         mandatory=True)

    yield publish
    conn.close()


@pytest.fixture
def central_relay(broker_url: str) -> Iterator[HandbackRelay]:
    """The central system's hand-back relay (contract 7.1): call `.relay()` to send the jobs
    stations handed back to their pool again. Every station here logs in as guest, so the
    sender is not checked (test_broker_security.py checks it)."""
    with HandbackRelay(broker_url, check_sender=False) as relay:
        yield relay


@pytest.fixture
def events(broker_url: str, station_id: str) -> Iterator[Events]:
    with EventTap(broker_url, binding=f"*.{station_id}.#") as tap:
        yield Events(tap)
