"""Pydantic models of every message in the station contract (docs/CONTRACT.md, version 2).

The models are strict on purpose: the central system is written by others, and a message
that does not follow the contract must be refused with a precise reason, never guessed at.
Validation errors are turned into reasons with `describe_errors`, which never echoes the
offending input, because a job's input is personal data.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from PIL import Image, UnidentifiedImageError
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

JOB_SCHEMA = "printstation.job/2"
#: Version 1 of jobs and control commands: accepted only while `accept_contract_v1` is on.
JOB_SCHEMA_V1 = "printstation.job/1"
STATUS_SCHEMA = "printstation.status/1"
CARD_SCHEMA = "printstation.card/1"
TELEMETRY_SCHEMA = "printstation.telemetry/1"
ALERT_SCHEMA = "printstation.alert/1"
CONTROL_SCHEMA = "printstation.control/2"
CONTROL_SCHEMA_V1 = "printstation.control/1"
INBOUND_SCHEMAS = (JOB_SCHEMA, CONTROL_SCHEMA)

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_CHIP_BYTES = 64 * 1024
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MIN_IMAGE_WIDTH = 500
MAX_IMAGE_WIDTH = 2048
CR80_ASPECT = 1.586
ASPECT_TOLERANCE = 0.02

# Checked with `fullmatch` in Python: `re.match(...$)` lets a trailing newline through.
JOB_ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,64}$"
NAME_PATTERN = r"^[a-z0-9_\-]{1,64}$"
DESTINATION_PATTERN = r"^(station|pool)\.[a-z0-9_\-]{1,64}$"
CHIP_PROFILE_PATTERN = r"^[a-z0-9][a-z0-9._/\-]{0,63}$"
JOB_ID_RE = re.compile(JOB_ID_PATTERN)
NAME_RE = re.compile(NAME_PATTERN)

JobId = Annotated[str, Field(pattern=JOB_ID_PATTERN, description="identity of the card")]
StationId = Annotated[str, Field(pattern=NAME_PATTERN)]
CardStock = Annotated[str, Field(pattern=NAME_PATTERN, description="kind of blank, e.g. ektp")]

JobStatusName = Literal[
    "accepted", "printing", "printed", "failed", "rejected", "cancelled", "expired",
    "needs_check", "released",
]
JOB_STATUS_NAMES: frozenset[str] = frozenset(JobStatusName.__args__)  # type: ignore[attr-defined]
TERMINAL_STATUSES = frozenset({"printed", "failed", "rejected", "cancelled", "expired"})

ReasonCode = Literal[
    "invalid_job", "unknown_schema", "bad_signature", "stock_mismatch", "printer_fault",
    "encoder_fault", "cancelled_by_operator", "cancelled_by_central", "attempts_exhausted",
    "operator_resolved", "claim_unconfirmed", "redelivered", "handed_back",
    "wrong_destination", "no_encoder", "encode_failed", "too_old", "cancel_unknown",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- job (inbound)


def _decode_image(value: str, what: str, *, one_bit: bool = False) -> tuple[bytes, tuple[int, int]]:
    """Decode and fully load a base64 image, so a corrupt one is refused at intake, not mid-card."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None
    if len(raw) > MAX_IMAGE_BYTES:
        raise ValueError(f"{what} is {len(raw)} bytes encoded, more than {MAX_IMAGE_BYTES}")
    if not (raw.startswith(b"\x89PNG\r\n\x1a\n") or raw.startswith(b"\xff\xd8\xff")):
        raise ValueError(f"{what} is neither PNG nor JPEG")
    if one_bit and not raw.startswith(b"\x89PNG"):
        raise ValueError(f"{what} must be a 1-bit PNG")
    try:
        with Image.open(io.BytesIO(raw)) as img:
            size = img.size
            mode = img.mode
            if size[0] > MAX_IMAGE_WIDTH * 2 or size[1] > MAX_IMAGE_WIDTH * 2:
                raise ValueError(f"{what} is {size[0]}x{size[1]} px, far too large")
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError):
        raise ValueError(f"{what} cannot be decoded") from None
    if one_bit and mode != "1":
        raise ValueError(f"{what} must be a 1-bit image, not mode {mode}")
    return raw, size


def _check_card_geometry(size: tuple[int, int], what: str) -> None:
    width, height = size
    if not MIN_IMAGE_WIDTH <= width <= MAX_IMAGE_WIDTH:
        raise ValueError(
            f"{what} is {width} px wide; it must be {MIN_IMAGE_WIDTH} to {MAX_IMAGE_WIDTH}"
        )
    aspect = width / height
    if abs(aspect - CR80_ASPECT) > CR80_ASPECT * ASPECT_TOLERANCE:
        raise ValueError(
            f"{what} is {width}x{height} px (aspect {aspect:.3f}); a landscape CR80 card "
            f"needs {CR80_ASPECT} within {ASPECT_TOLERANCE:.0%}"
        )


#: Validation context for a job the journal stored: the card's preparation decodes its
#: images anyway, so decoding them a second time only to check them would be wasted.
IMAGES_CHECKED: dict[str, bool] = {"images_checked": True}


class Side(_Strict):
    """One side of a card. Every field here but `overlay` is personal data."""

    image: str = Field(description="base64 PNG or JPEG, landscape CR80, 500-2048 px wide")
    black: str | None = Field(default=None, description="base64 1-bit PNG mask for the K panel")
    overlay: bool = True

    @model_validator(mode="after")
    def _images_are_cards(self, info: ValidationInfo) -> Side:
        if info.context is IMAGES_CHECKED:
            return self  # a stored job: its images were decoded in full when it was taken
        _, size = _decode_image(self.image, "image")
        _check_card_geometry(size, "image")
        if self.black is not None:
            _, mask_size = _decode_image(self.black, "black", one_bit=True)
            if mask_size != size:
                raise ValueError(
                    f"black mask is {mask_size[0]}x{mask_size[1]} px but the image is "
                    f"{size[0]}x{size[1]}"
                )
        return self

    def image_bytes(self) -> bytes:
        return base64.b64decode(self.image)

    def black_bytes(self) -> bytes | None:
        return None if self.black is None else base64.b64decode(self.black)


class Sides(_Strict):
    front: Side
    back: Side | None = None


Destination = Annotated[str, Field(
    pattern=DESTINATION_PATTERN,
    description="the routing key the job was signed for: station.<station_id> or pool.<pool>")]


class Chip(_Strict):
    """`chip` (v2): what the card's contactless chip is personalised with. Personal data.

    `profile` names the encoder plug-in that knows `data`; `apdu-script/1` is built in and
    checked here, so a job whose script cannot run is refused at intake, not at the printer.
    """

    profile: str = Field(pattern=CHIP_PROFILE_PATTERN, description="e.g. apdu-script/1")
    data: str = Field(description="base64, at most 64 KiB decoded")

    @model_validator(mode="after")
    def _data_fits_profile(self) -> Chip:
        try:
            raw = base64.b64decode(self.data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("chip.data is not valid base64") from None
        if len(raw) > MAX_CHIP_BYTES:
            raise ValueError(f"chip.data is {len(raw)} bytes, more than {MAX_CHIP_BYTES}")
        if self.profile == APDU_SCRIPT_PROFILE:
            apdu_script(raw)
        return self

    def data_bytes(self) -> bytes:
        return base64.b64decode(self.data)


APDU_SCRIPT_PROFILE = "apdu-script/1"
_HEX_RE = re.compile(r"(?:[0-9A-Fa-f]{2})+")
_SW_RE = re.compile(r"[0-9A-Fa-f]{4}")


@dataclass(frozen=True)
class ApduStep:
    """One command of an `apdu-script/1` profile and the status words it may answer."""

    apdu: bytes
    expect: tuple[bytes, ...]


def apdu_script(raw: bytes) -> list[ApduStep]:
    """Parse `apdu-script/1` data; ValueError naming the problem (never the APDU bytes)."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("chip.data for apdu-script/1 is not UTF-8 JSON") from None
    commands = doc.get("commands") if isinstance(doc, dict) else None
    if not isinstance(commands, list) or not commands:
        raise ValueError('chip.data for apdu-script/1 needs a non-empty "commands" list')
    if set(doc) - {"commands"}:
        raise ValueError('chip.data for apdu-script/1 holds only "commands"')
    steps = []
    for i, cmd in enumerate(commands):
        if not isinstance(cmd, dict) or set(cmd) - {"apdu", "expect"}:
            raise ValueError(f"chip command {i}: an object with apdu and expect")
        apdu, expect = cmd.get("apdu"), cmd.get("expect")
        if not isinstance(apdu, str) or not _HEX_RE.fullmatch(apdu) or len(apdu) < 8:
            raise ValueError(f"chip command {i}: apdu must be hex, at least 4 bytes")
        if not isinstance(expect, list) or not expect or not all(
                isinstance(sw, str) and _SW_RE.fullmatch(sw) for sw in expect):
            raise ValueError(f"chip command {i}: expect must list status words such as 9000")
        steps.append(ApduStep(bytes.fromhex(apdu), tuple(bytes.fromhex(sw) for sw in expect)))
    return steps


class _JobFields(_Strict):
    """What both versions of a job hold."""

    job_id: JobId
    reference: str | None = Field(default=None, max_length=128)
    created_at: AwareDatetime
    expires_at: AwareDatetime | None = None
    card_stock: CardStock
    sides: Sides

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("reference")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("reference must hold printable characters only")
        return value

    @property
    def two_sided(self) -> bool:
        return self.sides.back is not None


class Job(_JobFields):
    """`printstation.job/2`: one card to print, on the queue it was signed for."""

    schema_: Literal["printstation.job/2"] = Field(alias="schema")
    destination: Destination
    chip: Chip | None = None


class JobV1(_JobFields):
    """`printstation.job/1`: accepted only while `accept_contract_v1` is on (migration)."""

    schema_: Literal["printstation.job/1"] = Field(alias="schema")

    def as_v2(self, destination: str) -> Job:
        """The same job as version 2, its destination the queue it arrived on: version 1
        jobs name none, which is why accepting them is a setting to switch off."""
        fields = self.model_dump(by_alias=True, exclude={"schema_"})
        return Job.model_validate({"schema": JOB_SCHEMA, "destination": destination,
                                   **fields}, context=IMAGES_CHECKED)


def stored_job(body: bytes) -> Job:
    """A job the journal holds: it passed intake, so its images are not decoded again."""
    doc = json.loads(body)
    if doc.get("schema") == JOB_SCHEMA_V1:
        return JobV1.model_validate(doc, context=IMAGES_CHECKED).as_v2("station.unknown")
    return Job.model_validate(doc, context=IMAGES_CHECKED)


# ----------------------------------------------------------------------- control (inbound)

Command = Literal["cancel", "pause", "resume", "telemetry"]


class ControlV1(_Strict):
    """`printstation.control/1`: accepted only while `accept_contract_v1` is on."""

    schema_: Literal["printstation.control/1"] = Field(alias="schema")
    command: Command
    job_id: JobId | None = None
    reason: str | None = Field(default=None, max_length=256)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _cancel_names_a_job(self) -> ControlV1:
        if self.command == "cancel" and self.job_id is None:
            raise ValueError("command cancel needs a job_id")
        return self


class Control(ControlV1):
    """`printstation.control/2`: a command to one station, acted on once and only while fresh.

    `command_id` makes a replay a duplicate; `station_id` and `issued_at` keep a signed
    command from acting on another station or long after it was sent.
    """

    schema_: Literal["printstation.control/2"] = Field(alias="schema")  # type: ignore[assignment]
    command_id: JobId
    issued_at: AwareDatetime
    station_id: StationId


# ---------------------------------------------------------------------- events (outbound)


class Reason(_Strict):
    code: ReasonCode
    detail: str = Field(max_length=1024)


ChipUid = Annotated[str, Field(pattern=r"^[0-9a-f]{2,64}$", description="the chip's UID, hex")]


class CardRef(_Strict):
    card_no: int
    chip_uid: ChipUid | None = None


class _Event(_Strict):
    station_id: StationId
    seq: int = Field(ge=1)
    at: AwareDatetime

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Status(_Event):
    """`printstation.status/1`, routing key `status.<station_id>.<status>`."""

    schema_: Literal["printstation.status/1"] = Field(default=STATUS_SCHEMA, alias="schema")
    job_id: JobId
    reference: str | None = None
    status: JobStatusName
    attempt: int = Field(ge=0)
    reason: Reason | None = None
    card: CardRef | None = None


class CardEvent(_Event):
    """`printstation.card/1`: one blank that left the feeder, whatever became of it."""

    schema_: Literal["printstation.card/1"] = Field(default=CARD_SCHEMA, alias="schema")
    card_no: int
    job_id: JobId | None
    outcome: Literal["issued", "spoiled", "test", "removed"]
    reason: str | None = None
    chip_uid: ChipUid | None = None


class Consumable(_Strict):
    kind: Literal["ribbon", "film", "cards"]
    type: str | None
    capacity: int | None
    remaining: int | None
    unit: Literal["prints", "panels", "cards"]
    source: Literal["printer", "agent"]
    counted: int | None = None
    read: int | None = None
    disagreement: str | None = None
    cards_left: int | None = None
    runs_out_at: AwareDatetime | None = None


class Blanks(_Strict):
    """Blanks given to the station and where each one is: loaded = drawn + in_feeder."""

    stock: str | None
    loaded: int
    issued: int
    spoiled: int
    test: int
    drawn: int
    in_feeder: int
    in_feeder_source: Literal["printer", "agent"]
    unaccounted: int
    balanced: bool


class Maintenance(_Strict):
    cards_since_cleaning: int
    cleaning_interval: int
    cleaning_due: bool
    last_cleaned: str | None


class OpenAlert(_Strict):
    condition: str
    severity: Literal["info", "warning", "critical"]
    message: str


class PrinterInfo(_Strict):
    driver: str
    model: str | None
    serial: str | None
    firmware: str | None
    state: Literal["ready", "busy", "fault", "offline", "unknown"]
    faults: list[str]


class Counters(_Strict):
    printed_today: int
    spoiled_today: int
    printed_total: int
    spoiled_total: int


class Telemetry(_Event):
    """`printstation.telemetry/1`: the station's state, for the central system and technicians."""

    schema_: Literal["printstation.telemetry/1"] = Field(default=TELEMETRY_SCHEMA, alias="schema")
    agent_version: str
    state: Literal["ready", "printing", "paused", "blocked", "offline", "stopping"]
    blocked_reason: str | None = None
    taking_jobs: bool
    not_taking_jobs_because: str | None = None
    signatures_verified: bool
    #: Version 1 jobs and commands are accepted (a central system migrating); off by default.
    contract_v1_accepted: bool = False
    printer: PrinterInfo
    consumables: list[Consumable]
    cards_left: int | None
    first_to_run_out: str | None
    runs_out_at: AwareDatetime | None = None
    print_rate_per_hour: float | None = None
    blanks: Blanks | None = None
    maintenance: Maintenance | None = None
    alerts: list[OpenAlert] = []
    counters: Counters
    queued_jobs: int


class Alert(_Event):
    """`printstation.alert/1`, raised once when a condition starts and once when it clears."""

    schema_: Literal["printstation.alert/1"] = Field(default="printstation.alert/1", alias="schema")
    severity: Literal["info", "warning", "critical"]
    condition: str
    message: str
    cleared: bool = False


EVENT_MODELS: dict[str, type[_Event]] = {
    STATUS_SCHEMA: Status,
    CARD_SCHEMA: CardEvent,
    TELEMETRY_SCHEMA: Telemetry,
    ALERT_SCHEMA: Alert,
}
ALL_MODELS: dict[str, type[BaseModel]] = {
    JOB_SCHEMA: Job,
    CONTROL_SCHEMA: Control,
    **EVENT_MODELS,
}


def describe_errors(exc: ValidationError) -> str:
    """A one-line reason naming each failing field, without echoing any input value."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)[:1000]


def now() -> datetime:
    return datetime.now().astimezone()


def routing_key(event: dict[str, Any]) -> str:
    """The routing key of an outbound event, as contract section 4 names it."""
    schema, station = event["schema"], event["station_id"]
    if schema == STATUS_SCHEMA:
        return f"status.{station}.{event['status']}"
    if schema == CARD_SCHEMA:
        return f"card.{station}"
    if schema == TELEMETRY_SCHEMA:
        return f"telemetry.{station}"
    if schema == ALERT_SCHEMA:
        return f"alert.{station}.{event['severity']}"
    raise ValueError(f"no routing key for schema {schema!r}")
