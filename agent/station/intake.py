"""Deciding what to do with one inbound message, whatever carried it (RabbitMQ or the demo).

The transport hands over the body bytes and headers; intake checks size, signature,
JSON, schema, the contract's rules and where the message was signed for, stores what it
takes in the journal, and answers with what the transport must do with the delivery. It
never raises on a message and never puts a body, or any part of one but its job_id, into
a log line or a reason.

Two kinds of failure are kept apart. A message that is unusable is dead-lettered with a
`rejected` status (contract 6). A message the station cannot store for a reason of its
own (a full disk, a journal error) is not the message's fault: it goes back to the queue,
and the station takes nothing more until it can store again (`storefault.StationFault`).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import structlog
from pydantic import BaseModel, ValidationError

from printstation.agent import contract
from printstation.agent.signing import SignatureError, Verifier
from printstation.agent.station import failpoints
from printstation.agent.station.journal import Journal, Taken
from printstation.agent.station.storefault import StationFault
from printstation.drivers.errors import PrintstationError

log = structlog.get_logger("printstation.intake")

Action = Literal["ack", "reject", "claim", "requeue"]


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    source: str = "station"
    redelivered: bool = False

    @property
    def from_pool(self) -> bool:
        return self.source.startswith("pool:")

    @property
    def seen_before(self) -> bool:
        count = self.headers.get("x-delivery-count")
        return self.redelivered or (isinstance(count, int) and count > 0)

    def arrived_on(self, station_id: str) -> str:
        """The routing key of the queue this came from: what a job's destination must be."""
        if self.from_pool:
            return f"pool.{self.source.removeprefix('pool:')}"
        return f"station.{station_id}"


@dataclass(frozen=True)
class Decision:
    """What the transport does: ack, dead-letter (reject), claim in a transaction, or
    return the message to its queue (requeue: the station could not store it)."""

    action: Action
    job_id: str | None = None
    why: str = ""


@dataclass
class ControlActions:
    """What the agent core does for control commands; set by the core."""

    pause: Callable[[str, str], None]
    resume: Callable[[str, str], None]
    telemetry: Callable[[], None]
    #: (job_id, reason code, why, issued_at or None) -> what became of the job
    cancel: Callable[[str, str, str, datetime | None], str]


@dataclass(frozen=True)
class Policy:
    """The settings intake applies; replaced whole when the configuration is reloaded."""

    station_id: str
    accept_contract_v1: bool = False
    control_max_skew: float = 600.0
    job_retention_days: float = 400.0


class BadMessage(PrintstationError):
    """A message that may not act here; `code` is the contract's reason (`bad_signature`,
    `wrong_destination`, ...), which the `rejected` status carries."""

    code = "invalid_job"

    def __init__(self, code: str, detail: str, job_id: str | None = None,
                 reference: str | None = None):
        super().__init__(detail, code=code)
        self.detail, self.job_id, self.reference = detail, job_id, reference


def _readable_job_id(doc: Any, message_id: str | None) -> tuple[str | None, str | None]:
    """A job_id (and reference) that can be read from a bad message, if any is well-formed."""
    job_id = reference = None
    if isinstance(doc, dict):
        jid, ref = doc.get("job_id"), doc.get("reference")
        if isinstance(jid, str) and contract.JOB_ID_RE.fullmatch(jid):
            job_id = jid
        if isinstance(ref, str) and len(ref) <= 128 and ref.isprintable():
            reference = ref
    if job_id is None and isinstance(message_id, str) and \
            contract.JOB_ID_RE.fullmatch(message_id):
        job_id = message_id
    return job_id, reference


def _parse(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadMessage("invalid_job", f"body is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise BadMessage("invalid_job",
                         f"body is not valid JSON (line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise BadMessage("invalid_job", "body is JSON nested too deeply") from None
    except ValueError:  # e.g. an integer of thousands of digits (int_max_str_digits)
        raise BadMessage("invalid_job", "body holds a number too large to read") from None


def _validate(model: type[BaseModel], doc: dict, job_id: str | None,
              reference: str | None) -> Any:
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise BadMessage("invalid_job", contract.describe_errors(exc), job_id,
                         reference) from None


class Intake:
    def __init__(self, journal: Journal, verifier: Verifier, actions: ControlActions | None,
                 policy: Policy | None = None):
        self.journal = journal
        self.verifier = verifier
        self.actions = actions
        self.policy = policy or Policy(station_id=journal.store.station_id)
        self.fault = StationFault(journal)
        #: Monotonic time of the last message refused for its signature, for the alert.
        self.last_bad_signature: float | None = None

    # ------------------------------------------------------------------------------ jobs

    def job(self, d: Delivery) -> Decision:
        try:
            job = self._admit(d)
        except BadMessage as bad:
            return self._reject(d, bad)
        except Exception as exc:  # the agent never crashes on a message
            log.error("intake_error", source=d.source, error=type(exc).__name__)
            return self._reject(d, BadMessage("invalid_job", "message could not be processed"))
        try:
            return self._pool_job(d, job) if d.from_pool else self._station_job(d, job)
        except Exception as exc:
            return self._station_fault(d, job.job_id, exc)

    def _admit(self, d: Delivery) -> contract.Job:
        """The job in a message that may act here, or BadMessage saying why not."""
        if len(d.body) > contract.MAX_BODY_BYTES:
            job_id, _ = _readable_job_id(None, d.message_id)
            raise BadMessage("invalid_job",
                             f"body is {len(d.body)} bytes, more than {contract.MAX_BODY_BYTES}",
                             job_id)
        doc: Any = None
        try:
            doc = _parse(d.body)
        except BadMessage as bad:
            bad.job_id, _ = _readable_job_id(None, d.message_id)
            raise
        job_id, reference = _readable_job_id(doc, d.message_id)
        try:
            self.verifier.verify(d.body, d.headers)
        except SignatureError as exc:
            raise BadMessage("bad_signature", str(exc), job_id, reference) from None
        if not isinstance(doc, dict):
            raise BadMessage("invalid_job", "body is not a JSON object", job_id, reference)
        schema = doc.get("schema")
        arrived_on = d.arrived_on(self.policy.station_id)
        if schema == contract.JOB_SCHEMA_V1 and self.policy.accept_contract_v1:
            job = _validate(contract.JobV1, doc, job_id, reference).as_v2(arrived_on)
        elif schema == contract.JOB_SCHEMA:
            job = _validate(contract.Job, doc, job_id, reference)
        else:
            shown = schema[:64] if isinstance(schema, str) else type(schema).__name__
            raise BadMessage("unknown_schema",
                             f"schema {shown!r} is not {contract.JOB_SCHEMA!r}", job_id, reference)
        if d.message_id and d.message_id != job.job_id:
            raise BadMessage("invalid_job", "AMQP message_id differs from the body's job_id",
                             job.job_id, job.reference)
        if job.destination != arrived_on:
            raise BadMessage("wrong_destination",
                             f"signed for {job.destination}, arrived on {arrived_on}",
                             job.job_id, job.reference)
        return job

    def _station_job(self, d: Delivery, job: contract.Job) -> Decision:
        taken = self.journal.jobs.take(job, d.body, d.headers, d.source,
                                  retention_days=self.policy.job_retention_days)
        self.fault.stored()
        if taken is Taken.DUPLICATE:
            log.info("job_duplicate", job_id=job.job_id, state=self.journal.jobs.known(job.job_id))
            return Decision("ack", job.job_id, "duplicate")
        failpoints.hit("after_store")
        log.info("job_taken", job_id=job.job_id, source=d.source, result=taken.value)
        return Decision("ack", job.job_id, taken.value)

    def _pool_job(self, d: Delivery, job: contract.Job) -> Decision:
        known = self.journal.jobs.known(job.job_id)
        if known is not None and known != "released":
            log.info("pool_job_already_held", job_id=job.job_id, state=known)
            return Decision("ack", job.job_id, "duplicate")
        if d.seen_before:
            # Another station may hold it: never print, dead-letter, say `released`.
            self.journal.jobs.note_released_unknown(
                job.job_id, "redelivered", "pool delivery was redelivered; not printed here")
            log.warning("pool_job_redelivered", job_id=job.job_id, source=d.source)
            return Decision("reject", job.job_id, "redelivered")
        taken = self.journal.jobs.take(job, d.body, d.headers, d.source, claiming=True,
                                  retention_days=self.policy.job_retention_days)
        self.fault.stored()
        failpoints.hit("after_store")
        # A job that ended at once (cancelled before it came, too old) is claimed all the
        # same: acknowledged in the transaction, it leaves the pool with its status said.
        return Decision("claim", job.job_id, taken.value)

    def _reject(self, d: Delivery, bad: BadMessage) -> Decision:
        if bad.code == "bad_signature":
            self.last_bad_signature = time.monotonic()
        try:
            reported = self.journal.jobs.reject(bad.job_id, bad.reference, bad.code, bad.detail)
        except Exception as exc:
            if self.journal.store.write_error is not None:
                # Its `rejected` status cannot be stored: keep the message until it can.
                return self._station_fault(d, bad.job_id, exc)
            log.error("reject_status_failed", source=d.source, error=type(exc).__name__)
            reported = False
        log.warning("message_rejected", source=d.source, code=bad.code, detail=bad.detail,
                    job_id=bad.job_id, status_published=reported)
        return Decision("reject", bad.job_id, bad.code)

    def _station_fault(self, d: Delivery, job_id: str | None, exc: Exception) -> Decision:
        # SQLite's messages name no data; any other exception is named by its type only.
        said = f": {str(exc)[:120]}" if isinstance(exc, sqlite3.Error) else ""
        why = self.journal.store.write_error or f"the journal failed ({type(exc).__name__}{said})"
        self.fault.set(why, len(d.body))
        log.error("message_returned_to_queue", source=d.source, job_id=job_id,
                  error=why, detail="the station cannot store it; it takes no more "
                                    "messages until it can")
        return Decision("requeue", job_id, "station_fault")

    # --------------------------------------------------------------------------- control

    def control(self, d: Delivery) -> Decision:
        try:
            cmd = self._admit_control(d)
        except BadMessage as bad:
            if bad.code == "bad_signature":
                self.last_bad_signature = time.monotonic()
            log.warning("control_rejected", code=bad.code, detail=bad.detail)
            return Decision("reject", None, bad.code)
        except Exception as exc:  # never crash on a message
            log.error("control_error", error=type(exc).__name__)
            return Decision("reject", None, "invalid")
        command_id = getattr(cmd, "command_id", None)
        try:
            if command_id is not None and self.journal.control.command_seen(command_id):
                log.info("control_duplicate", command_id=command_id, command=cmd.command)
                return Decision("ack", cmd.job_id, "duplicate")
            result = self._act(cmd)
            if command_id is not None:
                self.journal.control.record_command(command_id, cmd.command, result,
                                            getattr(cmd, "issued_at", None))
                self.fault.stored()
        except Exception as exc:
            return self._station_fault(d, cmd.job_id, exc)
        return Decision("ack", cmd.job_id, cmd.command)

    def _admit_control(self, d: Delivery) -> contract.Control | contract.ControlV1:
        """The command in a message that may act here, or BadMessage saying why not."""
        if len(d.body) > contract.MAX_BODY_BYTES:
            raise BadMessage("invalid_job", "control body too large")
        doc = _parse(d.body)
        try:
            self.verifier.verify(d.body, d.headers)
        except SignatureError as exc:
            raise BadMessage("bad_signature", str(exc)) from None
        schema = doc.get("schema") if isinstance(doc, dict) else None
        if schema == contract.CONTROL_SCHEMA_V1 and self.policy.accept_contract_v1:
            return _validate(contract.ControlV1, doc, None, None)
        if schema != contract.CONTROL_SCHEMA:
            raise BadMessage("unknown_schema", f"not a {contract.CONTROL_SCHEMA} body")
        cmd: contract.Control = _validate(contract.Control, doc, None, None)
        if cmd.station_id != self.policy.station_id:
            raise BadMessage("bad_signature", f"command {cmd.command_id} is for station "
                                              f"{cmd.station_id}, not this one")
        skew = abs((contract.now() - cmd.issued_at).total_seconds())
        if skew > self.policy.control_max_skew:
            kept_since = self.journal.store.ids_kept_since(self.policy.job_retention_days)
            forgotten = kept_since is not None and cmd.issued_at < kept_since
            if cmd.command != "cancel" or forgotten or cmd.issued_at > contract.now():
                raise BadMessage("bad_signature", _stale(cmd.command_id, cmd.issued_at, skew,
                                                         self.policy.control_max_skew))
            # A cancel that waited in its queue (the PC was off overnight) is still acted
            # on: refused, the card it cancels would print. It can only stop a print, and
            # its command_id makes a replay of it a duplicate for as long as ids are kept
            # (older ones are refused above, as `take` refuses jobs that old, and so is one
            # dated in the future: it waited in no queue).
            log.warning("control_late_cancel", command_id=cmd.command_id,
                        job_id=cmd.job_id, seconds=round(skew))
        return cmd

    def _act(self, cmd: contract.Control | contract.ControlV1) -> str:
        assert self.actions is not None
        why = cmd.reason or "from the central system"
        if cmd.command == "cancel":
            assert cmd.job_id is not None
            result = self.actions.cancel(cmd.job_id, "cancelled_by_central", why,
                                         getattr(cmd, "issued_at", None))
            log.info("control_cancel", job_id=cmd.job_id, result=result)
            return result
        if cmd.command == "pause":
            self.actions.pause("central", why)
        elif cmd.command == "resume":
            self.actions.resume("central", why)
        else:
            self.actions.telemetry()
        return "done"


def _stale(command_id: str, issued_at: datetime, skew: float, limit: float) -> str:
    return (f"command {command_id} was issued at {issued_at.isoformat()}, {skew:.0f} s from "
            f"this station's clock (at most {limit:.0f} s): a replay, or a wrong clock")
