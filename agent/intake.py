"""Deciding what to do with one inbound message, whatever carried it (RabbitMQ or the demo).

The transport hands over the body bytes and headers; intake checks size, signature,
JSON, schema and the contract's rules, stores what it takes in the journal, and answers
with what the transport must do with the delivery. It never raises on a message and never
puts a body, or any part of one but its job_id, into a log line or a reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from pydantic import ValidationError

from . import contract, failpoints
from .journal import Journal
from .signing import SignatureError, Verifier

log = structlog.get_logger("printstation.intake")

Action = Literal["ack", "reject", "claim"]


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


@dataclass(frozen=True)
class Decision:
    """What the transport does: ack, dead-letter (reject), or claim in a transaction."""

    action: Action
    job_id: str | None = None
    why: str = ""


@dataclass
class ControlActions:
    """What the agent core does for control commands; set by the core."""

    pause: Callable[[str, str], None]
    resume: Callable[[str, str], None]
    telemetry: Callable[[], None]
    cancel: Callable[[str, str, str], str]


class BadMessage(Exception):
    def __init__(self, code: str, detail: str, job_id: str | None = None,
                 reference: str | None = None):
        super().__init__(detail)
        self.code, self.detail, self.job_id, self.reference = code, detail, job_id, reference


def _readable_job_id(doc: Any, message_id: str | None) -> tuple[str | None, str | None]:
    """A job_id (and reference) that can be read from a bad message, if any is well-formed."""
    job_id = reference = None
    if isinstance(doc, dict):
        jid, ref = doc.get("job_id"), doc.get("reference")
        if isinstance(jid, str) and contract.JOB_ID_RE.match(jid):
            job_id = jid
        if isinstance(ref, str) and len(ref) <= 128 and ref.isprintable():
            reference = ref
    if job_id is None and message_id and contract.JOB_ID_RE.match(message_id):
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


class Intake:
    def __init__(self, journal: Journal, verifier: Verifier, actions: ControlActions | None):
        self.journal = journal
        self.verifier = verifier
        self.actions = actions
        #: Monotonic time of the last message refused for its signature, for the alert.
        self.last_bad_signature: float | None = None

    # ------------------------------------------------------------------------------ jobs

    def job(self, d: Delivery) -> Decision:
        try:
            return self._job(d)
        except BadMessage as bad:
            return self._reject(d, bad)
        except Exception as exc:  # the agent never crashes on a message
            log.error("intake_error", source=d.source, error=type(exc).__name__)
            return self._reject(d, BadMessage("invalid_job", "message could not be processed"))

    def _job(self, d: Delivery) -> Decision:
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
        if schema != contract.JOB_SCHEMA:
            shown = schema[:64] if isinstance(schema, str) else type(schema).__name__
            raise BadMessage("unknown_schema",
                             f"schema {shown!r} is not {contract.JOB_SCHEMA!r}", job_id, reference)
        try:
            job = contract.Job.model_validate(doc)
        except ValidationError as exc:
            raise BadMessage("invalid_job", contract.describe_errors(exc), job_id,
                             reference) from None
        if d.message_id and d.message_id != job.job_id:
            raise BadMessage("invalid_job", "AMQP message_id differs from the body's job_id",
                             job.job_id, job.reference)
        if d.from_pool:
            return self._pool_job(d, job)
        if not self.journal.take(job, d.body, d.headers, d.source):
            log.info("job_duplicate", job_id=job.job_id, state=self.journal.known(job.job_id))
            return Decision("ack", job.job_id, "duplicate")
        failpoints.hit("after_store")
        log.info("job_accepted", job_id=job.job_id, source=d.source)
        return Decision("ack", job.job_id, "accepted")

    def _pool_job(self, d: Delivery, job: contract.Job) -> Decision:
        known = self.journal.known(job.job_id)
        if known is not None and known != "released":
            log.info("pool_job_already_held", job_id=job.job_id, state=known)
            return Decision("ack", job.job_id, "duplicate")
        if d.seen_before:
            # Another station may hold it: never print, dead-letter, say `released`.
            self.journal.note_released_unknown(
                job.job_id, "redelivered", "pool delivery was redelivered; not printed here")
            log.warning("pool_job_redelivered", job_id=job.job_id, source=d.source)
            return Decision("reject", job.job_id, "redelivered")
        self.journal.take(job, d.body, d.headers, d.source, claiming=True)
        failpoints.hit("after_store")
        return Decision("claim", job.job_id, "claiming")

    def _reject(self, d: Delivery, bad: BadMessage) -> Decision:
        if bad.code == "bad_signature":
            self.last_bad_signature = time.monotonic()
        reported = self.journal.reject(bad.job_id, bad.reference, bad.code, bad.detail)
        log.warning("message_rejected", source=d.source, code=bad.code, detail=bad.detail,
                    job_id=bad.job_id, status_published=reported)
        return Decision("reject", bad.job_id, bad.code)

    # --------------------------------------------------------------------------- control

    def control(self, d: Delivery) -> Decision:
        try:
            if len(d.body) > contract.MAX_BODY_BYTES:
                raise BadMessage("invalid_job", "control body too large")
            doc = _parse(d.body)
            self.verifier.verify(d.body, d.headers)
            if not isinstance(doc, dict) or doc.get("schema") != contract.CONTROL_SCHEMA:
                raise BadMessage("unknown_schema", "not a printstation.control/1 body")
            cmd = contract.Control.model_validate(doc)
        except SignatureError as exc:
            self.last_bad_signature = time.monotonic()
            log.warning("control_rejected", code="bad_signature", detail=str(exc))
            return Decision("reject", None, "bad_signature")
        except BadMessage as bad:
            log.warning("control_rejected", code=bad.code, detail=bad.detail)
            return Decision("reject", None, bad.code)
        except ValidationError as exc:
            log.warning("control_rejected", code="invalid", detail=contract.describe_errors(exc))
            return Decision("reject", None, "invalid")
        assert self.actions is not None
        why = cmd.reason or "from the central system"
        if cmd.command == "cancel":
            assert cmd.job_id is not None
            result = self.actions.cancel(cmd.job_id, "cancelled_by_central", why)
            log.info("control_cancel", job_id=cmd.job_id, result=result)
        elif cmd.command == "pause":
            self.actions.pause("central", why)
        elif cmd.command == "resume":
            self.actions.resume("central", why)
        else:
            self.actions.telemetry()
        return Decision("ack", cmd.job_id, cmd.command)
