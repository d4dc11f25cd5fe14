"""Any card printer with a CUPS driver, through IPP: `ipp://HOST:PORT/printers/QUEUE`.

HID Fargo, Zebra, Entrust and Magicard ship CUPS drivers for Linux while their command
languages are not public, so the one door to all of them is IPP to a CUPS queue, whose
vendor filter rasterises. The IPP client is pycups (libcups's own client, kept by
OpenPrinting): it speaks IPP for us, so nothing here encodes IPP by hand. pycups reaches
queues by name on a CUPS server, so a driverless (IPP Everywhere) printer is added to CUPS
as a queue (`lpadmin -m everywhere`) and reached the same way.

URL: `ipp://HOST[:PORT]/printers/QUEUE` (`ipps://` encrypts) with query parameters
`media` (default `om_card_54x86mm`, CR80), `print_timeout` (seconds for a card to come
out, default 120), `ribbon_prints` and
`film_panels` (a roll's rated yield: IPP reports levels in percent, which become prints with
them; without them a level is shown as unknown).

Each card is one IPP job holding one document: a two-page PDF (front, back) at the card's
size, `job-name` the job's id (the agent's own reference, never personal data). It is made
ahead, on the agent's card-preparation thread (`prepare`). Create-Job comes first; its job
id goes to the agent (`CardJob.note_submitted`), which journals it before Send-Document,
so after a crash `card_outcome` asks CUPS what became of that job instead of sending it
again. What IPP cannot tell: a job `completed` at a CUPS queue whose backend is USB means the
data left the PC, not that a card came out; the printer's own counter, where its driver
exposes one, is what confirms a card. The README says how the agent stays honest about it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..base import (
    CardJob,
    CardResult,
    FaultCode,
    Identity,
    PrinterDriver,
    PrinterError,
    PrinterStatus,
    SubmittedCard,
)
from . import attributes as ipp
from .document import card_pdf

DEFAULT_MEDIA = "om_card_54x86mm"
INSTALL_HINT = ("install pycups (pip install 'printstation[ipp]'; it builds against "
                "libcups2-dev) or Debian's python3-cups")
STATUS_ATTRIBUTES = ["printer-state", "printer-state-reasons", "printer-state-message",
                     "printer-is-accepting-jobs", "marker-names", "marker-types",
                     "marker-levels", "printer-supply", "printer-supply-description"]
IDENTITY_ATTRIBUTES = ["printer-make-and-model", "printer-info", "printer-firmware-string-version",
                       "printer-device-id", "printer-uuid"]
JOB_ATTRIBUTES = ["job-state", "job-state-reasons", "job-printer-state-message",
                  "number-of-documents", "job-uuid", "job-printer-uri", "time-at-processing"]
#: IPP's client-error-not-found: the job is not (or no longer) known.
IPP_NOT_FOUND = 0x0406
#: libcups's HTTP_STATUS_CONTINUE: a document's data taken, more may follow (pycups does
#: not name it).
HTTP_CONTINUE = 100
#: Seconds between two readings of the printer's state for the station while a card prints.
STATUS_WHILE_PRINTING = 1.0
#: Seconds between two questions about a job that is not finished yet.
JOB_POLL = 0.1


def _cups() -> ModuleType:
    try:
        import cups
    except ImportError:
        raise PrinterError(FaultCode.OFFLINE, INSTALL_HINT) from None
    return cups


@dataclass(frozen=True)
class IppOptions:
    host: str
    port: int
    queue: str
    encrypted: bool = False
    media: str = DEFAULT_MEDIA
    print_timeout: float = 120.0
    rated: tuple[tuple[str, int], ...] = ()


def parse_url(url: str) -> IppOptions:
    """IppOptions from an `ipp://` URL; ValueError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in ("ipp", "ipps"):
        raise ValueError(f"printer URL {url!r}: use ipp://HOST:PORT/printers/QUEUE")
    path = unquote(parts.path)
    if not path.startswith("/printers/") or not path[len("/printers/"):].strip("/"):
        raise ValueError(f"printer URL {url!r}: name a CUPS queue, /printers/QUEUE (add a "
                         "driverless printer to CUPS with lpadmin -m everywhere)")
    try:
        port = parts.port or 631
    except ValueError:
        raise ValueError(f"printer URL {url!r}: the port is not a number") from None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    # No per-request timeout: pycups offers none (a cupsd that never answers holds a request
    # for about a minute, then it fails as offline).
    known = {"media", "print_timeout", "ribbon_prints", "film_panels"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise ValueError(f"printer URL {url!r}: unknown parameter {unknown[0]!r}; known: "
                         + ", ".join(sorted(known)))
    try:
        print_timeout = float(query.get("print_timeout", 120))
        rated = tuple((kind, int(query[key])) for kind, key in
                      (("ribbon", "ribbon_prints"), ("film", "film_panels")) if key in query)
    except ValueError as exc:
        raise ValueError(f"printer URL {url!r}: {exc}") from None
    if print_timeout <= 0 or any(n <= 0 for _, n in rated):
        raise ValueError(f"printer URL {url!r}: times and yields must be above 0")
    return IppOptions(parts.hostname or "localhost", port, path[len("/printers/"):].strip("/"),
                      parts.scheme == "ipps", query.get("media") or DEFAULT_MEDIA,
                      print_timeout, rated)


class IppDriver(PrinterDriver):
    """A CUPS queue over IPP; see the module docstring."""

    name = "ipp"
    #: A CR80 card at 300 dpi, landscape: the page size of the PDF sent.
    native_size = (1016, 648)

    def __init__(self, options: IppOptions):
        self.options = options
        self._conn: Any = None
        self._sides_supported: list[str] | None = None
        #: Set by `open` when the queue's error policy could resend a card by itself.
        self.error_policy_warning: str | None = None

    @classmethod
    def from_url(cls, url: str, *, state_dir: Path) -> IppDriver:
        return cls(parse_url(url))

    # ------------------------------------------------------------------ connection

    def open(self) -> None:
        self._connection()
        policy = self._printer(["printer-error-policy"]).get("printer-error-policy")
        if policy in ("retry-job", "retry-current-job", "stop-printer"):
            # Such a queue may send a card's data again by itself after a failure (or when
            # someone re-enables it), past the agent's back: one card could come out twice.
            self.error_policy_warning = (
                f"queue {self.options.queue} has printer-error-policy {policy}; set it to "
                f"abort-job (lpadmin -p {self.options.queue} -o printer-error-policy=abort-job)")

    def close(self) -> None:
        self._conn = None  # pycups closes the HTTP connection when it is collected

    def _connection(self) -> Any:
        if self._conn is None:
            cups = _cups()
            o = self.options
            try:
                # libcups keeps its server per thread, and Create-Job finds the queue through
                # it: this thread (the printer's) sets it.
                cups.setServer(f"{o.host}:{o.port}")
                cups.setPort(o.port)
                cups.setEncryption(cups.HTTP_ENCRYPT_REQUIRED if o.encrypted
                                   else cups.HTTP_ENCRYPT_IF_REQUESTED)
                self._conn = cups.Connection(host=o.host, port=o.port)
            except RuntimeError as exc:
                raise PrinterError(FaultCode.OFFLINE, f"CUPS at {o.host}:{o.port}: {exc}") \
                    from None
        return self._conn

    def _ask(self, what: str, call: Any, *args: Any, card_drawn: bool | None = False,
             **kwargs: Any) -> Any:
        """One IPP request; a broken connection is `offline` and is opened afresh next time;
        an IPP error answer is a PrinterError naming the request and CUPS's words."""
        cups = _cups()
        conn = self._connection()
        try:
            return call(conn, *args, **kwargs)
        except cups.IPPError as exc:
            status, message = exc.args if len(exc.args) == 2 else (0, str(exc))
            if status in (cups.IPP_SERVICE_UNAVAILABLE, cups.IPP_INTERNAL_ERROR) or \
                    status < 0x0400 or "connect" in str(message).lower():
                self._conn = None
                raise PrinterError(FaultCode.OFFLINE, f"{what}: {message}",
                                   card_drawn=card_drawn) from None
            error = PrinterError(FaultCode.OTHER, f"{what}: {message} (IPP status "
                                 f"0x{status:04x})", card_drawn=card_drawn)
            error.ipp_status = status  # type: ignore[attr-defined]
            raise error from None
        except (RuntimeError, OSError) as exc:
            self._conn = None
            raise PrinterError(FaultCode.OFFLINE, f"{what}: {exc}", card_drawn=card_drawn) \
                from None

    def _sides(self) -> list[str]:
        """The queue's `sides-supported`: a card printer's vendor driver may turn a card
        over by its own option, and a value the queue does not take cancels the job."""
        if self._sides_supported is None:
            attrs = self._printer(["sides-supported"])
            self._sides_supported = [str(v) for v in ipp._as_list(attrs.get("sides-supported"))]
        return self._sides_supported

    def _printer(self, requested: list[str]) -> dict[str, Any]:
        return self._ask("Get-Printer-Attributes", lambda c: c.getPrinterAttributes(
            self.options.queue, requested_attributes=requested))

    # ---------------------------------------------------------------------- queries

    def identity(self) -> Identity:
        attrs = self._printer(IDENTITY_ATTRIBUTES)
        device = _device_id(attrs.get("printer-device-id"))
        return Identity(driver=self.name,
                        model=attrs.get("printer-make-and-model") or attrs.get("printer-info"),
                        serial=device.get("SN") or device.get("SERN") or None,
                        firmware=attrs.get("printer-firmware-string-version") or None)

    def status(self) -> PrinterStatus:
        attrs = self._printer(STATUS_ATTRIBUTES)
        state = attrs.get("printer-state")
        reasons = [str(r) for r in ipp._as_list(attrs.get("printer-state-reasons"))]
        found = list(ipp.faults(state, reasons))
        if attrs.get("printer-is-accepting-jobs") is False and FaultCode.OFFLINE not in found:
            found.append(FaultCode.OFFLINE)  # the queue rejects jobs: nothing can be sent
        levels = ipp.levels(ipp.markers(attrs), dict(self.options.rated))
        if found:
            mode = "offline" if found == [FaultCode.OFFLINE] else "fault"
        else:
            mode = "busy" if state == ipp.PrinterState.PROCESSING else "ready"
        return PrinterStatus(state=mode, faults=tuple(sorted(found)),  # type: ignore[arg-type]
                             consumables=levels)

    def details(self) -> dict[str, str]:
        """The queue's state, reasons, message and markers as CUPS says them."""
        attrs = self._printer(STATUS_ATTRIBUTES)
        state = attrs.get("printer-state")
        markers = ", ".join(f"{m.name} {m.level}%" if m.level is not None else
                            f"{m.name} (level unknown)" for m in ipp.markers(attrs))
        return {
            "printer-state": ipp.PrinterState(state).name.lower()
            if state in tuple(ipp.PrinterState) else str(state),
            "printer-state-reasons": ", ".join(
                str(r) for r in ipp._as_list(attrs.get("printer-state-reasons"))) or "none",
            "printer-state-message": str(attrs.get("printer-state-message") or ""),
            "markers": markers or "none reported",
            **({"warning": self.error_policy_warning} if self.error_policy_warning else {}),
        }

    # --------------------------------------------------------------------- printing

    def prepare(self, card: CardJob) -> CardJob:
        card.encoded = card_pdf(card)
        return card

    def print_card(self, card: CardJob) -> CardResult:
        document = card.encoded if isinstance(card.encoded, bytes) else card_pdf(card)
        o = self.options
        options = {"media": o.media}
        if card.back is not None and "two-sided-short-edge" in self._sides():
            options["sides"] = "two-sided-short-edge"  # else the queue's own duplex setting
        # Create-Job: nothing is printed yet; a refusal leaves the blank in the feeder.
        job_id = self._ask("Create-Job", lambda c: c.createJob(
            o.queue, card.job_id or "test-card", options))
        # The job's uuid too: a cupsd that crashes within seconds of a change forgets it and
        # gives the same id to the next job, which must not be taken for this one.
        try:
            uuid = self._ask("Get-Job-Attributes", lambda c: c.getJobAttributes(
                job_id, requested_attributes=["job-uuid"])).get("job-uuid", "")
        except PrinterError:
            uuid = ""
        if card.note_submitted is not None:
            card.note_submitted(f"{job_id} {uuid}".strip())  # journaled before the document
        # A failure may leave part of the document sent: what CUPS did with the job decides.
        with contextlib.suppress(PrinterError):
            self._ask("Send-Document", self._send, job_id, document, card_drawn=None)
        return self._finished(job_id, uuid, card)

    def _send(self, conn: Any, job_id: int, document: bytes) -> None:
        conn.startDocument(self.options.queue, job_id, "card", "application/pdf", 1)
        status = conn.writeRequestData(document, len(document))
        if status != HTTP_CONTINUE:
            raise RuntimeError(f"the document was not taken (HTTP {status})")
        conn.finishDocument(self.options.queue)

    def _finished(self, job_id: int, uuid: str, card: CardJob) -> CardResult:
        """Wait for the job's final state and say what it means for the card; meanwhile
        the station hears the printer's state (a jam, an empty feeder holding the job)."""
        said = self._wait_for(job_id, uuid, self.options.print_timeout,
                              meanwhile=card.note_status)
        if said.state == "printed":
            return CardResult(counter=None)
        if said.state == "unknown":
            # Never left alive to print later, when the card may already be counted lost.
            self._cancel(job_id)
            raise PrinterError(FaultCode.OFFLINE, f"IPP job {job_id}: {said.detail}",
                               card_drawn=None)
        fault = self._fault_now() or FaultCode.OTHER
        raise PrinterError(fault, f"IPP job {job_id}: {said.detail}", card_drawn=False)

    def _cancel(self, job_id: int) -> None:
        with contextlib.suppress(PrinterError):
            self._ask("Cancel-Job", lambda c: c.cancelJob(job_id))

    def _cancel_empty(self, job_id: int) -> SubmittedCard:
        try:
            self._ask("Cancel-Job", lambda c: c.cancelJob(job_id))
        except PrinterError as exc:
            return SubmittedCard("unknown", f"job {job_id} has no document and could not be "
                                            f"cancelled ({exc.detail})")
        return _never_sent(job_id)

    def _fault_now(self) -> FaultCode | None:
        try:
            status = self.status()
        except PrinterError:
            return None
        return status.faults[0] if status.faults else None

    def card_outcome(self, ref: str) -> SubmittedCard | None:
        """`ref` is `JOB_ID JOB_UUID` as `print_card` gave it."""
        job_id, _, uuid = ref.partition(" ")
        if not job_id.isdigit():
            return SubmittedCard("unknown", f"{ref!r} is not an IPP job id")
        if not uuid:
            # Without its uuid a job id may be another's, given again by a cupsd that lost
            # its history (or another queue's, on a cupsd two agents share).
            return SubmittedCard("unknown", f"job {job_id} was journaled without its uuid")
        said = self._wait_for(int(job_id), uuid, self.options.print_timeout, recovering=True)
        if said.state == "unknown":
            self._cancel(int(job_id))
        return said

    def _wait_for(self, job_id: int, uuid: str, seconds: float, *, recovering: bool = False,
                  meanwhile: Callable[[PrinterStatus], None] | None = None) -> SubmittedCard:
        """The job's final state as the card's outcome; `unknown` if CUPS forgot the job (or
        gave its id to another), cannot be reached, or has not finished it in `seconds`."""
        deadline = time.monotonic() + seconds
        detail = "no answer"
        told = time.monotonic()
        while True:
            try:
                attrs = self._ask("Get-Job-Attributes", lambda c: c.getJobAttributes(
                    job_id, requested_attributes=JOB_ATTRIBUTES))
            except PrinterError as exc:
                if getattr(exc, "ipp_status", None) == IPP_NOT_FOUND:
                    return SubmittedCard("unknown", f"CUPS no longer knows job {job_id} "
                                                    f"({exc.detail})")
                detail = exc.detail  # unreachable, or refused for now: asked again
            else:
                if (uuid and attrs.get("job-uuid") not in (None, uuid)) or not str(
                        attrs.get("job-printer-uri", f"/printers/{self.options.queue}")
                        ).endswith(f"/printers/{self.options.queue}"):
                    return SubmittedCard("unknown", f"CUPS lost job {job_id} and gave its "
                                                    "id to another")
                state = attrs.get("job-state")
                if isinstance(state, int) and state >= ipp.JobState.CANCELED:
                    return _outcome(job_id, ipp.JobState(state), attrs)
                if recovering and state in (ipp.JobState.PENDING, ipp.JobState.PENDING_HELD) \
                        and attrs.get("number-of-documents") == 0:
                    # The agent stopped between Create-Job and its document: CUPS keeps the
                    # empty job pending for good. Cancelled now, it can never print.
                    return self._cancel_empty(job_id)
                detail = f"job {job_id} still {ipp.JobState(state).name.lower()}" \
                    if isinstance(state, int) and 3 <= state <= 9 else "no job state"
            if time.monotonic() >= deadline:
                return SubmittedCard("unknown", f"{detail} after {seconds:g} s")
            if meanwhile is not None and time.monotonic() - told >= STATUS_WHILE_PRINTING:
                told = time.monotonic()
                with contextlib.suppress(PrinterError):
                    meanwhile(self.status())
            time.sleep(JOB_POLL)


def _never_sent(job_id: int) -> SubmittedCard:
    return SubmittedCard("not_printed", f"job {job_id} never received its document; "
                                        "cancelled")


def _outcome(job_id: int, state: ipp.JobState, attrs: dict[str, Any]) -> SubmittedCard:
    """A final job state as a card's outcome. Completed is printed. Canceled or aborted
    before the printer worked on it is not printed. Canceled or aborted once it did is
    unknown: IPP does not say whether a blank was drawn, or a card came out before the
    printer gave up (CUPS counts the pages it sent: `job-impressions-completed` is 1 either
    way, seen with ippeveprinter), so someone at the printer must say."""
    reasons = ", ".join(str(r) for r in ipp._as_list(attrs.get("job-state-reasons"))) or "none"
    message = attrs.get("job-printer-state-message")
    said = f"job {job_id} {state.name.lower()} ({reasons})" + (f": {message}" if message else "")
    if state == ipp.JobState.COMPLETED:
        return SubmittedCard("printed", said)
    worked_on = attrs.get("time-at-processing")
    if isinstance(worked_on, int) and worked_on > 0:
        return SubmittedCard("unknown", f"{said}; the printer had begun the card")
    return SubmittedCard("not_printed", said)


def _device_id(value: Any) -> dict[str, str]:
    """An IEEE 1284 device id (`MFG:…;MDL:…;SN:…;`) as a dict."""
    if not isinstance(value, str):
        return {}
    pairs = (item.partition(":") for item in value.split(";") if ":" in item)
    return {key.strip().upper(): val.strip() for key, _, val in pairs}
