"""Declaring the broker objects of contract section 1, idempotently, and refusing mismatches.

An object that already exists with other arguments stops the agent with an error naming
it and the difference: the agent never deletes or re-creates a queue, because a queue
holds citizens' jobs.

The agent declares everything, bindings included, before it first consumes. On a
reconnect in the same run it declares the exchanges and queues again (which also finds a
queue re-created with other arguments) but leaves the bindings to a connection and thread
of their own (`bind`, from the consumer), while it consumes: a binding, even one that
exists, is written in a transaction across every node of the cluster, and a node that
hangs (rather than dies) holds that transaction until the cluster gives it up as down
(`net_ticktime`, 60 s by default), so a station reconnecting to a live node would wait that
long before consuming. Measured on the tests' three-node cluster with one node stopped by
SIGSTOP: `queue.bind` of an existing binding 60.5 s; `queue.declare` and
`exchange.declare` of existing objects, passive or not, and `basic.consume` at once.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pika
import pika.exceptions
import structlog
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from printstation.agent.broker.reasons import ACCESS_REFUSED
from printstation.agent.config import Settings
from printstation.agent.config.nodes import rotated, split_nodes
from printstation.drivers.errors import PrintstationError

log = structlog.get_logger("printstation.topology")

PRECONDITION_FAILED = 406


class TopologyMismatch(PrintstationError):
    """A broker object exists with other arguments than the contract's."""

    code = "topology_mismatch"


@dataclass(frozen=True)
class QueueSpec:
    name: str
    exchange: str
    routing_key: str


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @classmethod
    def of(cls, settings: Settings) -> TlsFiles:
        return cls(settings.broker_ca_file, settings.broker_cert_file,
                   settings.broker_key_file)


def queue_arguments(settings: Settings) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": settings.names.dead_exchange,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-delivery-limit": settings.delivery_limit,
    } | ({"x-quorum-initial-group-size": settings.quorum_group_size}
         if settings.quorum_group_size is not None else {})


def exchanges(settings: Settings) -> list[tuple[str, str]]:
    n = settings.names
    return [
        (n.job_exchange, "direct"),
        (n.event_exchange, "topic"),
        (n.control_exchange, "direct"),
        (n.handback_exchange, "fanout"),
        (n.dead_exchange, "fanout"),
    ]


def queues(settings: Settings) -> list[QueueSpec]:
    n, sid = settings.names, settings.station_id
    specs = [
        QueueSpec(n.dead_queue, n.dead_exchange, ""),
        QueueSpec(n.handback_queue, n.handback_exchange, ""),
        QueueSpec(settings.station_queue(), n.job_exchange, f"station.{sid}"),
        QueueSpec(settings.control_queue(), n.control_exchange, f"station.{sid}"),
    ]
    specs += [QueueSpec(settings.pool_queue(p), n.job_exchange, f"pool.{p}")
              for p in settings.pools]
    return specs


def _declare(conn: BlockingConnection, what: str,
             active: Callable[[BlockingChannel], Any],
             passive: Callable[[BlockingChannel], Any]) -> None:
    """Declare one object; where this station may not configure it, check that it exists."""
    ch = conn.channel()
    try:
        active(ch)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == PRECONDITION_FAILED:
            raise TopologyMismatch(f"{what} exists with other arguments: {exc.reply_text}") \
                from None
        if exc.reply_code != ACCESS_REFUSED:
            raise
        ch = conn.channel()
        try:
            passive(ch)
        except pika.exceptions.ChannelClosedByBroker as again:
            raise TopologyMismatch(f"{what} cannot be declared or found: {again.reply_text}") \
                from None
        log.info("topology_checked_passively", object=what)
    if ch.is_open:
        ch.close()


def shared_queues(settings: Settings) -> list[QueueSpec]:
    """Queues no station owns: the dead letters, and the hand-back queue (the central
    system's). A station's user may not declare or bind them; an administrator does."""
    n = settings.names
    return [spec for spec in queues(settings) if spec.name in (n.dead_queue, n.handback_queue)]


def declare_shared(conn: BlockingConnection, settings: Settings) -> None:
    """What every station shares: the exchanges, the dead-letter and hand-back queues."""
    for name, kind in exchanges(settings):
        conn.channel().exchange_declare(name, kind, durable=True)
    ch = conn.channel()
    for spec in shared_queues(settings):
        ch.queue_declare(spec.name, durable=True, arguments=queue_arguments(settings))
        ch.queue_bind(spec.name, spec.exchange, routing_key=spec.routing_key)
    ch.close()


def declare(conn: BlockingConnection, settings: Settings, *, bind_queues: bool = True) -> None:
    """The station's exchanges and queues, and (unless `bind_queues` is False: see the
    module's docstring) their bindings."""
    for name, kind in exchanges(settings):
        _declare(
            conn, f"exchange {name!r}",
            lambda ch, name=name, kind=kind: ch.exchange_declare(name, kind, durable=True),
            lambda ch, name=name: ch.exchange_declare(name, passive=True),
        )
    args = queue_arguments(settings)
    for spec in queues(settings):
        _declare(
            conn, f"queue {spec.name!r}",
            lambda ch, s=spec: ch.queue_declare(s.name, durable=True, arguments=args),
            lambda ch, s=spec: ch.queue_declare(s.name, passive=True),
        )
    if bind_queues:
        bind(conn, settings)


def bind(conn: BlockingConnection, settings: Settings) -> None:
    """Bind the station's queues (idempotent); the shared ones only where it may."""
    shared = shared_queues(settings)
    for spec in queues(settings):
        ch = conn.channel()
        try:
            ch.queue_bind(spec.name, spec.exchange, routing_key=spec.routing_key)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != ACCESS_REFUSED or spec not in shared:
                raise
            # A station user may not bind the shared queues: the administrator's setup
            # does (README, "Broker users and permissions").
            log.info("shared_queue_binding_left_to_admin", queue=spec.name)
        if ch.is_open:
            ch.close()


def tls_options(url: str, tls: TlsFiles | None) -> pika.SSLOptions | None:
    """For amqps://: verify the broker's certificate and host name, always.

    With `ca_file`, only that CA (the programme's own) is trusted; without, the system's.
    `cert_file` and `key_file` present this station's own certificate (mutual TLS).
    """
    parts = urlsplit(url)
    if parts.scheme != "amqps":
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                         cafile=str(tls.ca_file) if tls and tls.ca_file
                                         else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls and tls.cert_file:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    return pika.SSLOptions(context, server_hostname=parts.hostname)


def connection_parameters(url: str, *, heartbeat: int = 30, name: str = "printstation",
                          tls: TlsFiles | None = None, start: int = 0
                          ) -> list[pika.URLParameters]:
    """pika's parameters for each node of `url` (several separated by commas), beginning
    with the node at `start`: `pika.BlockingConnection` tries them in that order, once
    each, and connects to the first that answers. A URL it cannot read is a ValueError
    naming it (masked)."""
    return [node_parameters(node, heartbeat=heartbeat, name=name, tls=tls)
            for node in rotated(split_nodes(url) or [url], start)]


def node_parameters(url: str, *, heartbeat: int = 30, name: str = "printstation",
                    tls: TlsFiles | None = None) -> pika.URLParameters:
    """pika's parameters for one node's URL."""
    from printstation.agent.config import mask_url

    try:
        params = pika.URLParameters(url)
        urlsplit(url).port  # noqa: B018 - raises on a port out of range, as pika would later
    except ValueError as exc:
        raise ValueError(f"broker URL {mask_url(url)}: {exc}") from None
    options = tls_options(url, tls)
    if options is not None:
        params.ssl_options = options
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = 60
    # One attempt per node and no pause between nodes: the reconnect loop paces retries.
    params.connection_attempts = 1
    params.retry_delay = 0
    params.socket_timeout = 10
    params.client_properties = {"connection_name": name}
    return params
