"""The job source on RabbitMQ: the one owner of the consuming AMQP connection.

It declares the topology, consumes the station queue and the control queue, and takes
pool jobs one at a time with `basic.get`, only when the station could start one now, each
claim acknowledged inside an AMQP transaction (contract section 7). A delivery is
acknowledged only after intake stored it in the journal, so a crash before that leaves it
in the queue. When the station cannot store (`storefault.StationFault`: a full disk), the
delivery goes back to the queue and the consumers are cancelled until it can store again,
so the broker keeps the jobs and no delivery is spent in a loop against the delivery limit.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
import structlog
from pika.adapters.blocking_connection import BlockingChannel

from printstation.agent.broker import topology
from printstation.agent.broker.session import BrokerThread
from printstation.agent.config import Settings
from printstation.agent.station import failpoints
from printstation.agent.station.components import CONSUMER
from printstation.agent.station.intake import Decision, Delivery, Intake
from printstation.agent.station.journal import Journal
from printstation.agent.station.storefault import STORE_RETRY_SECONDS

log = structlog.get_logger("printstation.consumer")

POOL_POLL_SECONDS = 0.5
IDLE_WAIT = 5.0
RECOVERY_WAIT = 30.0


def _headers(props: pika.BasicProperties) -> dict[str, Any]:
    return dict(props.headers or {})


class AmqpSource(BrokerThread):
    name = "consumer"
    stop_order = CONSUMER  # first of all: no new jobs
    thread_name = "consumer"

    def __init__(self, settings: Settings, journal: Journal, intake: Intake, *,
                 can_take_pool_job: Callable[[str], bool],
                 on_connected: Callable[[bool], None],
                 on_fatal: Callable[[BaseException], None],
                 after: threading.Event | None = None):
        super().__init__(settings, on_connected=on_connected, on_fatal=on_fatal)
        self.after = after
        self.journal = journal
        self.intake = intake
        self.can_take_pool_job = can_take_pool_job
        self._conn: pika.BlockingConnection | None = None
        #: Pool claims the broker committed and the journal has not recorded yet.
        self._committed: list[str] = []

    def _wake(self) -> None:
        conn = self._conn
        if conn is not None:  # wake pika's I/O loop at once (the thread-safe way in)
            with contextlib.suppress(Exception):
                conn.add_callback_threadsafe(lambda: None)

    def _before_connecting(self) -> None:
        if self.after is not None:
            # Let the printer thread settle jobs that were printing when the agent stopped;
            # a printer that stays unreachable does not keep jobs out of the journal.
            self.after.wait(RECOVERY_WAIT)

    def _session(self) -> None:
        conn = self._connect()
        self._conn = conn
        try:
            topology.declare(conn, self.settings)
            ch = conn.channel()
            ch.basic_qos(prefetch_count=4)
            tags = self._consume(ch) if self.intake.fault.why is None else []
            pool_ch = conn.channel() if self.settings.pools else None
            if pool_ch is not None:
                pool_ch.tx_select()
            self.on_connected(True)
            log.info("consumer_connected", station_queue=self.settings.station_queue(),
                     pools=self.settings.pools)
            # Without pools there is nothing to poll: deliveries and stop() wake the loop.
            wait = POOL_POLL_SECONDS if pool_ch is not None else IDLE_WAIT
            while not self._stop.is_set():
                conn.process_data_events(
                    time_limit=wait if tags else STORE_RETRY_SECONDS)
                fault = self.intake.fault
                if tags and fault.why is not None:
                    for tag in tags:  # pika returns what was prefetched to the queue
                        ch.basic_cancel(tag)
                    tags = []
                    log.warning("consuming_stopped", why=fault.why)
                elif not tags and fault.cleared():
                    self._confirm_claims()
                    if fault.why is None:
                        tags = self._consume(ch)
                        log.info("consuming_again")
                if pool_ch is not None and tags:
                    self._poll_pools(pool_ch)
        finally:
            self._conn = None
            if conn.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    conn.close()

    def _consume(self, ch: BlockingChannel) -> list[str]:
        return [ch.basic_consume(self.settings.station_queue(), self._on_station),
                ch.basic_consume(self.settings.control_queue(), self._on_control)]

    # ------------------------------------------------------------------------ deliveries

    def _apply(self, ch: BlockingChannel, tag: int, decision: Decision) -> None:
        if decision.action == "reject":
            ch.basic_reject(tag, requeue=False)
        elif decision.action == "requeue":
            ch.basic_reject(tag, requeue=True)
        else:
            ch.basic_ack(tag)
            failpoints.hit("after_ack")

    def _decide(self, decide: Callable[[Delivery], Decision], d: Delivery) -> Decision:
        """Intake's decision; a delivery arriving while the station cannot store goes back."""
        if self.intake.fault.why is not None:
            return Decision("requeue", None, "station_fault")
        try:
            return decide(d)
        except Exception as exc:  # intake catches everything; this guards the consumer
            log.error("delivery_failed", source=d.source, error=type(exc).__name__)
            return Decision("reject", None, "internal")

    def _on_station(self, ch: BlockingChannel, method: Any, props: pika.BasicProperties,
                    body: bytes) -> None:
        d = Delivery(body=body, headers=_headers(props), message_id=props.message_id,
                     source="station", redelivered=bool(method.redelivered))
        self._apply(ch, method.delivery_tag, self._decide(self.intake.job, d))

    def _on_control(self, ch: BlockingChannel, method: Any, props: pika.BasicProperties,
                    body: bytes) -> None:
        d = Delivery(body=body, headers=_headers(props), message_id=props.message_id,
                     source="control", redelivered=bool(method.redelivered))
        self._apply(ch, method.delivery_tag, self._decide(self.intake.control, d))

    def _poll_pools(self, ch: BlockingChannel) -> None:
        for pool in self.settings.pools:
            while not self._stop.is_set() and self.can_take_pool_job(pool):
                method, props, body = ch.basic_get(self.settings.pool_queue(pool))
                if method is None:
                    break
                d = Delivery(body=body, headers=_headers(props), message_id=props.message_id,
                             source=f"pool:{pool}", redelivered=bool(method.redelivered))
                self._claim(ch, method.delivery_tag, self._decide(self.intake.job, d))

    def _claim(self, ch: BlockingChannel, tag: int, decision: Decision) -> None:
        """Ack or reject inside the transaction; a claim counts only after commit-ok."""
        try:
            self._apply(ch, tag, decision)
            ch.tx_commit()
            failpoints.hit("after_ack")
        except Exception:
            if decision.action == "claim" and decision.job_id and self.journal.jobs.release(
                    decision.job_id, "claim_unconfirmed",
                    "the connection broke before the broker confirmed the claim"):
                log.warning("claim_unconfirmed", job_id=decision.job_id)
            raise
        if decision.action == "claim" and decision.job_id:
            self._committed.append(decision.job_id)
            self._confirm_claims()

    def _confirm_claims(self) -> None:
        """Record claims the broker committed; one that cannot be recorded yet (a full
        disk) is kept here and recorded once the journal writes again."""
        while self._committed:
            job_id = self._committed[0]
            try:
                self.journal.jobs.confirm_claim(job_id)
            except Exception as exc:
                self.intake.fault.set(self.journal.store.write_error or type(exc).__name__, 0)
                log.error("claim_not_recorded", job_id=job_id, error=type(exc).__name__)
                return
            self._committed.pop(0)
            log.info("pool_job_claimed", job_id=job_id)
