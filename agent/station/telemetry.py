"""Telemetry (contract 4c) and the alert conditions it carries (4d), on a thread of its own.

At start, on every change that shows in it, and at least every `telemetry_interval`, the
station's state is built as the contract's `TelemetryFields` and stored in the outbox; the
alert conditions that hold are handed to the `AlertBook`, which raises and clears each
once. The same thread prunes the journal hourly (contract 7.7) and reports a wall clock
that jumps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from printstation.agent import __version__, contract
from printstation.agent.i18n import _, ngettext
from printstation.agent.station import needscheck
from printstation.agent.station.alerts import Condition
from printstation.agent.station.components import TELEMETRY, ThreadedComponent
from printstation.agent.station.conditions import consumable_conditions, printer_conditions
from printstation.agent.station.consumables import Level
from printstation.agent.station.forecast import Forecast, forecast, use_per_card
from printstation.agent.station.ledger import balance
from printstation.agent.station.station import Station

log = structlog.get_logger("printstation.telemetry")

CLOCK_JUMP_SECONDS = 120.0
#: Shortest time between two telemetry computations.
TELEMETRY_MIN_SPACING = 0.5
#: Printing back to back, telemetry waits at most this long for the next card to start.
CARD_START_WAIT = 2.0
#: A broker away longer than this raises an alert (stored, so published when it is back).
BROKER_ALERT_AFTER = 60.0
#: A refused signature keeps its alert raised this long after the last one.
BAD_SIGNATURE_WINDOW = 600.0
#: How often ended jobs and old events are pruned (contract 7.7).
PRUNE_EVERY = 3600.0


class TelemetryLoop(ThreadedComponent):
    """The telemetry thread (a `Component`): builds, alerts, stores, prunes."""

    name = "telemetry"
    stop_order = TELEMETRY  # after the printer (its last card counted), before the publisher
    thread_name = "telemetry"
    stop_timeout = 5.0

    def __init__(self, station: Station, driver_name: str,
                 on_round: Callable[[], None] = lambda: None):
        super().__init__()
        self.station = station
        self.driver_name = driver_name
        self.on_round = on_round
        #: Set when something changed or telemetry is wanted now; the loop wakes on it.
        self._asked = threading.Event()
        self._force = True
        self._clock_offset = time.time() - time.monotonic()
        self._last_key: tuple | None = None
        self._last_at = 0.0
        self._next_prune = 0.0
        station.changed = self.request
        station.publish_telemetry = self.now

    # ------------------------------------------------------------------------ control

    def stop(self, timeout: float | None = None) -> None:
        """The last telemetry of this run (stopping), then the thread ends."""
        try:
            self.emit(force=True)
        except Exception as exc:  # a full disk: what is stored still goes out
            log.error("telemetry_not_stored", error=str(exc)[:200])
        super().stop(timeout)

    def _wake(self) -> None:
        self._asked.set()
        self.station.printer.card_started.set()  # a stop does not wait for a card

    def request(self) -> None:
        """Something changed: publish telemetry if the state it reports changed."""
        self._asked.set()

    def now(self) -> None:
        """Publish telemetry now, changed or not (control command `telemetry`)."""
        self._force = True
        self._asked.set()

    # ----------------------------------------------------------------------- building

    def build(self) -> tuple[contract.TelemetryFields, list[Level], Forecast]:
        """The telemetry event, with the levels and forecast it was built from."""
        s = self.station
        snap = s.printer.snapshot
        st = s.state()
        ident = snap.identity
        levels = s.consumables.levels(snap.status)
        fc = self.forecast(levels)
        consumables = []
        for lv in levels:
            out = fc.outlook.get(lv.kind)
            consumables.append(contract.Consumable(
                kind=lv.kind, type=lv.type, capacity=lv.capacity,  # type: ignore[arg-type]
                remaining=lv.remaining, unit=lv.unit, source=lv.source,  # type: ignore[arg-type]
                counted=lv.counted, read=lv.read, disagreement=lv.disagreement,
                cards_left=out.cards_left if out else None,
                runs_out_at=out.runs_out_at if out else None))
        cards = next((lv for lv in levels if lv.kind == "cards"), None)
        fields = contract.TelemetryFields(
            agent_version=__version__, state=st.state,  # type: ignore[arg-type]
            blocked_reason=st.blocked_reason, taking_jobs=st.taking_jobs,
            not_taking_jobs_because=st.not_taking_because,
            signatures_verified=s.verifier.enabled,
            contract_v1_accepted=s.settings.accept_contract_v1,
            printer=contract.PrinterInfo(
                driver=ident.driver if ident else self.driver_name,
                model=ident.model if ident else None,
                serial=ident.serial if ident else None,
                firmware=ident.firmware if ident else None,
                state=snap.status.state, faults=[f.value for f in snap.status.faults]),
            consumables=consumables, cards_left=fc.cards_left,
            first_to_run_out=fc.first_to_run_out, run_out_together=list(fc.run_out_together),
            runs_out_at=fc.runs_out_at,
            print_rate_per_hour=round(fc.rate_per_hour, 1) if fc.rate_per_hour else None,
            blanks=contract.Blanks(**balance(s.journal, cards)),
            maintenance=contract.Maintenance(**self.maintenance()),
            alerts=[contract.OpenAlert(**a) for a in s.alerts.open_alerts()],
            counters=contract.Counters(**s.journal.cards.counts()),
            queued_jobs=s.journal.jobs.waiting(), held_jobs=s.journal.jobs.held(),
            max_held_jobs=s.settings.max_held_jobs, waiting_jobs=s.broker.waiting_jobs)
        return fields, levels, fc

    def event(self) -> dict[str, Any]:
        """The telemetry as the surfaces show it (JSON-ready)."""
        return self.build()[0].model_dump(mode="json", by_alias=True)

    def forecast(self, levels: list[Level]) -> Forecast:
        s = self.station
        status = s.printer.snapshot.status
        recent = s.journal.cards.recent(50)
        two_sided = s.consumables.card_use(status, None, 2)
        use = use_per_card(recent, {"ribbon": two_sided.ribbon, "film": two_sided.film})
        times = [datetime.fromisoformat(r["at"]) for r in recent]
        return forecast({lv.kind: lv.remaining for lv in levels}, use, times, contract.now())

    def maintenance(self) -> dict[str, Any]:
        store = self.station.journal.store
        since = self.station.journal.cards.through_printer() - int(
            store.get_meta("cleaned_at_card", "0") or 0)
        interval = self.station.settings.cleaning_interval
        return {"cards_since_cleaning": since, "cleaning_interval": interval,
                "cleaning_due": bool(interval) and since >= interval,
                "last_cleaned": store.get_meta("cleaned_at")}

    def conditions(self, fields: contract.TelemetryFields, levels: list[Level],
                   fc: Forecast) -> list[Condition]:
        """Every alert condition that holds now, from a telemetry event just built."""
        s = self.station
        snap = s.printer.snapshot
        found = printer_conditions(snap.status, snap.error)
        if snap.status.state != "offline":
            found += consumable_conditions(levels, fc, s.settings.thresholds, s.alerts.active)
        found += [needscheck.condition(check)
                  for check in needscheck.open_checks(s.journal, snap.status)]
        if snap.shortage:
            found.append(Condition("stock_short", "critical",
                                   _("Not printing: {why}").format(why=snap.shortage)))
        m = fields.maintenance
        if m is not None and m.cleaning_due:
            found.append(Condition("cleaning_due", "warning", ngettext(
                "Cleaning due: {n} card since the last cleaning; clean the printer, then run "
                "`printstation clean`",
                "Cleaning due: {n} cards since the last cleaning; clean the printer, then run "
                "`printstation clean`", m.cards_since_cleaning).format(
                    n=m.cards_since_cleaning)))
        down = s.broker.down_since
        if s.broker.used and down is not None and time.monotonic() - down > BROKER_ALERT_AFTER:
            found.append(Condition("broker_unreachable", "warning", _(
                "the broker was unreachable for more than {seconds} s; statuses were kept and "
                "sent when it came back").format(seconds=f"{BROKER_ALERT_AFTER:.0f}")))
        if s.broker.refused:
            found.append(Condition("broker_login_refused", "critical", _(
                "Not connected: {why}").format(why=next(iter(s.broker.refused.values())))))
        journal = s.journal_problem()
        if journal:
            found.append(Condition("journal_unwritable", "critical",
                                   _("Not taking jobs: {why}").format(why=journal)))
        bad = s.intake.last_bad_signature
        if bad is not None and time.monotonic() - bad < BAD_SIGNATURE_WINDOW:
            found.append(Condition("bad_signature", "critical", _(
                "messages were refused: a bad or unknown signature, or a control command "
                "replayed, stale or for another station; check the station's trusted keys, "
                "its clock and the sender (the agent's log names each)")))
        return found

    def emit(self, *, force: bool) -> None:
        """Raise and clear alerts, and store the telemetry if it changed (or `force`)."""
        fields, levels, fc = self.build()
        if self.station.printer.snapshot.updated:  # not before the printer was first asked
            self.station.alerts.update(self.conditions(fields, levels, fc))
            fields = fields.model_copy(update={"alerts": [
                contract.OpenAlert(**a) for a in self.station.alerts.open_alerts()]})
        key = (fields.state, fields.blocked_reason, tuple(fields.printer.faults),
               fields.taking_jobs, fields.cards_left,
               tuple((c.kind, c.remaining, c.disagreement) for c in fields.consumables),
               tuple(a.condition + a.severity for a in fields.alerts),
               fields.counters.printed_total, fields.counters.spoiled_total)
        self.on_round()
        if force or key != self._last_key:
            self.station.journal.outbox.emit_now(fields)
            self._last_key = key
            self._last_at = time.monotonic()

    # --------------------------------------------------------------------------- loop

    def _run(self) -> None:
        settings = self.station.settings
        while not self._stop.is_set():
            self._asked.wait(settings.telemetry_interval)
            # Changes that come in a burst (a card every half second) are reported together,
            # at most once a second, so reporting never competes with printing.
            self._stop.wait(TELEMETRY_MIN_SPACING)
            self._between_cards_passed()
            self._check_clock()
            if self._stop.is_set() or self.station.stopping:
                return
            settings = self.station.settings  # reloaded settings take effect here
            # Woken by changes or not, a telemetry event goes out at least every interval.
            overdue = time.monotonic() - self._last_at >= settings.telemetry_interval
            forced = self._force or overdue or not self._asked.is_set()
            self._force = False
            self._asked.clear()
            try:
                self.emit(force=forced)
                self._prune()
            except Exception as exc:  # a closed journal at shutdown, or a bug: keep running
                log.error("telemetry_error", error=type(exc).__name__)
                self._stop.wait(0.5)

    def _between_cards_passed(self) -> None:
        """Printing back to back, wait for the next card to start (at most
        `CARD_START_WAIT`): a request comes from the printer thread between two cards, and
        half a second later, the spacing, is the next such stretch at 0.5 s a card, where
        building telemetry (milliseconds of journal reads under its lock, and the
        interpreter) held the next blank up every card (bench/utilisation.py)."""
        printer = self.station.printer
        if printer.idle.is_set():
            return
        printer.card_started.clear()
        if not printer.idle.is_set():
            printer.card_started.wait(CARD_START_WAIT)

    def _check_clock(self) -> None:
        """A wall clock that jumps (a bad RTC battery, NTP after days offline) is reported.

        Nothing that keeps jobs apart depends on it: jobs print in arrival order, `seq`
        counts, waits use the monotonic clock, and retention the central system's time;
        only times in events and expiry do.
        """
        offset = time.time() - time.monotonic()
        jump = offset - self._clock_offset
        self._clock_offset = offset
        if abs(jump) > CLOCK_JUMP_SECONDS:
            log.warning("clock_jumped", seconds=round(jump))
            self.station.journal.outbox.emit_now(contract.AlertFields(
                severity="warning", condition="clock_jumped",
                message=f"the PC's clock jumped {jump:+.0f} s; check its time settings"))

    def _prune(self) -> None:
        """Drop what the retention periods no longer need, at most once an hour."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY
        settings = self.station.settings
        counts = self.station.journal.retention.prune(
            job_days=settings.job_retention_days, event_days=settings.event_retention_days)
        if any(counts.values()):
            log.info("journal_pruned", **counts)
