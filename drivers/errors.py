"""Every error printstation raises on purpose, under one root.

As in pyvisa's `errors.py`, one root class is the parent of every error, and each error
carries a `code`: a short stable word that says what went wrong, for logs, events and
tests, while the message says it for people. A class sets its default code; an instance
may be given another (a `PrinterError`'s code is its fault code, such as `jam`).

The root lives here because the drivers are the lowest layer, which every other part of
printstation imports: the agent puts its own errors beneath the same root by importing
`printstation.drivers.errors.PrintstationError`, so `except PrintstationError` catches
whatever printstation raised, from any layer. This module imports nothing of printstation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import FaultCode


class PrintstationError(Exception):
    """The root of every printstation error; `code` says which, in one word."""

    code: str = "printstation_error"

    def __init__(self, *args: object, code: str | None = None) -> None:
        super().__init__(*args)
        if code is not None:
            self.code = code


class PrinterError(PrintstationError):
    """The printer could not finish; `card_drawn` says whether a blank left the feeder.

    `card_drawn=None` means the driver cannot know (the link broke while the card was in
    the printer, which may still finish it): the agent must not guess either way. The
    error's code is the fault's value (`jam`, `cover_open`, ...).
    """

    code = "printer_error"

    def __init__(self, fault: FaultCode, detail: str, *, card_drawn: bool | None = False,
                 counter: int | None = None):
        super().__init__(f"{fault.value}: {detail}", code=fault.value)
        self.fault = fault
        self.detail = detail
        self.card_drawn = card_drawn
        self.counter = counter


class TransportError(PrintstationError):
    """The printer cannot be reached or stopped answering; `reason` says why, for people."""

    code = "transport_error"

    def __init__(self, reason: str, *, code: str | None = None):
        super().__init__(reason, code=code)
        self.reason = reason


class ReplyTimeout(TransportError):
    """The printer sent no complete reply in time (nothing, or only part of one)."""

    code = "reply_timeout"


class DriverNotFound(PrintstationError, LookupError):
    """No installed driver takes the printer URL's scheme, or its entry point is not one."""

    code = "driver_not_found"


class EncoderError(PrintstationError):
    """The chip encoder itself cannot work (not this card's chip): built from its code.

    As pyvisa's `VisaIOError` is built from a status code whose meaning it looks up, an
    `EncoderError` is built from one of `MEANINGS`' codes; the message is that meaning,
    then `detail` (a reader's name, a library's install line: never chip data). A card
    whose chip fails is not an error but an `EncodeResult` with a fault: the card is spoiled,
    while an `EncoderError` means no card can be encoded until someone fixes the station.
    """

    code = "encoder_error"
    MEANINGS: dict[str, str] = {
        "encoder_error": "the chip encoder failed",
        "library_missing": "a library the chip encoder needs is not installed",
        "pcsc_unavailable": "the PC/SC service (pcscd) cannot be reached",
        "no_reader": "the chip reader is not connected",
        "reader_ambiguous": "more than one chip reader is connected and none is named",
        "no_encoder": "no chip encoder here takes this profile",
        "bad_chip_data": "the job's chip data does not fit its profile",
        "bad_url": "the encoder URL cannot be read",
    }

    def __init__(self, code: str, detail: str = ""):
        meaning = self.MEANINGS.get(code, self.MEANINGS["encoder_error"])
        super().__init__(f"{meaning}: {detail}" if detail else meaning, code=code)
        self.detail = detail


class EncoderNotFound(PrintstationError, LookupError):
    """No installed encoder takes the encoder URL's scheme, or its entry point is not one."""

    code = "encoder_not_found"
