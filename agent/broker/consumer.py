"""The job source on RabbitMQ: the one owner of the consuming AMQP connection.

It declares the topology, consumes the station queue and the control queue, and takes
pool jobs one at a time with `basic.get`, only when the station could start one now, each
claim acknowledged inside an AMQP transaction (contract section 7). A delivery is
acknowledged only after intake stored it in the journal, so a crash before that leaves it
in the queue. When the station cannot store (`storefault.StationFault`: a full disk), the
delivery goes back to the queue and the consumers are cancelled until it can store again,
so the broker keeps the jobs and no delivery is spent in a loop against the delivery limit.

The station holds at most `max_held_jobs` jobs with their images (README, "A bounded local
backlog"). While there is more room than the consumer's prefetch, the station queue is
consumed (pushed, at once); with less, the consumer is cancelled and jobs are taken one at a
time with `basic.get`, only as many as fit, so the rest wait at the broker. Getting, not
consuming and returning: a delivery handed back to a quorum queue counts against its
delivery limit, and a consumer paused and resumed at every card would hand back the same
prefetched jobs again and again until they were dead-lettered. The printer thread only
signals (a status stored wakes this thread); this thread alone touches the connection.
"""

from __future__ import annotations

import contextlib
import threading
import time
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
#: Unacknowledged deliveries the broker may push to each consumer.
PREFETCH = 4
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
                 after: threading.Event | None = None,
                 on_waiting: Callable[[int | None], None] = lambda count: None):
        super().__init__(settings, on_connected=on_connected, on_fatal=on_fatal)
        self.after = after
        #: Told how many jobs wait in the station queue at the broker (None: unknown).
        self.on_waiting = on_waiting
        #: When the station queue's waiting jobs were last counted (monotonic seconds).
        self._counted_at = float("-inf")
        #: A job came from the station queue since that count.
        self._delivered = True
        self.journal = journal
        self.intake = intake
        self.can_take_pool_job = can_take_pool_job
        self._conn: pika.BlockingConnection | None = None
        #: Pool claims the broker committed and the journal has not recorded yet.
        self._committed: list[str] = []
        #: The station queue's consumer tag while it is consumed (None: faulted, or full).
        self._station_tag: str | None = None
        #: The backlog bound is reached or near: jobs are got one at a time, as they fit.
        self.backlog_full = False
        #: The most jobs held at once this run (what the bound must keep <= max_held_jobs).
        self.most_held = 0
        #: The whole topology, bindings included, was declared in this run: a reconnect
        #: binds behind, on a connection of its own (topology's docstring: a hung node).
        self._declared = False
        self._binder: threading.Thread | None = None
        #: Guards `_binder` and `_bind_owed`: a session asks for binds, the binder owes them.
        self._bind_lock = threading.Lock()
        self._bind_owed = False
        #: The broker cancelled a consumer of this session (its queue was deleted, say).
        self._cancelled: str | None = None

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
        conn = self._conn = self._connect()
        self._station_tag = None
        self._counted_at = float("-inf")  # count what waits as soon as this session can
        self._delivered = True  # and ask the broker, as this session knows nothing yet

        def waker() -> None:  # another thread stored an event (a card printed, say)
            if self.backlog_full:
                self._wake()

        self.journal.store.outbox_event.add_waker(waker)
        try:
            if self._declared:
                topology.declare(conn, self.settings, bind_queues=False)
                self._bind_behind()
            else:
                topology.declare(conn, self.settings)
                self._declared = True
            ch = conn.channel()
            self._cancelled = None
            ch.add_on_cancel_callback(self._on_cancelled)
            ch.basic_qos(prefetch_count=PREFETCH)
            control_tag: str | None = None
            if self.intake.fault.why is None:
                control_tag = self._consume_control(ch)
                self._fit_station(ch)
            pool_ch = conn.channel() if self.settings.pools else None
            if pool_ch is not None:
                pool_ch.tx_select()
            self.on_connected(True)
            log.info("consumer_connected", station_queue=self.settings.station_queue(),
                     pools=self.settings.pools, max_held_jobs=self.settings.max_held_jobs)
            while not self._stop.is_set():
                conn.process_data_events(time_limit=self._wait_for(control_tag, pool_ch))
                if self._cancelled is not None:
                    # A new session declares the queue again; this one cannot consume it.
                    raise pika.exceptions.ConsumerCancelled(self._cancelled)
                fault = self.intake.fault
                if control_tag and fault.why is not None:
                    # pika returns what was prefetched to the queue
                    for tag in (control_tag, self._station_tag):
                        if tag:
                            ch.basic_cancel(tag)
                    control_tag = self._station_tag = None
                    log.warning("consuming_stopped", why=fault.why)
                elif not control_tag and fault.cleared():
                    self._confirm_claims()
                    if fault.why is None:
                        control_tag = self._consume_control(ch)
                        log.info("consuming_again")
                if control_tag:
                    self._fit_station(ch)
                    if pool_ch is not None:
                        self._poll_pools(pool_ch)
                self._count_waiting(ch)
        finally:
            self.on_waiting(None)
            self.journal.store.outbox_event.remove_waker(waker)
            self._conn = None
            self._station_tag = None
            if conn.is_open:
                with contextlib.suppress(pika.exceptions.AMQPError):
                    conn.close()

    def _wait_for(self, control_tag: str | None, pool_ch: BlockingChannel | None) -> float:
        """How long one round waits for the broker: deliveries, stop() and (while the
        backlog is full) a card printed wake it sooner."""
        if not control_tag:
            return STORE_RETRY_SECONDS
        if pool_ch is not None or self._station_tag is None:
            return POOL_POLL_SECONDS
        return IDLE_WAIT

    def _consume_control(self, ch: BlockingChannel) -> str:
        return ch.basic_consume(self.settings.control_queue(), self._on_control)

    def _room(self) -> int:
        """How many more jobs with their images this station may take now."""
        held = self.journal.jobs.held()
        self.most_held = max(self.most_held, held)
        return self.settings.max_held_jobs - held

    def _on_cancelled(self, method: Any) -> None:
        self._cancelled = f"the broker cancelled consumer {method.method.consumer_tag}"
        log.warning("consumer_cancelled_by_broker", consumer_tag=method.method.consumer_tag)

    def _bind_behind(self) -> None:
        """Bind the station's queues again, on a connection and a thread of their own, while
        this session consumes: a binding waits for a hung node of the cluster (topology's
        docstring), and a queue re-created or a binding lost since the first declaration
        is routed to again once this is done.

        One binder at a time, owing binds: a session that starts while the binder works
        (waiting for a hung node, say) leaves it one more round, so a queue declared by
        that session is bound too. A failed round is tried again with a growing pause (up
        to `reconnect_max_delay`) until it succeeds or the agent stops, not left to the
        next reconnect, which on a sound link may be days away."""
        with self._bind_lock:
            self._bind_owed = True
            if self._stop.is_set() or (self._binder is not None and self._binder.is_alive()):
                return
            self._binder = threading.Thread(target=self._binder_rounds, name="consumer-binder",
                                            daemon=True)
            self._binder.start()

    def _binder_rounds(self) -> None:
        pause = 1.0
        while True:
            with self._bind_lock:
                if not self._bind_owed or self._stop.is_set():
                    self._binder = None
                    return
                self._bind_owed = False
            params = topology.connection_parameters(
                self._url.get_secret_value(), heartbeat=self.settings.heartbeat,
                name=f"printstation-binder-{self.settings.station_id}",
                tls=topology.TlsFiles.of(self.settings), start=self._node_index or 0)
            try:
                conn = pika.BlockingConnection(params)
                try:
                    topology.bind(conn, self.settings)
                finally:
                    if conn.is_open:
                        conn.close()
                pause = 1.0
            except Exception as exc:
                with self._bind_lock:
                    self._bind_owed = True
                log.warning("binding_again_failed", error=type(exc).__name__,
                            detail=str(exc)[:200], retry_in=pause)
                self._stop.wait(pause)
                pause = min(pause * 2, self.settings.reconnect_max_delay)

    def _count_waiting(self, ch: BlockingChannel) -> None:
        """Count the jobs waiting at the broker once a telemetry interval, for the
        telemetry's `waiting_jobs`, asking the broker only when the answer is not known.

        While jobs are got one at a time, each get says how many are left. While the
        station queue is consumed and nothing came from it since the last count, none
        waits: the broker pushes a waiting job to a consumer with room at once. Only
        otherwise (jobs came, or the station takes none while it cannot store) is the
        queue declared passively, one round trip; so an idle station, as most are most
        of the day, costs the broker nothing for it (docs/SCALE.md)."""
        now = time.monotonic()
        if now - self._counted_at < self.settings.telemetry_interval:
            return
        if self._station_tag is not None and not self._delivered:
            self._waiting(0)
            return
        queue = self.settings.station_queue()
        self._waiting(ch.queue_declare(queue, passive=True).method.message_count)

    def _waiting(self, count: int) -> None:
        self._counted_at = time.monotonic()
        self._delivered = False
        self.on_waiting(count)

    def _fit_station(self, ch: BlockingChannel) -> None:
        """Consume the station queue while more than a prefetch fits; else get what fits.

        The switch to getting cancels the consumer, which returns at most a prefetch of
        deliveries to the queue, once per filling of the backlog, not once per card.
        """
        room = self._room()
        if room > PREFETCH:
            if self._station_tag is None:
                self._station_tag = ch.basic_consume(self.settings.station_queue(),
                                                     self._on_station)
                if self.backlog_full:
                    self.backlog_full = False
                    log.info("backlog_room_again", held=self.settings.max_held_jobs - room)
            return
        if self._station_tag is not None:
            ch.basic_cancel(self._station_tag)
            self._station_tag = None
        if not self.backlog_full:
            self.backlog_full = True
            log.info("backlog_near_bound", held=self.settings.max_held_jobs - room,
                     max_held_jobs=self.settings.max_held_jobs)
        while room > 0 and not self._stop.is_set() and self.intake.fault.why is None:
            method, props, body = ch.basic_get(self.settings.station_queue())
            if method is None:
                self._waiting(0)
                return
            self._waiting(method.message_count)
            self._on_station(ch, method, props, body)
            room = self._room()

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
        if self._room() <= 0:
            # More came than fit (a prefetch in flight when the bound was reached): it
            # waits at the broker. Only the switch to getting can lead here.
            ch.basic_reject(method.delivery_tag, requeue=True)
            return
        self._delivered = True
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
            while (not self._stop.is_set() and self._room() > 0
                   and self.can_take_pool_job(pool)):
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
