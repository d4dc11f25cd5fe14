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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import pika
import pika.exceptions
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from printstation.agent.broker.topology import connection_parameters
from printstation.agent.config import Names
from printstation.agent.contract import CONTROL_SCHEMA, STATUS_SCHEMA
from printstation.agent.signing import load_private_key, sign_headers, signature_headers

NOT_FOUND = 404


class _OnItsConnection:
    """A tool on a BlockingConnection of its own (`_conn`), closed with it or by `with`."""

    _conn: pika.BlockingConnection

    def close(self) -> None:
        """Close; a connection the broker already dropped is simply gone."""
        if self._conn.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Submitter(_OnItsConnection):
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


class EventTap(_OnItsConnection):
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

    def events(self, timeout: float) -> Iterator[dict]:
        """Yield events as they come; stop after `timeout` seconds with none."""
        for _key, event in self.keyed_events(timeout):
            yield event

    def keyed_events(self, timeout: float) -> Iterator[tuple[str, dict]]:
        """(routing key, event) as they come. The routing key is what the broker let the
        publisher use (topic permissions); the body's `station_id` is only what it says."""
        for method, _props, body in self._ch.consume(self.queue, inactivity_timeout=timeout,
                                                     auto_ack=True):
            if method is None:
                return
            yield method.routing_key, json.loads(body)

    def drain(self, max_wait: float = 0.2) -> list[dict]:
        return list(self.events(max_wait))


class HandbackRelay(_OnItsConnection):
    """The central system's side of a pool hand-back (contract 7.1, v2), as a reference.

    A pool station that took a job it cannot start publishes it, with its signature
    headers, on the hand-back exchange with routing key `pool.<pool>`, then reports it
    `released` (`handed_back`); the central system decides whether to send it to that pool
    again. A station's broker login may write on the hand-back exchange and publish
    statuses under its own id, so neither proves anything by itself: a station could hand
    back a job it printed, or hand back again a job it once held, for another station to
    print a second genuine card. This relay keeps, per job, who holds it now, from the
    statuses (each station's taken from the routing key, which topic permissions bind to
    its broker user, and checked against the body), and sends a hand-back to its pool again
    only when:

    - the station that reported the job `accepted` last reported it `released`
      (`handed_back`), and nobody accepted it since;
    - no station reported it printing, printed, `needs_check` or otherwise ended;
    - with `check_sender`, the hand-back was published by that station's own broker user
      (AMQP `user_id`, which the broker verifies; `user_for_station` names it, by default
      the station id, as `printstation broker-permissions` does);
    - and that release was not answered already: one copy per release.

    A hand-back whose release has not been heard yet waits for it (a station publishes the
    hand-back first, and its `released` may queue behind a long backlog); one that fails a
    rule is dropped and listed in `dropped`. The new copy is a new message (its first
    delivery is not `redelivered`), published with confirms; the hand-back is acknowledged
    only after. What it knows lives in memory from its start: it sends nothing for a job
    whose holder it did not see (a central system keeps this record durably). A central
    system that re-sends from its own copy instead (`relay(forward=False)`) must not also
    forward hand-backs: one or the other, never both.
    """

    def __init__(self, broker_url: str, *, names: Names | None = None,
                 check_sender: bool = True,
                 user_for_station: Callable[[str], str] = lambda station: station):
        self.names = names or Names()
        self.check_sender = check_sender
        self.user_for_station = user_for_station
        self._tap = EventTap(broker_url, binding="status.#", names=self.names)
        self._conn = pika.BlockingConnection(
            connection_parameters(broker_url, name="printstation-handback-relay"))
        self._ch = self._conn.channel()
        self._ch.confirm_delivery()
        self._jobs: dict[str, _HeldBy] = {}
        self._waiting: dict[int, tuple[Any, Any, bytes]] = {}
        #: Hand-backs dropped, with why: for the central system's log.
        self.dropped: list[tuple[str, str]] = []

    def close(self) -> None:
        self._tap.close()
        super().close()

    def _next(self) -> tuple:
        try:
            return self._ch.basic_get(self.names.handback_queue)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != NOT_FOUND:
                raise
            self._ch = self._conn.channel()  # no station declared it yet: nothing to relay
            self._ch.confirm_delivery()
            return None, None, None

    def _hear(self, routing_key: str, event: dict) -> None:
        """One status: who holds the job now, and whether it was printed or ended."""
        parts = routing_key.split(".")
        if len(parts) != 3 or parts[0] != "status" or event.get("station_id") != parts[1]:
            return  # a body naming another station than its routing key: not believed
        station, status = parts[1], event.get("status")
        job = self._jobs.setdefault(str(event.get("job_id")), _HeldBy())
        if status == "accepted":
            job.holder, job.release = station, None
        elif status == "released" and station == job.holder:
            job.holder = None
            code = (event.get("reason") or {}).get("code")
            job.release = (station, int(event.get("seq", 0))) if code == "handed_back" \
                else None
        elif status in ("printing", "printed", "needs_check", "failed", "cancelled",
                        "expired"):
            job.ended = True

    def _decide(self, job_id: str, props: Any) -> str | None:
        """None to send it again now, "" to wait, or why it is dropped."""
        job = self._jobs.get(job_id)
        if job is not None and job.ended:
            return "a station printed, is printing or ended it"
        if job is None or job.release is None:
            return ""  # its release may be on its way
        station, seq = job.release
        if (station, seq) in job.answered:
            return "sent again for that release already"
        if self.check_sender and props.user_id != self.user_for_station(station):
            return f"handed back by {props.user_id!r}, released by {station}"
        return None

    def relay(self, *, forward: bool = True) -> list[str]:
        """Send the jobs on the hand-back queue that are the central system's again to their
        pool; returns their ids. With `forward=False` they are only acknowledged (see the
        class's docstring)."""
        for routing_key, event in self._tap.keyed_events(0.05):
            if event.get("schema") == STATUS_SCHEMA:
                self._hear(routing_key, event)
        while True:
            method, props, body = self._next()
            if method is None:
                break
            self._waiting[method.delivery_tag] = (method, props, body)
        sent = []
        for tag, (method, props, body) in list(self._waiting.items()):
            job_id = props.message_id or ""
            why = "" if forward else "the central system re-sends from its own copy"
            if forward:
                why = self._decide(job_id, props) if method.routing_key.startswith("pool.") \
                    else "not for a pool"
            if why == "":
                continue
            if why is not None:
                self.dropped.append((job_id, why))
                self._done(tag)
                continue
            job = self._jobs[job_id]
            headers = signature_headers(props.headers)
            self._ch.basic_publish(
                self.names.job_exchange, method.routing_key, body,
                pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                     message_id=job_id, headers=headers),
                mandatory=True)
            job.answered.add(job.release)  # type: ignore[arg-type]
            job.release = None
            self._done(tag)
            sent.append(job_id)
        return sent

    def _done(self, tag: int) -> None:
        self._waiting.pop(tag, None)
        self._ch.basic_ack(tag)


@dataclass
class _HeldBy:
    """What the relay knows of one job: who holds it, its last release, answered ones."""

    holder: str | None = None
    release: tuple[str, int] | None = None
    ended: bool = False
    answered: set[tuple[str, int]] = field(default_factory=set)
