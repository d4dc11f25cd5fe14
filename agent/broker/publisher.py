"""The outbox publisher: the one owner of the publishing AMQP connection.

It publishes stored events in `seq` order with publisher confirms and `mandatory`, and
marks each published only once the broker confirmed it, so an event is sent at least
once and never lost. A status, card or alert event no queue is bound for (the broker
returns it) is kept in the dead-letter exchange with its routing key in a header instead
of vanishing; unroutable telemetry is dropped, as the next one supersedes it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable

import pika
import pika.exceptions
import structlog

from printstation.agent.broker.session import BrokerThread
from printstation.agent.config import Settings
from printstation.agent.config.nodes import split_nodes
from printstation.agent.station.components import PUBLISHER
from printstation.agent.station.journal import Journal

#: Longest wait in pika's I/O loop when there is nothing to publish; a stored event or
#: stop() wakes it at once.
IDLE_WAIT = 5.0

log = structlog.get_logger("printstation.publisher")


def broker_user(url: str) -> str | None:
    """The user a broker URL logs in as (pika's default, guest, when it names none)."""
    # Every node of a cluster names the same user (config.nodes): the first speaks for all.
    credentials = pika.URLParameters((split_nodes(url) or [url])[0]).credentials
    return credentials.username if isinstance(credentials, pika.PlainCredentials) else None


class AmqpPublisher(BrokerThread):
    name = "publisher"
    stop_order = PUBLISHER  # last: what is stored goes out
    thread_name = "publisher"

    def __init__(self, settings: Settings, journal: Journal, *,
                 on_connected: Callable[[bool], None],
                 on_fatal: Callable[[BaseException], None]):
        super().__init__(settings, on_connected=on_connected, on_fatal=on_fatal)
        self.journal = journal
        self.published = 0
        #: Hand-backs published (confirmed or not) whose outcome is not recorded yet.
        self._handed: list[tuple[str, bool]] = []
        #: The last `_make_durable` could not sync the journal.
        self._sync_failed = False

    def _wake(self) -> None:
        self.journal.store.outbox_event.set()

    def _session(self) -> None:
        conn = self._connect()

        def waker() -> None:  # called from other threads when an event is stored
            with contextlib.suppress(Exception):
                conn.add_callback_threadsafe(lambda: None)

        try:
            ch = conn.channel()
            ch.confirm_delivery()
            self.on_connected(True)
            log.info("publisher_connected")
            self.journal.store.outbox_event.add_waker(waker)
            while not self._stop.is_set():
                self._hand_back(ch)
                self._make_durable()
                if not self._drain(ch):
                    self.journal.store.outbox_event.clear()
                    if not (self._sync_due() or self.journal.outbox.unpublished(1)):
                        while not (self.journal.store.outbox_event.is_set() or self._stop.is_set()):
                            conn.process_data_events(time_limit=IDLE_WAIT)
            self._drain(ch)
        finally:
            self.journal.store.outbox_event.remove_waker(waker)
            if conn.is_open:
                conn.close()

    def _make_durable(self) -> None:
        """Sync events committed without an fsync (a card's outcome, between two cards), so
        that they go out now: left to the printer thread, a card's `printed` waited for
        the next card's start, and that for the next card's images to be decoded. A
        journal that cannot be synced (a failing disk) is tried again on the next wake,
        not in a loop; the printer thread reports it."""
        try:
            self.journal.store.sync_events()
            self._sync_failed = False
        except sqlite3.Error as exc:
            if not self._sync_failed:
                log.warning("journal_sync_failed", error=str(exc)[:200])
            self._sync_failed = True

    def _sync_due(self) -> bool:
        """Events wait for `_make_durable` (committed after it looked), unless it failed."""
        return not self._sync_failed and self.journal.store.unsynced_events()

    def _hand_back(self, ch: pika.adapters.blocking_connection.BlockingChannel) -> None:
        """Publish pool jobs handed back to the central system on `printstation.handback`,
        each at most once, before reporting them released.

        The attempt is journaled first: if the agent dies before the broker's confirm, the
        job is reported released without a second copy (the central system re-sends it),
        because two copies in a pool could be printed by two stations.
        """
        self._record_handbacks()
        for job_id, rk, body, headers in self.journal.handback.pending():
            if not self.journal.handback.sending(job_id):
                continue  # cancelled meanwhile
            # `user_id` names this station's broker user, which the broker verifies: the
            # central system can tell who handed a job back (central.HandbackRelay).
            props = pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                         message_id=job_id, headers=headers,
                                         user_id=broker_user(self.settings.broker_url))
            try:
                # To the central system, never to the pool itself (contract 7.1, v2): a
                # station needs no write on the job exchange.
                ch.basic_publish(self.settings.names.handback_exchange, rk, body, props,
                                 mandatory=True)
            except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
                self._handed.append((job_id, False))
                self._record_handbacks()
                continue
            except Exception:
                self._handed.append((job_id, False))
                with contextlib.suppress(Exception):
                    self._record_handbacks()
                raise
            self._handed.append((job_id, True))
            log.info("pool_job_handed_back", job_id=job_id, routing_key=rk)
            self._record_handbacks()

    def _record_handbacks(self) -> None:
        """Report what became of each hand-back; one the journal cannot record yet (a full
        disk) is kept here and recorded on the next round, as it was (confirmed or not),
        not left for a restart to report it unconfirmed."""
        while self._handed:
            job_id, confirmed = self._handed[0]
            self.journal.handback.done(job_id, confirmed=confirmed)
            self._handed.pop(0)

    def _drain(self, ch: pika.adapters.blocking_connection.BlockingChannel) -> int:
        """Publish one batch of the backlog; returns how many were published."""
        rows = self.journal.outbox.unpublished(200)
        done: list[int] = []
        try:
            for seq, rk, body in rows:
                props = pika.BasicProperties(
                    content_type="application/json", delivery_mode=2,
                    message_id=f"{self.settings.station_id}:{seq}")
                try:
                    ch.basic_publish(self.settings.names.event_exchange, rk, body, props,
                                     mandatory=True)
                except pika.exceptions.UnroutableError:
                    if rk.startswith("telemetry."):
                        # Superseded by the next one within 30 s: not worth keeping.
                        log.debug("telemetry_unroutable", seq=seq)
                        done.append(seq)
                        continue
                    log.warning("event_unroutable_kept_in_dead_letter", seq=seq, routing_key=rk)
                    keep = pika.BasicProperties(
                        content_type="application/json", delivery_mode=2,
                        message_id=props.message_id,
                        headers={"x-unroutable-exchange": self.settings.names.event_exchange,
                                 "x-unroutable-routing-key": rk})
                    ch.basic_publish(self.settings.names.dead_exchange, rk, body, keep)
                done.append(seq)
        finally:
            self.journal.outbox.mark_published(done)
            self.published += len(done)
        return len(done)
