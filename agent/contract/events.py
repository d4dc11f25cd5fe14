"""Outbound events (station to central system): status, card ledger, telemetry, alerts.

Each event is its content (`StatusFields`, `CardFields`, `TelemetryFields`, `AlertFields`),
built where it is made, and the envelope the outbox gives it when it is stored: this
station's id, the next `seq` and the time (`Outbox.emit`). The event classes (`Status`, ...)
are the two together, as the contract describes them.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, ConfigDict, Field

from .common import (
    ALERT_SCHEMA,
    CARD_SCHEMA,
    STATUS_SCHEMA,
    TELEMETRY_SCHEMA,
    JobId,
    JobStatusName,
    ReasonCode,
    StationId,
    _Strict,
)

# ---------------------------------------------------------------------- events (outbound)


class Reason(_Strict):
    code: ReasonCode
    detail: str = Field(max_length=1024)


ChipUid = Annotated[str, Field(pattern=r"^[0-9a-f]{2,64}$", description="the chip's UID, hex")]


class CardRef(_Strict):
    card_no: int
    chip_uid: ChipUid | None = None


class _Event(_Strict):
    """The envelope every event carries (contract 4)."""

    station_id: StationId
    seq: int = Field(ge=1)
    at: AwareDatetime

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Fields(_Strict):
    """An event's content, before the outbox puts it in its envelope."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    #: The event class of this content (set below each pair).
    EVENT: ClassVar[type[_Event]]


class StatusFields(_Fields):
    """`printstation.status/1`, routing key `status.<station_id>.<status>`."""

    schema_: Literal["printstation.status/1"] = Field(default=STATUS_SCHEMA, alias="schema")
    job_id: JobId
    reference: str | None = None
    status: JobStatusName
    attempt: int = Field(ge=0)
    reason: Reason | None = None
    card: CardRef | None = None


class Status(StatusFields, _Event):
    __doc__ = StatusFields.__doc__


class CardFields(_Fields):
    """`printstation.card/1`: one blank that left the feeder, whatever became of it."""

    schema_: Literal["printstation.card/1"] = Field(default=CARD_SCHEMA, alias="schema")
    card_no: int
    job_id: JobId | None
    outcome: Literal["issued", "spoiled", "test", "removed"]
    reason: str | None = None
    chip_uid: ChipUid | None = None


class CardEvent(CardFields, _Event):
    __doc__ = CardFields.__doc__


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
    """Blanks given to the station and where each one is: loaded = drawn + removed +
    in_feeder, where drawn = issued + spoiled + test and removed blanks were taken out of
    the feeder unprinted (contract v2 4b)."""

    stock: str | None
    loaded: int
    issued: int
    spoiled: int
    test: int
    removed: int = 0
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


class TelemetryFields(_Fields):
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
    #: Beyond the contract: the consumables tied with the first (all allow `cards_left`).
    run_out_together: list[str] = []
    runs_out_at: AwareDatetime | None = None
    print_rate_per_hour: float | None = None
    blanks: Blanks | None = None
    maintenance: Maintenance | None = None
    alerts: list[OpenAlert] = []
    counters: Counters
    queued_jobs: int
    #: Beyond the contract: jobs held here with their images (waiting, printing, waiting
    #: for a check, handed back), and the most it holds before the rest wait at the broker
    #: (`max_held_jobs`). None from an agent before the bound.
    held_jobs: int | None = None
    max_held_jobs: int | None = None
    #: Beyond the contract: jobs waiting for this station in its queue at the broker, as
    #: the consumer last counted them (at most `telemetry_interval` ago). None while it is
    #: not connected, or from an agent before the count.
    waiting_jobs: int | None = None


class Telemetry(TelemetryFields, _Event):
    __doc__ = TelemetryFields.__doc__


class AlertFields(_Fields):
    """`printstation.alert/1`, raised once when a condition starts and once when it clears."""

    schema_: Literal["printstation.alert/1"] = Field(default="printstation.alert/1", alias="schema")
    severity: Literal["info", "warning", "critical"]
    condition: str
    message: str
    cleared: bool = False


class Alert(AlertFields, _Event):
    __doc__ = AlertFields.__doc__


StatusFields.EVENT, CardFields.EVENT = Status, CardEvent
TelemetryFields.EVENT, AlertFields.EVENT = Telemetry, Alert


EVENT_MODELS: dict[str, type[_Event]] = {
    STATUS_SCHEMA: Status,
    CARD_SCHEMA: CardEvent,
    TELEMETRY_SCHEMA: Telemetry,
    ALERT_SCHEMA: Alert,
}


def routing_key(event: dict[str, Any] | _Event) -> str:
    """The routing key of an outbound event (a model, or its JSON), as contract 4 names it."""
    if isinstance(event, _Event):
        event = {"schema": event.schema_, "station_id": event.station_id,  # type: ignore[attr-defined]
                 "status": getattr(event, "status", None),
                 "severity": getattr(event, "severity", None)}
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
