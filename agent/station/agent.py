"""The agent: wires the station's parts, starts them, reloads settings, stops them in order.

Each resource has one owner: the journal object owns the SQLite file, the printer thread
owns the driver, the consumer owns the consuming AMQP connection and the publisher owns
the publishing one. They talk through the journal (jobs in, events out) and through the
`Station`'s flags; no thread ever calls into another thread's pika connection. What the
station does between start and stop lives in its parts: `station` (state, operators'
and the central system's actions), `telemetry`, `actions`, `printing`, `intake`.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable

import structlog

from printstation.agent import __version__
from printstation.agent.config import ConfigError, Settings
from printstation.agent.signing import Verifier
from printstation.agent.station.actions import Commands, Context
from printstation.agent.station.alerts import AlertBook
from printstation.agent.station.components import Component
from printstation.agent.station.consumables import Consumables
from printstation.agent.station.intake import ControlActions, Intake, Policy
from printstation.agent.station.interpreter import shorten_switch_interval
from printstation.agent.station.journal import Journal
from printstation.agent.station.memory import tune_allocator
from printstation.agent.station.printing import PrinterWorker
from printstation.agent.station.recovery import recover
from printstation.agent.station.station import Station
from printstation.agent.station.telemetry import TelemetryLoop
from printstation.agent.station.view import StationView
from printstation.agent.surfaces.control_socket import LocalControlServer, SocketInUse
from printstation.agent.surfaces.systemd import Notifier, Watchdog
from printstation.drivers.base import PrinterDriver
from printstation.drivers.encoders import open_encoder
from printstation.drivers.registry import open_driver

log = structlog.get_logger("printstation.agent")

#: The printer loop comes round every second or so (a few more when a printer's replies
#: time out); this long without is a hang. Under systemd, its WatchdogSec sets the limit.
LOOP_STALL_LIMIT = 30.0
#: The longest one card may take in the printer before the loop counts as hung.
CARD_TIME_LIMIT = 600.0
#: Settings a running agent takes on at SIGHUP; the rest need a restart.
LIVE_SETTINGS = ("thresholds", "cleaning_interval", "max_attempts", "handback_after",
                 "telemetry_interval", "log_level", "trusted_keys", "verify_signatures",
                 "accept_contract_v1", "control_max_skew", "job_retention_days",
                 "event_retention_days")


def listen_problem(key: str, listen: str, exc: OSError) -> str:
    """Why `key`'s address `listen` cannot be had, in one line with what to do."""
    if exc.errno == errno.EADDRINUSE:
        return (f"config key {key}: {listen} is in use by another program (another "
                f"printstation agent on this PC?); give {key} a free port, or \"\" to switch "
                "it off")
    return f"config key {key}: cannot listen on {listen}: {exc.strerror or exc}"


def intake_policy(settings: Settings) -> Policy:
    return Policy(station_id=settings.station_id,
                  accept_contract_v1=settings.accept_contract_v1,
                  control_max_skew=settings.control_max_skew,
                  job_retention_days=settings.job_retention_days)


class Agent:
    def __init__(self, settings: Settings, *, driver: PrinterDriver | None = None,
                 verifier: Verifier | None = None):
        tune_allocator()  # before the threads that decode images exist
        shorten_switch_interval()  # light threads are not held 5 ms by image work
        self.journal = Journal(settings.state_dir, settings.station_id)
        verifier = verifier or Verifier.from_files(settings.trusted_keys,
                                                   enabled=settings.verify_signatures)
        self.driver = driver or open_driver(settings.printer_url, state_dir=settings.state_dir)
        # Owned by the printer thread with the printer: a chip is written between the
        # printer parking the card and printing it.
        encoder = open_encoder(settings.encoder_url) if settings.encoder_url else None
        consumables = Consumables(
            self.journal, ribbon_types=settings.ribbon_types, stocks=settings.stocks,
            uses_film=settings.uses_film, default_stock=settings.card_stock)
        intake = Intake(self.journal, verifier, None, intake_policy(settings))
        self.printer = PrinterWorker(
            self.journal, self.driver, consumables=consumables,
            max_attempts=settings.max_attempts, paused=lambda: self.station.printing_held(),
            on_change=lambda: self.station.changed(), handback_after=settings.handback_after,
            encoder=encoder)
        self.station = Station(settings, self.journal, self.printer, consumables, intake,
                               AlertBook(self.journal))
        intake.actions = ControlActions(
            pause=self.station.pause, resume=self.station.resume,
            telemetry=lambda: self.station.publish_telemetry(), cancel=self.station.cancel)
        self.notifier = Notifier()
        self.telemetry = TelemetryLoop(self.station, type(self.driver).__name__,
                                       on_round=lambda: self.notifier.status(self.status_line()))
        self.commands = Commands(Context(self.station, self.telemetry))
        self.view = StationView(self.station, self.telemetry, self.commands, self.health)
        self.watchdog = Watchdog(self.notifier, self.health)
        self.components: list[Component] = []
        self.control: LocalControlServer | None = None
        self.servers: list = []  # the operator page and metrics, on localhost
        self.fatal: BaseException | None = None
        self.stopped = threading.Event()

    @property
    def settings(self) -> Settings:
        return self.station.settings

    # ----------------------------------------------------------------------- lifecycle

    def start(self, *, embedded_sink: Callable[[dict], None] | None = None) -> None:
        """Start every part; with `embedded_sink`, events go to it instead of RabbitMQ.

        ConfigError, before any part starts, when the operator page's or the metrics'
        address (`_bind_http`) or the control socket (`_claim_control_socket`) cannot be had.
        """
        settings = self.settings
        servers = self._bind_http()
        self.control = self._claim_control_socket(servers)
        if not self.station.verifier.enabled:
            log.warning("signatures_not_verified",
                        detail="verify_signatures is off: for local demos only")
        if settings.accept_contract_v1:
            log.warning("contract_v1_accepted",
                        detail="accept_contract_v1 is on: jobs name no destination; switch "
                               "it off once the central system sends version 2")
        recover(self.journal)
        self.components = [self.printer, self.control, *self._broker_side(embedded_sink),
                           self.telemetry]
        for component in self.components:
            component.start()
        self._start_http(servers)
        self.station.changed()
        self.watchdog.start()
        self.notifier.send("READY=1", f"STATUS={self.status_line()}")
        log.info("agent_started", station_id=settings.station_id, version=__version__,
                 printer_url=settings.printer_url.split("?")[0], pools=settings.pools)

    def _broker_side(self, embedded_sink: Callable[[dict], None] | None) -> list[Component]:
        """The consumer and publisher on RabbitMQ, or the demo's in-process sink."""
        if embedded_sink is not None:
            from printstation.agent.broker.embedded import EmbeddedSink

            return [EmbeddedSink(self.journal, embedded_sink)]
        from printstation.agent.broker.consumer import AmqpSource
        from printstation.agent.broker.publisher import AmqpPublisher

        self.station.broker.used = True
        parts = [AmqpPublisher(self.settings, self.journal,
                               on_connected=lambda up: self._broker("publisher", up),
                               on_fatal=self._fatal),
                 AmqpSource(self.settings, self.journal, self.station.intake,
                            can_take_pool_job=self.station.can_take_pool_job,
                            on_connected=lambda up: self._broker("consumer", up),
                            on_fatal=self._fatal, after=self.printer.recovered,
                            on_waiting=self._waiting_at_broker)]
        for part, owner in zip(parts, ("publisher", "consumer"), strict=True):
            part.on_refused = lambda reason, owner=owner: self._broker_refused(owner, reason)
        return parts

    def _waiting_at_broker(self, count: int | None) -> None:
        self.station.broker.waiting_jobs = count

    def _bind_http(self) -> list:
        """The operator page and the metrics, bound (each on localhost unless configured
        otherwise) before anything starts.

        An address that cannot be had stops the start with a ConfigError naming the setting
        and the address: typically a second agent on the PC, with a state folder of its own
        (the journal's lock stops one on the same folder), given the same ports. It used to
        start without its page, saying so only in its log, while that address showed the
        other station's page. After this error `stop` releases the journal.
        """
        from printstation.agent.surfaces.metrics import MetricsServer
        from printstation.agent.surfaces.web import OperatorWeb

        bound: list = []
        for key, kind in (("web_listen", OperatorWeb), ("metrics_listen", MetricsServer)):
            listen = getattr(self.settings, key)
            if not listen:
                continue
            try:
                bound.append(kind(self.view, listen))
            except OSError as exc:
                for server in bound:
                    server.stop()
                raise ConfigError(listen_problem(key, listen, exc)) from None
        return bound

    def _claim_control_socket(self, servers: list) -> LocalControlServer:
        """The operators' control socket, bound before anything starts (with the ports).

        A socket another agent answers on stops the start with a ConfigError naming
        `control_socket`: two agents on one PC (instances of `printstation@.service`) each
        need a socket of their own, and taking over the other's would send its operators'
        commands here. The page and metrics already bound are released.
        """
        settings = self.settings
        path = settings.socket_path()
        control = LocalControlServer(path, self.commands.handlers(),
                                     group=settings.control_group)
        try:
            control.claim()
        except SocketInUse:
            problem = (f"{path} is answered by another program (another printstation agent "
                       "on this PC?); give control_socket a path of its own")
        except OSError as exc:
            problem = f"cannot use {path}: {exc.strerror or exc}"
        else:
            return control
        for server in servers:
            server.stop()
        raise ConfigError(f"config key control_socket: {problem}")

    def _start_http(self, servers: list) -> None:
        """Serve the bound pages; one that cannot start (its token file cannot be written)
        is logged and left out: printing goes on."""
        from printstation.agent.surfaces.web import OperatorWeb

        for server in servers:
            try:
                server.start()
            except OSError as exc:
                server.stop()
                log.error("http_unavailable", url=server.url, what=server.kind,
                          error=exc.strerror or str(exc))
                continue
            self.servers.append(server)
            self.components.append(server)
            if isinstance(server, OperatorWeb):
                self.commands.context.web_login = server.login_url

    def stop(self) -> None:
        """Stop taking jobs, finish the card in the printer, publish what is stored, stop."""
        if self.station.stopping:
            return
        self.station.stopping = True
        log.info("agent_stopping")
        self.notifier.send("STOPPING=1", "STATUS=stopping: finishing the card in the printer")
        self.watchdog.stop()
        for component in sorted(self.components, key=lambda c: c.stop_order):
            component.stop()
        self.journal.close()
        self.stopped.set()
        log.info("agent_stopped")

    def url(self, kind: str) -> str | None:
        """Where the operator page ("web") or the metrics ("metrics") are served."""
        return next((s.url for s in self.servers if s.kind == kind), None)

    def health(self) -> list[str]:
        """What is wrong with the loops that must keep moving; empty when all is well."""
        problems = []
        p = self.printer
        idle_limit = self.notifier.watchdog_seconds or LOOP_STALL_LIMIT
        stuck_after = CARD_TIME_LIMIT if p.snapshot.current_job else idle_limit
        still = time.monotonic() - p.heartbeat
        if p.alive() and still > stuck_after:
            problems.append(f"the printer thread has not moved for {still:.0f} s")
        for c in self.components:
            if not c.alive():
                problems.append(f"the {c.name} thread has stopped")
        if self.fatal is not None:
            problems.append(f"fatal: {self.fatal}")
        return problems

    def status_line(self) -> str:
        """The state in words, for `systemctl status` (STATUS=)."""
        st = self.station.state()
        line = st.state
        if st.blocked_reason:
            line += f": {st.blocked_reason}"
        elif self.printer.snapshot.current_job:
            line += f": {self.printer.snapshot.current_job}"
        line += f"; {self.journal.jobs.waiting()} waiting"
        if self.station.broker.refused:
            line += "; the broker refuses the login"
        elif self.station.broker.used and not self.station.broker.all_up:
            line += "; broker unreachable"
        return line

    def _fatal(self, exc: BaseException) -> None:
        log.error("agent_fatal", error=str(exc))
        self.fatal = exc
        self.stopped.set()

    def _broker(self, owner: str, up: bool) -> None:
        if self.station.broker.set(owner, up):
            self.station.changed()

    def _broker_refused(self, owner: str, reason: str) -> None:
        """The broker refused a login or right: the alert a person must act on (telemetry)."""
        if self.station.broker.refuse(owner, reason):
            self.station.changed()

    # ---------------------------------------------------------------------- reloading

    def reload(self, new: Settings) -> tuple[list[str], list[str]]:
        """Take on changed settings that can change live; returns (applied, need restart).

        The caller has validated `new`; a trusted key that cannot be read rejects the whole
        reload (raising KeyFileError), so a typo never leaves the station without its keys.
        """
        old = self.settings
        changed = [k for k in type(new).model_fields if getattr(new, k) != getattr(old, k)]
        applied = [k for k in changed if k in LIVE_SETTINGS]
        restart = [k for k in changed if k not in LIVE_SETTINGS]
        if {"trusted_keys", "verify_signatures"} & set(applied):
            verifier = Verifier.from_files(new.trusted_keys, enabled=new.verify_signatures)
            self.station.intake.verifier = verifier
        self.station.settings = settings = old.model_copy(
            update={k: getattr(new, k) for k in applied})
        self.printer.max_attempts = settings.max_attempts
        self.printer.handback_after = settings.handback_after
        self.station.intake.policy = intake_policy(settings)
        if "log_level" in applied:
            from printstation.agent.surfaces import logs

            logs.configure(settings.log_level)
        log.info("config_reloaded", applied=applied, need_restart=restart)
        self.station.changed()
        return applied, restart
