"""The embedded default: the agent core without RabbitMQ, for `printstation demo`.

Jobs are handed straight to intake (the same checks, journal and printer thread as in
production) and stored events are delivered to a callback instead of the broker, then
marked published exactly as the AMQP publisher would after a confirm.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable

import structlog

from printstation.agent.station.components import PUBLISHER, ThreadedComponent
from printstation.agent.station.intake import Decision, Delivery, Intake
from printstation.agent.station.journal import Journal

log = structlog.get_logger("printstation.embedded")


class EmbeddedSource:
    """Hands job bodies to intake as the station queue would."""

    def __init__(self, intake: Intake):
        self.intake = intake

    def submit(self, body: bytes, headers: dict, message_id: str | None = None) -> Decision:
        return self.intake.job(Delivery(body=body, headers=headers, message_id=message_id))


class EmbeddedSink(ThreadedComponent):
    """The demo's publisher: stored events go to a function in this process."""

    name = "embedded sink"
    stop_order = PUBLISHER
    thread_name = "embedded-sink"
    stop_timeout = 5.0

    def __init__(self, journal: Journal, deliver: Callable[[dict], None]):
        self.journal = journal
        self.deliver = deliver
        super().__init__()

    def _wake(self) -> None:
        self.journal.store.outbox_event.set()

    def _run(self) -> None:
        while True:
            self.journal.store.outbox_event.clear()
            with contextlib.suppress(sqlite3.Error):  # the printer thread syncs them then
                self.journal.store.sync_events()  # as the publisher does (`tx(durable=False)`)
            rows = self.journal.outbox.unpublished(200)
            for _seq, _rk, body in rows:
                try:
                    self.deliver(json.loads(body))
                except Exception as exc:
                    log.error("embedded_sink_error", error=type(exc).__name__)
            self.journal.outbox.mark_published([seq for seq, _, _ in rows])
            if not rows:
                if self._stop.is_set():
                    return
                self.journal.store.outbox_event.wait(0.5)
