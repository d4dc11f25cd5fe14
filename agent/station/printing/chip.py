"""The chip half of a card: whether this station can encode a job's chip, and doing it.

The printer thread owns the encoder as it owns the printer: a card is parked at the
contactless station, encoded, then printed or rejected, one card at a time, so the reader
has one user. The agent holds no chip keys: the encoder plug-in gets the job's `chip`
section and says what became of the chip; whatever it raises or returns is made into an
`EncodeResult` here, so a plug-in's failure is the card's or the station's, never a crash.
"""

from __future__ import annotations

import re

import structlog

from printstation.drivers.base import PrinterDriver
from printstation.drivers.encoder import (
    ENCODE_FAILED,
    ChipSection,
    Encoder,
    EncodeResult,
    ParkedCard,
)
from printstation.drivers.errors import EncoderError

log = structlog.get_logger("printstation.printer")

#: The reason code of a card spoiled because the station could not encode any chip.
ENCODER_FAULT = "encoder_fault"
_UID = re.compile(r"[0-9a-f]{2,64}")


class ChipStation:
    """The printer's contactless station and the encoder at it (either may be missing)."""

    def __init__(self, driver: PrinterDriver, encoder: Encoder | None):
        self.driver = driver
        self.encoder = encoder

    def cannot_encode(self, profile: str) -> str | None:
        """Why a job with a chip of `profile` cannot be made here (`no_encoder`), or None."""
        try:
            return self._cannot_encode(profile)
        except Exception as exc:  # a plug-in's `supports` failed: it cannot take the job
            log.error("encoder_supports_failed", error=type(exc).__name__)
            return f"the job's chip needs profile {profile}; this station's encoder failed " \
                   f"to say whether it takes it ({type(exc).__name__})"

    def _cannot_encode(self, profile: str) -> str | None:
        if self.encoder is None:
            return (f"the job's chip needs profile {profile}; this station has no chip "
                    "encoder (encoder_url)")
        if not type(self.driver).chip_station:
            return (f"the job's chip needs profile {profile}; this station's {self.driver.name} "
                    "printer has no contactless station")
        if not self.encoder.supports(profile):
            have = ", ".join(map(str, self.encoder.profiles)) or "none"
            return (f"the job's chip needs profile {profile}; this station's encoder "
                    f"({self.encoder.name}) has: {have}")
        return None

    def check(self) -> EncoderError | None:
        """Why no chip could be encoded now (the reader is gone), before a blank is drawn."""
        assert self.encoder is not None
        try:
            self.encoder.check()
        except EncoderError as exc:
            return EncoderError(exc.code, str(exc.detail)[:200])
        except Exception as exc:  # a plug-in's own failure: the station's, not the card's
            return EncoderError("encoder_error", type(exc).__name__)
        return None

    def encode(self, job_id: str, parked: ParkedCard, chip: ChipSection) -> EncodeResult:
        """Write the parked card's chip: its UID and success, the card's fault
        (`encode_failed`), or the station's (`encoder_fault`, the encoder raised)."""
        assert self.encoder is not None
        try:
            result = self.encoder.encode(parked, chip)
        except EncoderError as exc:
            log.error("encoder_fault", job_id=job_id, code=exc.code, error=str(exc)[:200])
            return EncodeResult(fault=ENCODER_FAULT, detail=str(exc)[:200])
        except Exception as exc:
            log.error("encoder_fault", job_id=job_id, error=type(exc).__name__)
            return EncodeResult(fault=ENCODER_FAULT, detail=f"the encoder failed "
                                                           f"({type(exc).__name__})")
        if not isinstance(result, EncodeResult):
            return EncodeResult(fault=ENCODER_FAULT, detail="the encoder gave no result")
        uid = chip_uid(result.uid)
        if result.uid is not None and uid is None:
            log.warning("chip_uid_unusable", job_id=job_id,
                        detail="the encoder's UID is not 1 to 32 bytes of hex; left out")
        # A fault is the card's (`encode_failed`) unless the encoder said it was its own.
        fault = None if result.fault is None else \
            ENCODER_FAULT if result.fault == ENCODER_FAULT else ENCODE_FAILED
        # Only a plain line of text goes on, into the log and a `failed` reason: the
        # interface asks for a step's index and a status word, never chip data.
        detail = result.detail if type(result.detail) is str else ""
        detail = "".join(c if c.isprintable() else " " for c in detail[:200])
        return EncodeResult(uid=uid, fault=fault, detail=detail)


def chip_uid(uid: object) -> str | None:
    """A UID as contract v2 spells it (lower-case hex, 1 to 32 bytes), or None."""
    if not isinstance(uid, str):
        return None
    uid = uid.lower()
    return uid if _UID.fullmatch(uid) and len(uid) % 2 == 0 else None
