"""What every message of the contract shares: schema names, patterns, limits, reasons.

The models are strict on purpose: the central system is written by others, and a message
that does not follow the contract must be refused with a precise reason, never guessed at.
Validation errors become reasons with `describe_errors`, which never echoes the offending
input, because a job's input is personal data.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
