"""The station as its parts see each other: settings, journal, printer, stock, intake, broker.

The agent wires these once (`Agent`); the operators' commands, the telemetry and the
surfaces' read-only view all work on this object, so none of them needs the agent. Its
state is computed by the pure functions of `state`; pausing, resuming and cancelling are
recorded in the journal with who and why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from printstation.agent.config import Settings
from printstation.agent.signing import Verifier
from printstation.agent.station import state
from printstation.agent.station.alerts import AlertBook
from printstation.agent.station.consumables import Consumables
from printstation.agent.station.intake import Intake
from printstation.agent.station.journal import JobState, Journal
from printstation.agent.station.printing import PrinterWorker
from printstation.drivers.base import FaultCode, PrinterStatus

log = structlog.get_logger("printstation.agent")


@dataclass
class BrokerLink:
    """Whether each broker connection is up, and since when the broker is away."""

    #: Events go to RabbitMQ (False for the demo's embedded sink): broker state matters.
    used: bool = False
    up: dict[str, bool] = field(default_factory=lambda: {"consumer": False, "publisher": False})
    down_since: float | None = field(default_factory=time.monotonic)
    #: Why the broker refuses a connection's login or rights, by owner, until it connects.
    refused: dict[str, str] = field(default_factory=dict)
    #: Jobs waiting in the station queue at the broker, as the consumer last counted them
    #: (None: not connected). Written by the consumer's thread only.
    waiting_jobs: int | None = None

    def set(self, owner: str, is_up: bool) -> bool:
        """Record a connection's state; True when it changed."""
        if is_up:
            self.refused.pop(owner, None)
        if self.up.get(owner) == is_up:
            return False
        self.up[owner] = is_up
        if all(self.up.values()):
            self.down_since = None
        elif self.down_since is None:
            self.down_since = time.monotonic()
        return True

    def refuse(self, owner: str, reason: str) -> bool:
        """Record that the broker refused this connection; True when that is news."""
        if self.refused.get(owner) == reason:
            return False
        self.refused[owner] = reason
        return True

    @property
    def all_up(self) -> bool:
        return all(self.up.values())


class Station:
    def __init__(self, settings: Settings, journal: Journal, printer: PrinterWorker,
                 consumables: Consumables, intake: Intake, alerts: AlertBook):
        self.settings = settings
        self.journal = journal
        self.printer = printer
        self.consumables = consumables
        self.intake = intake
        self.alerts = alerts
        self.broker = BrokerLink()
        self.stopping = False
        #: Set by the telemetry: something changed (publish if it shows), or publish now.
        self.changed: Callable[[], None] = lambda: None
        self.publish_telemetry: Callable[[], None] = lambda: None

    @property
    def verifier(self) -> Verifier:
        """The keys intake checks signatures with (replaced whole on reload)."""
        return self.intake.verifier

    # ------------------------------------------------------------------------- state

    def paused(self) -> bool:
        return self.journal.store.get_meta("paused", "0") == "1"

    def printing_held(self) -> bool:
        """No card starts while paused, or while the station cannot store what it is sent:
        its control queue is not read then, and a cancel must not wait behind a print."""
        return self.paused() or self.intake.fault.why is not None

    def journal_problem(self) -> str | None:
        fault = self.intake.fault
        return state.journal_problem(fault.why or self.journal.store.write_error,
                                     stuck=fault.stuck, state_dir=self.settings.state_dir)

    def advice(self, fault: FaultCode, status: PrinterStatus) -> str:
        return state.fault_advice(fault, ribbon_type=self.consumables.ribbon_type(status),
                                  feeder_stock=self.consumables.feeder_stock(status))

    def state(self) -> state.StationState:
        snap = self.printer.snapshot
        status = snap.status
        return state.station_state(
            stopping=self.stopping, journal=self.journal_problem(), status=status,
            printer_error=snap.error, advice=[self.advice(f, status) for f in status.faults],
            held_for_stock=snap.shortage, paused=self.paused(),
            short_for_a_card=self.consumables.shortage(
                status, self.consumables.card_use(status, None, 1)),
            current_job=snap.current_job)

    def can_take_pool_job(self, pool: str | None = None) -> bool:
        """Take a pool job only when this station could start it now (contract 7.3), and
        only from a pool whose stock (`pool_stocks`) is the one in the feeder."""
        wanted = self.settings.pool_stocks.get(pool) if pool else None
        if wanted is not None and wanted != self.consumables.feeder_stock(
                self.printer.snapshot.status):
            return False
        return (self.state().taking_jobs and not self.journal.jobs.any_queued()
                and not self.journal.armed.any())  # an armed job is one waiting, too

    # ----------------------------------------------------- what operators and central do

    def pause(self, who: str, why: str) -> None:
        self.journal.store.set_meta("paused", "1")
        self.journal.store.record_action(who, "pause", None, why)
        log.info("paused", by=who)
        self.changed()

    def resume(self, who: str, why: str) -> None:
        self.journal.store.set_meta("paused", "0")
        self.journal.store.record_action(who, "resume", None, why)
        self.printer.retry_refused()
        log.info("resumed", by=who)
        self.changed()

    def cancel(self, job_id: str, code: str, why: str,
               issued_at: datetime | None = None) -> str:
        """The central system's cancel (control command)."""
        result = self.journal.control.cancel(job_id, code, why, central=True,
                                             issued_at=issued_at)
        self.journal.store.record_action(code.removeprefix("cancelled_by_"), "cancel", job_id,
                                         why)
        return result

    def hand_back(self, job_id: str, who: str, why: str) -> list[str]:
        """Give queued pool jobs back to their pool ("all", or one job); returns which."""
        rows = self.journal.jobs.in_states(JobState.QUEUED) if job_id == "all" else \
            [r for r in [self.journal.jobs.get(job_id)] if r is not None]
        done = [r.job_id for r in rows if self.journal.handback.hand_back(r.job_id, why)]
        for jid in done:
            self.journal.store.record_action(who, "hand-back", jid, why)
        return done
