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
from datetime import datetime

import structlog

from printstation.agent import __version__, contract
from printstation.agent.config import Settings
from printstation.agent.signing import Verifier
from printstation.agent.station.alerts import AlertBook, Condition
from printstation.agent.station.conditions import consumable_conditions, printer_conditions
from printstation.agent.station.consumables import Consumables, Level, LoadError
from printstation.agent.station.forecast import Forecast, forecast, use_per_card
from printstation.agent.station.intake import ControlActions, Intake, Policy
from printstation.agent.station.journal import Journal
from printstation.agent.station.memory import tune_allocator
from printstation.agent.station.printing import PrinterWorker
from printstation.agent.surfaces.control_socket import ControlError, Handler, LocalControlServer
from printstation.agent.surfaces.systemd import Notifier, Watchdog
from printstation.drivers.base import FAULT_ADVICE, FaultCode, PrinterDriver, PrinterStatus
from printstation.drivers.registry import open_driver

log = structlog.get_logger("printstation.agent")

CLOCK_JUMP_SECONDS = 120.0
#: Shortest time between two telemetry computations.
TELEMETRY_MIN_SPACING = 0.5
#: A broker away longer than this raises an alert (stored, so published when it is back).
BROKER_ALERT_AFTER = 60.0
#: A refused signature keeps its alert raised this long after the last one.
BAD_SIGNATURE_WINDOW = 600.0
#: The printer loop comes round every second or so (a few more when a printer's replies
#: time out); this long without is a hang. Under systemd, its WatchdogSec sets the limit.
LOOP_STALL_LIMIT = 30.0
#: The longest one card may take in the printer before the loop counts as hung.
CARD_TIME_LIMIT = 600.0


#: How often ended jobs and old events are pruned (contract 7.7).
PRUNE_EVERY = 3600.0


def intake_policy(settings: Settings) -> Policy:
    return Policy(station_id=settings.station_id,
                  accept_contract_v1=settings.accept_contract_v1,
                  control_max_skew=settings.control_max_skew,
                  job_retention_days=settings.job_retention_days)


@dataclass(frozen=True)
class StationState:
    state: str
    blocked_reason: str | None
    taking_jobs: bool
    not_taking_because: str | None


class Agent:
    def __init__(self, settings: Settings, *, driver: PrinterDriver | None = None,
                 verifier: Verifier | None = None):
        tune_allocator()  # before the threads that decode images exist
        self.settings = settings
        self.journal = Journal(settings.state_dir, settings.station_id)
        self.verifier = verifier or Verifier.from_files(settings.trusted_keys,
                                                        enabled=settings.verify_signatures)
        self.driver = driver or open_driver(settings.printer_url, state_dir=settings.state_dir)
        self.intake = Intake(self.journal, self.verifier, ControlActions(
            pause=self.pause, resume=self.resume, telemetry=self.telemetry_now,
            cancel=self.cancel), intake_policy(settings))
        self.consumables = Consumables(
            self.journal, ribbon_types=settings.ribbon_types, stocks=settings.stocks,
            uses_film=settings.uses_film, default_stock=settings.card_stock)
        self.alerts = AlertBook(self.journal)
        self.printer = PrinterWorker(
            self.journal, self.driver, consumables=self.consumables,
            max_attempts=settings.max_attempts, paused=self._printing_held,
            on_change=self.request_telemetry, handback_after=settings.handback_after)
        self.broker_up = {"consumer": False, "publisher": False}
        self._broker_down_since: float | None = time.monotonic()
        self.fatal: BaseException | None = None
        self.stopped = threading.Event()
        self._stopping = False
        self._telemetry_now = threading.Event()
        self._force_telemetry = True
        self._clock_offset = time.time() - time.monotonic()
        self._telemetry_thread = threading.Thread(target=self._telemetry_loop,
                                                  name="telemetry", daemon=True)
        self._components: list[object] = []
        #: Events go to RabbitMQ (False for the demo's embedded sink): broker state matters.
        self.uses_broker = False
        self.control: LocalControlServer | None = None
        self.notifier = Notifier()
        self.watchdog = Watchdog(self.notifier, self.health)
        self.servers: list = []  # the operator page and metrics, on localhost
        self._last_telemetry_key: tuple | None = None
        self._next_prune = 0.0
        self._last_telemetry_at = 0.0

    # ----------------------------------------------------------------------- lifecycle

    def start(self, *, embedded_sink: Callable[[dict], None] | None = None) -> None:
        """Start every thread; with `embedded_sink`, events go to it instead of RabbitMQ."""
        if not self.verifier.enabled:
            log.warning("signatures_not_verified",
                        detail="verify_signatures is off: for local demos only")
        if self.settings.accept_contract_v1:
            log.warning("contract_v1_accepted",
                        detail="accept_contract_v1 is on: jobs name no destination; switch "
                               "it off once the central system sends version 2")
        self.recover()
        self.printer.start()
        self.control = LocalControlServer(self.settings.socket_path(),
                                          self._control_handlers(),
                                          group=self.settings.control_group)
        self.control.start()
        if embedded_sink is None:
            from printstation.agent.broker.consumer import AmqpSource
            from printstation.agent.broker.publisher import AmqpPublisher

            publisher = AmqpPublisher(self.settings, self.journal,
                                      on_connected=lambda up: self._broker("publisher", up),
                                      on_fatal=self._fatal)
            source = AmqpSource(self.settings, self.journal, self.intake,
                                can_take_pool_job=self.can_take_pool_job,
                                on_connected=lambda up: self._broker("consumer", up),
                                on_fatal=self._fatal, after=self.printer.recovered)
            self._components = [publisher, source]
            self.uses_broker = True
        else:
            from printstation.agent.broker.embedded import EmbeddedSink

            self._components = [EmbeddedSink(self.journal, embedded_sink)]
        for c in self._components:
            c.start()  # type: ignore[attr-defined]
        self._telemetry_thread.start()
        self._start_http()
        self.request_telemetry()
        self.watchdog.start()
        self.notifier.send("READY=1", f"STATUS={self.status_line()}")
        log.info("agent_started", station_id=self.settings.station_id, version=__version__,
                 printer_url=self.settings.printer_url.split("?")[0], pools=self.settings.pools)

    def stop(self) -> None:
        """Stop taking jobs, finish the card in the printer, publish what is stored, stop."""
        if self._stopping:
            return
        self._stopping = True
        log.info("agent_stopping")
        self.notifier.send("STOPPING=1", "STATUS=stopping: finishing the card in the printer")
        self.watchdog.stop()
        for server in self.servers:
            server.stop()
        for c in reversed(self._components):
            if type(c).__name__ == "AmqpSource":
                c.stop()  # type: ignore[attr-defined]
        if self.control is not None:
            self.control.stop()
        self.printer.stop()
        try:
            self._emit_telemetry(force=True)
        except Exception as exc:  # a full disk: what is stored still goes out below
            log.error("telemetry_not_stored", error=str(exc)[:200])
        self._telemetry_now.set()
        for c in reversed(self._components):
            if type(c).__name__ != "AmqpSource":
                c.stop()  # type: ignore[attr-defined]
        self._telemetry_thread.join(5)
        self.journal.close()
        self.stopped.set()
        log.info("agent_stopped")

    def _start_http(self) -> None:
        """The operator page and the metrics, each on localhost unless configured otherwise."""
        from printstation.agent.surfaces.metrics import MetricsServer
        from printstation.agent.surfaces.web import OperatorWeb

        for listen, kind in ((self.settings.web_listen, OperatorWeb),
                             (self.settings.metrics_listen, MetricsServer)):
            if not listen:
                continue
            try:
                server = kind(self, listen)
                server.start()
                self.servers.append(server)
            except OSError as exc:  # a port in use must not stop printing
                log.error("http_unavailable", listen=listen, what=kind.__name__,
                          error=exc.strerror or str(exc))

    def url(self, kind: str) -> str | None:
        """Where the operator page ("web") or the metrics ("metrics") are served."""
        for server in self.servers:
            if server.kind == kind:
                return server.url
        return None

    def health(self) -> list[str]:
        """What is wrong with the loops that must keep moving; empty when all is well."""
        problems = []
        now = time.monotonic()
        p = self.printer
        idle_limit = self.notifier.watchdog_seconds or LOOP_STALL_LIMIT
        stuck_after = CARD_TIME_LIMIT if p.snapshot.current_job else idle_limit
        if not p.alive():
            problems.append("the printer thread has stopped")
        elif now - p.heartbeat > stuck_after:
            problems.append(f"the printer thread has not moved for {now - p.heartbeat:.0f} s")
        if not self._telemetry_thread.is_alive():
            problems.append("the telemetry thread has stopped")
        for c in self._components:
            if not c.alive():  # type: ignore[attr-defined]
                problems.append(f"the {type(c).__name__} thread has stopped")
        if self.fatal is not None:
            problems.append(f"fatal: {self.fatal}")
        return problems

    def status_line(self) -> str:
        """The state in words, for `systemctl status` (STATUS=)."""
        st = self.station_state()
        snap = self.printer.snapshot
        line = st.state
        if st.blocked_reason:
            line += f": {st.blocked_reason}"
        elif snap.current_job:
            line += f": {snap.current_job}"
        line += f"; {self.journal.jobs.waiting()} waiting"
        if self.uses_broker and not all(self.broker_up.values()):
            line += "; broker unreachable"
        return line

    def _fatal(self, exc: BaseException) -> None:
        log.error("agent_fatal", error=str(exc))
        self.fatal = exc
        self.stopped.set()

    def _broker(self, owner: str, up: bool) -> None:
        if self.broker_up.get(owner) != up:
            self.broker_up[owner] = up
            if all(self.broker_up.values()):
                self._broker_down_since = None
            elif self._broker_down_since is None:
                self._broker_down_since = time.monotonic()
            self.request_telemetry()

    # ---------------------------------------------------------------------- reloading

    #: Settings a running agent takes on at SIGHUP; the rest need a restart.
    LIVE_SETTINGS = ("thresholds", "cleaning_interval", "max_attempts", "handback_after",
                     "telemetry_interval", "log_level", "trusted_keys", "verify_signatures",
                     "accept_contract_v1", "control_max_skew", "job_retention_days",
                     "event_retention_days")

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
        self.intake.policy = intake_policy(self.settings)
        if "log_level" in applied:
            from printstation.agent.surfaces import logs

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
        for row in self.journal.jobs.in_states("claiming"):
            self.journal.jobs.release(row.job_id, "claim_unconfirmed",
                                 "the agent stopped before the broker confirmed the claim")
        for row in self.journal.jobs.in_states("handback_sending"):
            self.journal.handback.done(row.job_id, confirmed=False)
        for row in self.journal.jobs.in_states("queued"):
            if row.source.startswith("pool:"):
                self.journal.handback.hand_back(
                    row.job_id, "the station restarted before printing it")
        log.info("recovered", held=self.journal.jobs.waiting())

    # ------------------------------------------------------------------ operator actions

    def paused(self) -> bool:
        return self.journal.store.get_meta("paused", "0") == "1"

    def _printing_held(self) -> bool:
        """No card starts while paused, or while the station cannot store what it is sent:
        its control queue is not read then, and a cancel must not wait behind a print."""
        return self.paused() or self.intake.fault.why is not None

    def pause(self, who: str, why: str) -> None:
        self.journal.store.set_meta("paused", "1")
        self.journal.store.record_action(who, "pause", None, why)
        log.info("paused", by=who)
        self.request_telemetry()

    def resume(self, who: str, why: str) -> None:
        self.journal.store.set_meta("paused", "0")
        self.journal.store.record_action(who, "resume", None, why)
        self.printer.retry_refused()
        log.info("resumed", by=who)
        self.request_telemetry()

    def cancel(self, job_id: str, code: str, why: str,
               issued_at: datetime | None = None) -> str:
        """The central system's cancel (control command)."""
        result = self.journal.control.cancel(job_id, code, why, central=True, issued_at=issued_at)
        self.journal.store.record_action(code.removeprefix("cancelled_by_"), "cancel", job_id, why)
        return result

    def hand_back(self, job_id: str, who: str, why: str) -> list[str]:
        """Give queued pool jobs back to their pool ("all", or one job); returns which."""
        rows = self.journal.jobs.in_states("queued") if job_id == "all" else \
            [r for r in [self.journal.jobs.get(job_id)] if r is not None]
        done = [r.job_id for r in rows if self.journal.handback.hand_back(r.job_id, why)]
        for jid in done:
            self.journal.store.record_action(who, "hand-back", jid, why)
        return done

    def _control_handlers(self) -> dict[str, Handler]:
        def need(req: dict, key: str) -> str:
            value = req.get(key)
            if not isinstance(value, str) or not value.strip():
                raise ControlError(f"{req['cmd']} needs {key}")
            return value.strip()[:500]

        def cancel(req: dict, who: str) -> dict:
            job_id, why = need(req, "job_id"), need(req, "why")
            result = self.journal.control.cancel(job_id, "cancelled_by_operator", f"{who}: {why}")
            if result != "cancelled":
                state = {"claiming": "being taken from its pool",
                         "handback_sending": "on its way back to the central system",
                         "needs_check": "needs_check (say what came out with resolve)",
                         }.get(result, result)
                raise ControlError(f"job {job_id} is {state}; only a job not yet printing "
                                   "can be cancelled")
            self.journal.store.record_action(who, "cancel", job_id, why)
            return {"result": result}

        def resolve(req: dict, who: str) -> dict:
            job_id, why = need(req, "job_id"), need(req, "why")
            if not isinstance(req.get("printed"), bool):
                raise ControlError("resolve needs printed: true or false")
            try:
                result = self.journal.progress.resolve(job_id, printed=req["printed"], who=who,
                                                       why=why)
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

        def load(req: dict, who: str) -> dict:
            kind = need(req, "kind")
            numbers = {}
            for key in ("capacity", "count"):
                value = req.get(key)
                if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                          or value < 0):
                    raise ControlError(f"load: {key} must be a whole number, 0 or more")
                numbers[key] = value
            type_ = req.get("type")
            if type_ is not None and (not isinstance(type_, str) or not type_.strip()
                                      or len(type_) > 64):
                raise ControlError("load: type must be a short name such as YMCKO or ektp")
            try:
                counted = self.consumables.load(kind, type_=type_, capacity=numbers["capacity"],
                                                count=numbers["count"], who=who)
            except LoadError as exc:
                raise ControlError(str(exc)) from None
            self.journal.store.record_action(who, f"load-{kind}", type_, req.get("why") or
                                       f"{counted.remaining} {counted.unit}")
            self.printer.retry_refused()  # a job held for stock (or refused) may start now
            self.request_telemetry()
            return {"loaded": {"kind": kind, "type": counted.type,
                               "capacity": counted.capacity, "remaining": counted.remaining,
                               "unit": counted.unit}}

        def stock(req: dict, who: str) -> dict:
            t = self.telemetry()
            return {k: t[k] for k in ("consumables", "cards_left", "first_to_run_out",
                                      "runs_out_at", "print_rate_per_hour", "blanks",
                                      "maintenance", "state", "blocked_reason")}

        def clean(req: dict, who: str) -> dict:
            drawn = self.journal.cards.drawn()
            self.journal.store.set_meta("cleaned_at_card", str(drawn))
            self.journal.store.set_meta("cleaned_at", contract.now().isoformat())
            self.journal.store.record_action(who, "clean", None, req.get("why") or "cleaning done")
            self.request_telemetry()
            return {"maintenance": self.maintenance()}

        def ledger(req: dict, who: str) -> dict:
            from printstation.agent.station.ledger import daily_report, explain

            levels = self.consumables.levels(self.printer.snapshot.status)
            b = self.blanks(levels)
            day = req.get("day") or contract.now().date().isoformat()
            if not isinstance(day, str) or len(day) != 10:
                raise ControlError("ledger: day must be YYYY-MM-DD")
            return {"days": self.journal.cards.ledger_days(), "balance": b, "check": explain(b),
                    "loads": self.journal.cards.loads(), "report": daily_report(
                        self.journal, day, b, self.settings.station_id)}

        def web_login(req: dict, who: str) -> dict:
            server = next((s for s in self.servers if s.kind == "web"), None)
            if server is None:
                raise ControlError("the operator page is not served: web_listen is empty, or "
                                   "its port was taken at start (see the agent's log)")
            self.journal.store.record_action(who, "web-login", None, "printstation web")
            return {"url": server.login_url()}

        def test_print(req: dict, who: str) -> dict:
            self.journal.store.record_action(who, "test-print", None, req.get("why") or "test card")
            self.printer.request_test_card(who)
            return {"queued": True}

        return {
            "test-print": test_print,
            "load": load, "stock": stock, "clean": clean, "ledger": ledger,
            "status": lambda req, who: {"telemetry": self.telemetry()},
            "jobs": lambda req, who: {"jobs": self.journal.jobs.recent(
                int(req.get("limit", 50)))},
            "pause": pause, "resume": resume, "cancel": cancel, "resolve": resolve,
            "hand-back": hand_back, "web-login": web_login,
        }

    # ------------------------------------------------------------------------- state

    def station_state(self) -> StationState:
        snap = self.printer.snapshot
        status = snap.status
        if self._stopping:
            return StationState("stopping", None, False, "the agent is stopping")
        journal = self.journal_problem()
        if journal:
            return StationState("blocked", journal, False, journal)
        if status.state == "offline":
            why = snap.error or "printer offline"
            return StationState("offline", why, False, f"printer offline: {why}")
        if status.faults:
            why = "; ".join(self._advice(f, status) for f in status.faults)
            return StationState("blocked", why, False, why)
        if snap.shortage:
            return StationState("blocked", snap.shortage, False, snap.shortage)
        if self.paused():
            return StationState("paused", None, False, "paused by an operator")
        short = self.consumables.shortage(status, self.consumables.card_use(
            status, None, 1))
        if short:
            return StationState("blocked", short, False, short)
        if snap.current_job is not None:
            return StationState("printing", None, True, None)
        return StationState("ready", None, True, None)

    def journal_problem(self) -> str | None:
        """Why the station cannot store (a full disk): nothing is taken or printed then."""
        fault = self.intake.fault
        why = fault.why or self.journal.store.write_error
        if why is None:
            return None
        where = self.settings.state_dir
        if fault.stuck:
            return (f"the journal cannot be written ({why}) and the station stopped taking "
                    f"jobs: restart the agent; if it happens again, call a technician "
                    f"(the journal in {where} may be damaged)")
        if "full" in why:
            return (f"the journal cannot be written ({why}): free space on the disk of "
                    f"{where}; jobs wait in the broker meanwhile")
        return (f"the journal cannot be written ({why}): the station takes no jobs until "
                f"it can; if this lasts, restart the agent and check the disk of {where}")

    def _advice(self, fault: FaultCode, status: PrinterStatus) -> str:
        """What the operator should do, naming the ribbon or blanks to load where known."""
        if fault == FaultCode.RIBBON_OUT:
            return (f"Ribbon out: load a new {self.consumables.ribbon_type(status)} ribbon; "
                    "printing goes on by itself")
        if fault == FaultCode.FEEDER_EMPTY:
            return (f"Feeder empty: load {self.consumables.feeder_stock(status)} blanks and "
                    "record them with Load cards")
        return FAULT_ADVICE.get(fault, fault.value)

    def can_take_pool_job(self, pool: str | None = None) -> bool:
        """Take a pool job only when this station could start it now (contract 7.3), and
        only from a pool whose stock (`pool_stocks`) is the one in the feeder."""
        wanted = self.settings.pool_stocks.get(pool) if pool else None
        if wanted is not None and wanted != self.consumables.feeder_stock(
                self.printer.snapshot.status):
            return False
        return self.station_state().taking_jobs and not self.journal.jobs.any_queued()

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
            self.journal.outbox.emit_now(contract.AlertFields(
                severity="warning", condition="clock_jumped",
                message=f"the PC's clock jumped {jump:+.0f} s; check its time settings"))

    def prune(self) -> None:
        """Drop what the retention periods no longer need, at most once an hour."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY
        counts = self.journal.retention.prune(job_days=self.settings.job_retention_days,
                                    event_days=self.settings.event_retention_days)
        if any(counts.values()):
            log.info("journal_pruned", **counts)

    def _telemetry_loop(self) -> None:
        while not self.stopped.is_set():
            self._telemetry_now.wait(self.settings.telemetry_interval)
            # Changes that come in a burst (a card every half second) are reported together,
            # at most once a second, so reporting never competes with printing.
            self.stopped.wait(TELEMETRY_MIN_SPACING)
            self._check_clock()
            if self._stopping:
                return
            # Woken by changes or not, a telemetry event goes out at least every interval.
            overdue = time.monotonic() - self._last_telemetry_at >= \
                self.settings.telemetry_interval
            forced = self._force_telemetry or overdue or not self._telemetry_now.is_set()
            self._force_telemetry = False
            self._telemetry_now.clear()
            try:
                self._emit_telemetry(force=forced)
                self.prune()
            except Exception as exc:  # a closed journal at shutdown, or a bug: keep running
                log.error("telemetry_error", error=type(exc).__name__)
                time.sleep(0.5)

    def forecast(self, levels: list[Level]) -> Forecast:
        status = self.printer.snapshot.status
        recent = self.journal.cards.recent(50)
        two_sided = self.consumables.card_use(status, None, 2)
        use = use_per_card(recent, {"ribbon": two_sided.ribbon, "film": two_sided.film})
        times = [datetime.fromisoformat(r["at"]) for r in recent]
        return forecast({lv.kind: lv.remaining for lv in levels}, use, times, contract.now())

    def maintenance(self) -> dict:
        drawn = self.journal.cards.drawn()
        since = drawn - int(self.journal.store.get_meta("cleaned_at_card", "0") or 0)
        interval = self.settings.cleaning_interval
        return {"cards_since_cleaning": since, "cleaning_interval": interval,
                "cleaning_due": bool(interval) and since >= interval,
                "last_cleaned": self.journal.store.get_meta("cleaned_at")}

    def blanks(self, levels: list[Level]) -> dict:
        """Blanks given to this station and where each one is (contract 4b)."""
        from printstation.agent.station.ledger import balance

        cards = next((lv for lv in levels if lv.kind == "cards"), None)
        return balance(self.journal, cards)

    def telemetry(self) -> dict:
        return self._telemetry()[0]

    def _telemetry(self) -> tuple[dict, list[Level], Forecast]:
        """The telemetry event, with the levels and forecast it was built from."""
        snap = self.printer.snapshot
        st = self.station_state()
        ident = snap.identity
        levels = self.consumables.levels(snap.status)
        fc = self.forecast(levels)
        consumables = []
        for lv in levels:
            out = fc.outlook.get(lv.kind)
            consumables.append({
                "kind": lv.kind, "type": lv.type, "capacity": lv.capacity,
                "remaining": lv.remaining, "unit": lv.unit, "source": lv.source,
                "counted": lv.counted, "read": lv.read, "disagreement": lv.disagreement,
                "cards_left": out.cards_left if out else None,
                "runs_out_at": out.runs_out_at.isoformat() if out and out.runs_out_at
                else None,
            })
        event = {
            "schema": contract.TELEMETRY_SCHEMA,
            "agent_version": __version__,
            "state": st.state,
            "blocked_reason": st.blocked_reason,
            "taking_jobs": st.taking_jobs,
            "not_taking_jobs_because": st.not_taking_because,
            "signatures_verified": self.verifier.enabled,
            "contract_v1_accepted": self.settings.accept_contract_v1,
            "printer": {
                "driver": ident.driver if ident else type(self.driver).__name__,
                "model": ident.model if ident else None,
                "serial": ident.serial if ident else None,
                "firmware": ident.firmware if ident else None,
                "state": snap.status.state,
                "faults": [f.value for f in snap.status.faults],
            },
            "consumables": consumables,
            "cards_left": fc.cards_left,
            "first_to_run_out": fc.first_to_run_out,
            "runs_out_at": fc.runs_out_at.isoformat() if fc.runs_out_at else None,
            "print_rate_per_hour": round(fc.rate_per_hour, 1) if fc.rate_per_hour else None,
            "blanks": self.blanks(levels),
            "maintenance": self.maintenance(),
            "alerts": self.alerts.open_alerts(),
            "counters": self.journal.cards.counts(),
            "queued_jobs": self.journal.jobs.waiting(),
        }
        return event, levels, fc

    def conditions(self, event: dict, levels: list[Level], fc: Forecast) -> list[Condition]:
        """Every alert condition that holds now, from a telemetry event just built."""
        snap = self.printer.snapshot
        found = printer_conditions(snap.status, snap.error)
        if snap.status.state != "offline":
            found += consumable_conditions(levels, fc, self.settings.thresholds,
                                           self.alerts.active)
        if snap.shortage:
            found.append(Condition("stock_short", "critical", f"Not printing: {snap.shortage}"))
        m = event["maintenance"]
        if m["cleaning_due"]:
            found.append(Condition("cleaning_due", "warning",
                                   f"Cleaning due: {m['cards_since_cleaning']} cards since the "
                                   "last cleaning; clean the printer, then run "
                                   "`printstation clean`"))
        down = self._broker_down_since
        if self.uses_broker and down is not None and \
                time.monotonic() - down > BROKER_ALERT_AFTER:
            found.append(Condition("broker_unreachable", "warning",
                                   f"the broker was unreachable for more than "
                                   f"{BROKER_ALERT_AFTER:.0f} s; statuses were kept and sent "
                                   "when it came back"))
        journal = self.journal_problem()
        if journal:
            found.append(Condition("journal_unwritable", "critical", f"Not taking jobs: {journal}"))
        bad = self.intake.last_bad_signature
        if bad is not None and time.monotonic() - bad < BAD_SIGNATURE_WINDOW:
            found.append(Condition("bad_signature", "critical",
                                   "messages were refused: a bad or unknown signature, or a "
                                   "control command replayed, stale or for another station; "
                                   "check the station's trusted keys, its clock and the "
                                   "sender (the agent's log names each)"))
        return found

    def _emit_telemetry(self, *, force: bool) -> None:
        event, levels, fc = self._telemetry()
        if self.printer.snapshot.updated:  # not before the printer was first asked
            self.alerts.update(self.conditions(event, levels, fc))
            event["alerts"] = self.alerts.open_alerts()
        key = (event["state"], event["blocked_reason"], tuple(event["printer"]["faults"]),
               event["taking_jobs"], event["cards_left"],
               tuple((c["kind"], c["remaining"], c["disagreement"])
                     for c in event["consumables"]),
               tuple(a["condition"] + a["severity"] for a in event["alerts"]),
               event["counters"]["printed_total"], event["counters"]["spoiled_total"])
        self.notifier.status(self.status_line())
        if force or key != self._last_telemetry_key:
            self.journal.outbox.emit_now(contract.TelemetryFields.model_validate(event))
            self._last_telemetry_key = key
            self._last_telemetry_at = time.monotonic()
