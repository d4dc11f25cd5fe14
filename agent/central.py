"""Reference tools for the central system's side, also used by the tests and the demo.

`Submitter` signs and publishes jobs and control commands exactly as contract sections
2, 3 and 5 say (persistent, publisher confirms, `mandatory`); `EventTap` follows
everything a station publishes on the event exchange through a queue of its own.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .config import Names
from .signing import load_private_key, sign_headers
from .topology import connection_parameters


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
        """Sign and publish one job to a station or a pool; returns its job_id."""
        body = job if isinstance(job, bytes) else json.dumps(job).encode()
        job_id = json.loads(body)["job_id"]
        if (station is None) == (pool is None):
            raise ValueError("give exactly one of station or pool")
        rk = f"station.{station}" if station else f"pool.{pool}"
        self.publish_raw(self.names.job_exchange, rk, body, headers=self._headers(body),
                         message_id=job_id)
        return job_id

    def control(self, station: str, command: str, **fields: Any) -> None:
        body = json.dumps({"schema": "printstation.control/1", "command": command,
                           **fields}).encode()
        self.publish_raw(self.names.control_exchange, f"station.{station}", body,
                         headers=self._headers(body))


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
