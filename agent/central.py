"""Reference tools for the central system's side, also used by the tests and the demo.

`Submitter` signs and publishes jobs and control commands exactly as contract sections
2, 3 and 5 say (persistent, publisher confirms, `mandatory`); `EventTap` follows
everything a station publishes on the event exchange through a queue of its own;
`HandbackRelay` sends pool jobs that stations handed back to their pool again (7.1).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .config import Names
from .contract import CONTROL_SCHEMA
from .signing import load_private_key, sign_headers
from .topology import connection_parameters

NOT_FOUND = 404


class Submitter:
    def __init__(self, broker_url: str, *, key: Ed25519PrivateKey | None, key_id: str | None,
                 names: Names | None = None):
        self.names = names or Names()
        self.key, self.key_id = key, key_id
        self._conn = pika.BlockingConnection(
            connection_parameters(broker_url, name="printstation-submit"))
        self._ch = self._conn.channel()
        self._ch.confirm_delivery()

    @classmethod
    def from_key_file(cls, broker_url: str, key_file: Path | None, key_id: str | None,
                      names: Names | None = None) -> Submitter:
        key = load_private_key(key_file) if key_file else None
        return cls(broker_url, key=key, key_id=key_id or (key_file.stem if key_file else None),
                   names=names)

    def close(self) -> None:
        """Close; a connection the broker already dropped is simply gone."""
        if self._conn.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                self._conn.close()

    def __enter__(self) -> Submitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self, body: bytes) -> dict[str, Any]:
        if self.key is None or self.key_id is None:
            return {}
        return sign_headers(self.key, self.key_id, body)

    def publish_raw(self, exchange: str, routing_key: str, body: bytes, *,
                    headers: dict[str, Any] | None = None,
                    message_id: str | None = None) -> None:
        """Publish with confirms and `mandatory`; raises if unroutable or nacked."""
        props = pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                     message_id=message_id, headers=headers)
        self._ch.basic_publish(exchange, routing_key, body, props, mandatory=True)

    def submit_job(self, job: dict | bytes, *, station: str | None = None,
                   pool: str | None = None) -> str:
        """Sign and publish one job to a station or a pool; returns its job_id.

        The job's `destination` is set to where it is sent before it is signed (contract
        3, v2): the signature then binds it to that queue, and a copy replayed to any other
        station or pool is refused there.
        """
        if (station is None) == (pool is None):
            raise ValueError("give exactly one of station or pool")
        rk = f"station.{station}" if station else f"pool.{pool}"
        doc = json.loads(job) if isinstance(job, bytes) else dict(job)
        if not isinstance(doc, dict) or not isinstance(doc.get("job_id"), str):
            raise ValueError("a job is a JSON object with a job_id")
        if doc.get("destination") != rk:
            doc["destination"] = rk
            job = doc
        body = job if isinstance(job, bytes) else json.dumps(job).encode()
        self.publish_raw(self.names.job_exchange, rk, body, headers=self._headers(body),
                         message_id=doc["job_id"])
        return doc["job_id"]

    def control(self, station: str, command: str, *, command_id: str | None = None,
                issued_at: datetime | None = None, **fields: Any) -> str:
        """Sign and send one `printstation.control/2` command; returns its command_id."""
        command_id = command_id or f"cmd-{uuid.uuid4().hex}"
        at = issued_at or datetime.now().astimezone()
        body = json.dumps({"schema": CONTROL_SCHEMA, "command_id": command_id,
                           "issued_at": at.isoformat(), "station_id": station,
                           "command": command, **fields}).encode()
        self.publish_raw(self.names.control_exchange, f"station.{station}", body,
                         headers=self._headers(body))
        return command_id


class EventTap:
    """A private queue bound to the event exchange: sees every event from now on."""

    def __init__(self, broker_url: str, *, binding: str | list[str] = "#",
                 names: Names | None = None,
                 queue: str | None = None):
        self.names = names or Names()
        self._conn = pika.BlockingConnection(
            connection_parameters(broker_url, name="printstation-watch"))
        self._ch = self._conn.channel()
        self._ch.exchange_declare(self.names.event_exchange, "topic", durable=True)
        self.queue = queue or f"printstation.watch.{uuid.uuid4().hex[:12]}"
        self._ch.queue_declare(self.queue, exclusive=queue is None, auto_delete=queue is None,
                               durable=queue is not None)
        for key in [binding] if isinstance(binding, str) else binding:
            self._ch.queue_bind(self.queue, self.names.event_exchange, routing_key=key)

    def close(self) -> None:
        """Close; a connection the broker already dropped is simply gone."""
        if self._conn.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                self._conn.close()

    def __enter__(self) -> EventTap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def events(self, timeout: float) -> Iterator[dict]:
        """Yield events as they come; stop after `timeout` seconds with none."""
        for method, _props, body in self._ch.consume(self.queue, inactivity_timeout=timeout,
                                                     auto_ack=True):
            if method is None:
                return
            yield json.loads(body)

    def drain(self, max_wait: float = 0.2) -> list[dict]:
        return list(self.events(max_wait))


class HandbackRelay:
    """The central system's side of a pool hand-back (contract 7.1, v2).

    A pool station that took a job it cannot start publishes it, with its signature
    headers, on the hand-back exchange with routing key `pool.<pool>`; the central system
    decides whether to send it to that pool again. This relay always does, as a new
    message (so its first delivery is not `redelivered`), with confirms, acknowledging the
    hand-back only once the broker confirmed the new copy.
    """

    def __init__(self, broker_url: str, *, names: Names | None = None):
        self.names = names or Names()
        self._conn = pika.BlockingConnection(
            connection_parameters(broker_url, name="printstation-handback-relay"))
        self._ch = self._conn.channel()
        self._ch.confirm_delivery()

    def close(self) -> None:
        if self._conn.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                self._conn.close()

    def __enter__(self) -> HandbackRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next(self) -> tuple:
        try:
            return self._ch.basic_get(self.names.handback_queue)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != NOT_FOUND:
                raise
            self._ch = self._conn.channel()  # no station declared it yet: nothing to relay
            self._ch.confirm_delivery()
            return None, None, None

    def relay(self, *, forward: bool = True) -> list[str]:
        """Send every job waiting on the hand-back queue to its pool; returns their ids.

        A central system that re-sends every released pool job from its own copy (once per
        release, as `released` with `handed_back` tells it) takes them with `forward=False`:
        they are then only acknowledged, so a hand-back and a re-send never make two copies.
        """
        sent = []
        while True:
            method, props, body = self._next()
            if method is None:
                return sent
            rk = method.routing_key
            if not rk.startswith("pool."):
                self._ch.basic_reject(method.delivery_tag, requeue=False)
                continue
            headers = {k: v for k, v in (props.headers or {}).items()
                       if k in ("x-signature", "x-key-id")}
            if not forward:
                self._ch.basic_ack(method.delivery_tag)
                sent.append(props.message_id or "")
                continue
            self._ch.basic_publish(
                self.names.job_exchange, rk, body,
                pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                     message_id=props.message_id, headers=headers),
                mandatory=True)
            self._ch.basic_ack(method.delivery_tag)
            sent.append(props.message_id or "")
