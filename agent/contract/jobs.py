"""Inbound messages (central system to station): jobs, their chip section, control commands.

Every field of a job but `job_id`, `destination`, `reference`, `card_stock` and the times is
personal data: no validator echoes it.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import Annotated, Literal

from PIL import Image, UnidentifiedImageError
from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

# The apdu-script/1 parser is shared with the encoders that run it (drivers: no agent import).
from printstation.drivers.apdu_script import APDU_SCRIPT_PROFILE as APDU_SCRIPT_PROFILE
from printstation.drivers.apdu_script import ApduStep as ApduStep
from printstation.drivers.apdu_script import apdu_script

from .common import (
    ASPECT_TOLERANCE,
    CHIP_PROFILE_PATTERN,
    CR80_ASPECT,
    DESTINATION_PATTERN,
    JOB_SCHEMA,
    JOB_SCHEMA_V1,
    MAX_CHIP_BYTES,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_WIDTH,
    MIN_IMAGE_WIDTH,
    CardStock,
    JobId,
    StationId,
    _Strict,
)

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
    def _data_fits_profile(self, info: ValidationInfo) -> Chip:
        if info.context is IMAGES_CHECKED:
            return self  # a stored job: its chip data was checked when it was taken
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
