"""The agent core: wires the journal, intake, printer thread, job source and event sink.

Each resource has one owner: the journal object owns the SQLite file, the printer thread
owns the driver, the consumer owns the consuming AMQP connection and the publisher owns
the publishing one. They talk through the journal (jobs in, events out) and through
plain flags; no thread ever calls into another thread's pika connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from printstation.drivers.base import FAULT_ADVICE, PrinterDriver
from printstation.drivers.registry import open_driver

from . import __version__, contract
from .config import Settings
from .intake import ControlActions, Intake
from .journal import Journal
from .local_control import ControlError, Handler, LocalControlServer
from .printing import PrinterWorker
from .signing import Verifier

log = structlog.get_logger("printstation.agent")

CLOCK_JUMP_SECONDS = 120.0


@dataclass(frozen=True)
class StationState:
    state: str
    blocked_reason: str | None
    taking_jobs: bool
    not_taking_because: str | None


class Agent:
    def __init__(self, settings: Settings, *, driver: PrinterDriver | None = None,
                 verifier: Verifier | None = None):
        self.settings = settings
        self.journal = Journal(settings.state_dir, settings.station_id)
        self.verifier = verifier or Verifier.from_files(settings.trusted_keys,
                                                        enabled=settings.verify_signatures)
        self.driver = driver or open_driver(settings.printer_url, state_dir=settings.state_dir)
        self.intake = Intake(self.journal, self.verifier, ControlActions(
            pause=self.pause, resume=self.resume, telemetry=self.telemetry_now,
            cancel=self.cancel))
        self.printer = PrinterWorker(
            self.journal, self.driver, default_stock=settings.card_stock,
            max_attempts=settings.max_attempts, paused=self.paused,
            on_change=self.request_telemetry, handback_after=settings.handback_after)
        self.broker_up = {"consumer": False, "publisher": False}
        self.fatal: BaseException | None = None
        self.stopped = threading.Event()
        self._stopping = False
        self._telemetry_now = threading.Event()
        self._force_telemetry = True
        self._clock_offset = time.time() - time.monotonic()
        self._telemetry_thread = threading.Thread(target=self._telemetry_loop,
                                                  name="telemetry", daemon=True)
        self._components: list[object] = []
        self.control: LocalControlServer | None = None
        self._last_telemetry_key: tuple | None = None

    # ----------------------------------------------------------------------- lifecycle

    def start(self, *, embedded_sink: Callable[[dict], None] | None = None) -> None:
        """Start every thread; with `embedded_sink`, events go to it instead of RabbitMQ."""
        if not self.verifier.enabled:
            log.warning("signatures_not_verified",
                        detail="verify_signatures is off: for local demos only")
        self.recover()
        self.printer.start()
        self.control = LocalControlServer(self.settings.state_dir, self._control_handlers())
        self.control.start()
        if embedded_sink is None:
            from .consumer import AmqpSource
            from .publisher import AmqpPublisher

            publisher = AmqpPublisher(self.settings, self.journal,
                                      on_connected=lambda up: self._broker("publisher", up),
                                      on_fatal=self._fatal)
            source = AmqpSource(self.settings, self.journal, self.intake,
                                can_take_pool_job=self.can_take_pool_job,
                                on_connected=lambda up: self._broker("consumer", up),
                                on_fatal=self._fatal, after=self.printer.recovered)
            self._components = [publisher, source]
        else:
            from .embedded import EmbeddedSink

            self._components = [EmbeddedSink(self.journal, embedded_sink)]
        for c in self._components:
            c.start()  # type: ignore[attr-defined]
        self._telemetry_thread.start()
        self.request_telemetry()
        log.info("agent_started", station_id=self.settings.station_id, version=__version__,
                 printer_url=self.settings.printer_url.split("?")[0], pools=self.settings.pools)

    def stop(self) -> None:
        """Stop taking jobs, finish the card in the printer, publish what is stored, stop."""
        if self._stopping:
            return
        self._stopping = True
        log.info("agent_stopping")
        for c in reversed(self._components):
            if type(c).__name__ == "AmqpSource":
                c.stop()  # type: ignore[attr-defined]
        if self.control is not None:
            self.control.stop()
        self.printer.stop()
        self._emit_telemetry(force=True)
        self._telemetry_now.set()
        for c in reversed(self._components):
            if type(c).__name__ != "AmqpSource":
                c.stop()  # type: ignore[attr-defined]
        self._telemetry_thread.join(5)
        self.journal.close()
        self.stopped.set()
        log.info("agent_stopped")

    def _fatal(self, exc: BaseException) -> None:
        log.error("agent_fatal", error=str(exc))
        self.fatal = exc
        self.stopped.set()

    def _broker(self, owner: str, up: bool) -> None:
        if self.broker_up.get(owner) != up:
            self.broker_up[owner] = up
            self.request_telemetry()

    # ---------------------------------------------------------------------- reloading

    #: Settings a running agent takes on at SIGHUP; the rest need a restart.
    LIVE_SETTINGS = ("thresholds", "max_attempts", "handback_after", "telemetry_interval",
                     "log_level", "trusted_keys", "verify_signatures")

    def reload(self, new: Settings) -> tuple[list[str], list[str]]:
        """Take on changed settings that can change live; returns (applied, need restart).

        The caller has validated `new`; a trusted key that cannot be read rejects the whole
        reload (raising KeyFileError), so a typo never leaves the station without its keys.
        """
        old = self.settings
        changed = [k for k in type(new).model_fields if getattr(new, k) != getattr(old, k)]
        applied = [k for k in changed if k in self.LIVE_SETTINGS]
        restart = [k for k in changed if k not in self.LIVE_SETTINGS]
        if {"trusted_keys", "verify_signatures"} & set(applied):
            verifier = Verifier.from_files(new.trusted_keys, enabled=new.verify_signatures)
            self.verifier = self.intake.verifier = verifier
        live = {k: getattr(new, k) for k in applied}
        self.settings = old.model_copy(update=live)
        self.printer.max_attempts = self.settings.max_attempts
        self.printer.handback_after = self.settings.handback_after
        if "log_level" in applied:
            from . import logs

            logs.configure(self.settings.log_level)
        log.info("config_reloaded", applied=applied, need_restart=restart)
        self.request_telemetry()
        return applied, restart

    # ------------------------------------------------------------------------ recovery

    def recover(self) -> None:
        """Settle what the journal held when the agent last stopped, before taking jobs.

        Claims never confirmed are released; a hand-back whose publication was attempted is
        released without a second attempt (a second copy in the pool could be printed twice);
        pool jobs not started go back to the pool, as other stations may print them sooner.
        Jobs that were `printing` are settled by the printer thread, which asks the printer.
        """
        for row in self.journal.jobs_in("claiming"):
            self.journal.release(row.job_id, "claim_unconfirmed",
                                 "the agent stopped before the broker confirmed the claim")
        for row in self.journal.jobs_in("handback_sending"):
            self.journal.handback_done(row.job_id, confirmed=False)
        for row in self.journal.jobs_in("queued"):
            if row.source.startswith("pool:"):
                self.journal.hand_back(row.job_id, "the station restarted before printing it")
        log.info("recovered", held=self.journal.queued_count())

    # ------------------------------------------------------------------ operator actions

    def paused(self) -> bool:
        return self.journal.get_meta("paused", "0") == "1"

    def pause(self, who: str, why: str) -> None:
        self.journal.set_meta("paused", "1")
        self.journal.record_action(who, "pause", None, why)
        log.info("paused", by=who)
        self.request_telemetry()

    def resume(self, who: str, why: str) -> None:
        self.journal.set_meta("paused", "0")
        self.journal.record_action(who, "resume", None, why)
        self.journal.job_event.set()
        log.info("resumed", by=who)
        self.request_telemetry()

    def cancel(self, job_id: str, code: str, why: str) -> str:
        result = self.journal.cancel(job_id, code, why)
        self.journal.record_action(code.removeprefix("cancelled_by_"), "cancel", job_id, why)
        return result

    def hand_back(self, job_id: str, who: str, why: str) -> list[str]:
        """Give queued pool jobs back to their pool ("all", or one job); returns which."""
        rows = self.journal.jobs_in("queued") if job_id == "all" else \
            [r for r in [self.journal.get(job_id)] if r is not None]
        done = [r.job_id for r in rows if self.journal.hand_back(r.job_id, why)]
        for jid in done:
            self.journal.record_action(who, "hand-back", jid, why)
        return done

    def _control_handlers(self) -> dict[str, Handler]:
        def need(req: dict, key: str) -> str:
            value = req.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ControlError(f"{req['cmd']} needs {key}")
            return value.strip()[:500]

        def cancel(req: dict, who: str) -> dict:
            job_id, why = need(req, "job_id"), need(req, "why")
            self.journal.record_action(who, "cancel", job_id, why)
            result = self.journal.cancel(job_id, "cancelled_by_operator", f"{who}: {why}")
            if result != "cancelled":
                raise ControlError(f"job {job_id} is {result}; only a job not yet printing "
                                   "can be cancelled")
            return {"result": result}

        def resolve(req: dict, who: str) -> dict:
            job_id, why = need(req, "job_id"), need(req, "why")
            if not isinstance(req.get("printed"), bool):
                raise ControlError("resolve needs printed: true or false")
            try:
                result = self.journal.resolve(job_id, printed=req["printed"], who=who, why=why)
            except (LookupError, ValueError) as exc:
                raise ControlError(str(exc)) from None
            return {"result": result}

        def hand_back(req: dict, who: str) -> dict:
            done = self.hand_back(need(req, "job_id"), who, need(req, "why"))
            if not done:
                raise ControlError("no pool job waiting to print matched; only pool jobs not "
                                   "yet printing can be handed back")
            return {"handed_back": done}

        def pause(req: dict, who: str) -> dict:
            self.pause(who, req.get("why") or "operator")
            return {}

        def resume(req: dict, who: str) -> dict:
            self.resume(who, req.get("why") or "operator")
            return {}

        return {
            "status": lambda req, who: {"telemetry": self.telemetry()},
            "jobs": lambda req, who: {"jobs": self.journal.recent_jobs(
                int(req.get("limit", 50)))},
            "pause": pause, "resume": resume, "cancel": cancel, "resolve": resolve,
            "hand-back": hand_back,
        }

    # ------------------------------------------------------------------------- state

    def station_state(self) -> StationState:
        snap = self.printer.snapshot
        status = snap.status
        if self._stopping:
            return StationState("stopping", None, False, "the agent is stopping")
        if status.state == "offline":
            why = snap.error or "printer offline"
            return StationState("offline", why, False, f"printer offline: {why}")
        if status.faults:
            why = "; ".join(FAULT_ADVICE.get(f, f.value) for f in status.faults)
            return StationState("blocked", why, False, why)
        if self.paused():
            return StationState("paused", None, False, "paused by an operator")
        if snap.current_job is not None:
            return StationState("printing", None, True, None)
        return StationState("ready", None, True, None)

    def can_take_pool_job(self) -> bool:
        """Take a pool job only when this station could start it now (contract 7.3)."""
        return self.station_state().taking_jobs and self.journal.jobs_in("queued") == []

    # --------------------------------------------------------------------- telemetry

    def request_telemetry(self) -> None:
        """Something changed: publish telemetry if the state it reports changed."""
        self._telemetry_now.set()

    def telemetry_now(self) -> None:
        """Publish telemetry now, changed or not (control command `telemetry`)."""
        self._force_telemetry = True
        self._telemetry_now.set()

    def _check_clock(self) -> None:
        """A wall clock that jumps (a bad RTC battery, NTP after days offline) is reported.

        Nothing that keeps jobs apart depends on it: jobs print in arrival order, `seq`
        counts, and waits use the monotonic clock; only times in events and expiry do.
        """
        offset = time.time() - time.monotonic()
        jump = offset - self._clock_offset
        self._clock_offset = offset
        if abs(jump) > CLOCK_JUMP_SECONDS:
            log.warning("clock_jumped", seconds=round(jump))
            self.journal.emit({"schema": contract.ALERT_SCHEMA, "severity": "warning",
                               "condition": "clock_jumped",
                               "message": f"the PC's clock jumped {jump:+.0f} s; check its "
                                          "time settings"})

    def _telemetry_loop(self) -> None:
        while not self.stopped.is_set():
            self._telemetry_now.wait(self.settings.telemetry_interval)
            self._check_clock()
            if self._stopping:
                return
            forced = self._force_telemetry or not self._telemetry_now.is_set()
            self._force_telemetry = False
            self._telemetry_now.clear()
            try:
                self._emit_telemetry(force=forced)
            except Exception as exc:  # a closed journal at shutdown, or a bug: keep running
                log.error("telemetry_error", error=type(exc).__name__)
                time.sleep(0.5)

    def telemetry(self) -> dict:
        snap = self.printer.snapshot
        st = self.station_state()
        ident = snap.identity
        consumables = [
            {"kind": c.kind, "type": c.type, "capacity": c.capacity, "remaining": c.remaining,
             "unit": c.unit, "source": c.source}
            for c in snap.status.consumables
        ]
        left = [(c["remaining"], c["kind"]) for c in consumables if c["remaining"] is not None]
        cards_left, first_out = min(left) if left else (None, None)
        return {
            "schema": contract.TELEMETRY_SCHEMA,
            "agent_version": __version__,
            "state": st.state,
            "blocked_reason": st.blocked_reason,
            "taking_jobs": st.taking_jobs,
            "not_taking_jobs_because": st.not_taking_because,
            "signatures_verified": self.verifier.enabled,
            "printer": {
                "driver": ident.driver if ident else type(self.driver).__name__,
                "model": ident.model if ident else None,
                "serial": ident.serial if ident else None,
                "firmware": ident.firmware if ident else None,
                "state": snap.status.state,
                "faults": [f.value for f in snap.status.faults],
            },
            "consumables": consumables,
            "cards_left": cards_left,
            "first_to_run_out": first_out,
            "counters": self.journal.card_counts(),
            "queued_jobs": self.journal.queued_count(),
        }

    def _emit_telemetry(self, *, force: bool) -> None:
        event = self.telemetry()
        key = (event["state"], event["blocked_reason"], tuple(event["printer"]["faults"]),
               event["taking_jobs"])
        if force or key != self._last_telemetry_key:
            self._last_telemetry_key = key
            self.journal.emit(event)
