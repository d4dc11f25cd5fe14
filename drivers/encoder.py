"""The one interface every chip encoder implements.

An encoder personalises the contactless chip of a card the printer has parked at its
encoding station, then hands the card back to the printer, which prints it or rejects it.
Printing and encoding are separate plug-ins because they are separate devices: a PC/SC
reader inside the printer, or a programme's own encoder that talks to its SAM. The agent
holds no chip keys; it passes the job's `chip` section (contract v2 §3) to the encoder
through and reports what comes back.

An encoder is an `Encoder` subclass, found by the scheme of the station's `encoder_url`
through the entry-point group `printstation.encoders` (see `encoders`), whichever package
installs it. It says which chip `profiles` it knows; `encode` gets the parked card (the
reader it is at, the station's number of that card) and the chip section, and returns the
chip's UID and success, or a fault (`encode_failed`: the card is spoiled) whose `detail`
names the step, never chip data. An `EncoderError` is for a station that cannot encode any
card (no reader, no library): the card is not to blame. Below is a complete one, for a
"chip" that keeps what it is given in a dict. Put it in a package of its own, say
`dictencoder/__init__.py`::

    from printstation.drivers.encoder import (
        ChipSection,
        Encoder,
        EncodeResult,
        ParkedCard,
    )


    class DictEncoder(Encoder):
        "dict://: writes each card's chip data into `written`, keyed by a made-up UID."

        name = "dict"
        profiles = ("blob/1",)

        def __init__(self) -> None:
            self.written: dict[str, bytes] = {}

        @classmethod
        def from_url(cls, url: str) -> "DictEncoder":
            return cls()

        def encode(self, parked: ParkedCard, chip: ChipSection) -> EncodeResult:
            uid = f"{parked.card_no:08X}"
            if not chip.data:
                return EncodeResult.failed("empty blob", uid=uid)
            self.written[uid] = chip.data
            return EncodeResult(uid=uid)

and register it in that package's `pyproject.toml`, for encoder URLs `dict://...`::

    [project.entry-points."printstation.encoders"]
    dict = "dictencoder:DictEncoder"

`prepare`, `check` and `close` are optional hooks. `pcsc://`
(`printstation.drivers.pcsc_encoder`, for PC/SC readers through pcscd) is an encoder
registered this way too, and `tests/plugins/` holds one the tests install.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar

# The errors encoders raise, part of this interface; they live with the other errors.
from .errors import EncoderError as EncoderError

#: The reason code of a card whose chip was absent, unreadable or answered wrong (contract
#: v2 §4): that card is spoiled, and the job goes on with a new blank.
ENCODE_FAILED = "encode_failed"


@dataclass(frozen=True)
class ParkedCard:
    """A card the printer holds at its contactless station, ready for its chip to be written.

    `reader` is the reader the printer reports for that station, or None when it cannot
    tell (the encoder then uses the one its URL names); `card_no` is the station's running
    number of this physical card, for the encoder's own records.
    """

    card_no: int
    reader: str | None = None


@dataclass(frozen=True)
class ChipSection:
    """A job's `chip` section (contract v2 §3): the profile's name and its decoded data.

    `data` is personal data: it is kept out of `repr`, so it cannot reach a log by accident.
    """

    profile: str
    data: bytes = field(repr=False)
    #: What the encoder's `prepare` made of `data` ahead of the card's turn; only that
    #: encoder reads it.
    prepared: object | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class EncodeResult:
    """What became of one card's chip: `uid` (hex) when it was read, and the fault if any.

    `fault` None is success. `detail` says for people which step failed (by index: never the
    chip's data or its answers).
    """

    uid: str | None = None
    fault: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.fault is None

    @classmethod
    def failed(cls, detail: str, *, uid: str | None = None) -> EncodeResult:
        """A chip that could not be encoded: the card is spoiled (`encode_failed`)."""
        return cls(uid=uid, fault=ENCODE_FAILED, detail=detail)


class Encoder(abc.ABC):
    """A chip encoder, found by its URL scheme; see the module's docstring for a complete one."""

    #: The URL scheme it is registered under (`pcsc`), for messages.
    name: ClassVar[str] = "encoder"
    #: The chip profiles (contract v2 §3 `chip.profile`) it can write, e.g. `apdu-script/1`.
    profiles: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str) -> Encoder:
        """Build the encoder from its URL; ValueError naming what in the URL is wrong."""

    def supports(self, profile: str) -> bool:
        """Whether a job with this chip profile can be encoded here (else `no_encoder`)."""
        return profile in self.profiles

    @abc.abstractmethod
    def encode(self, parked: ParkedCard, chip: ChipSection) -> EncodeResult:
        """Write the parked card's chip; a chip fault is a result, a station fault raises
        `EncoderError`."""

    def prepare(self, chip: ChipSection) -> ChipSection:
        """Turn the chip section into what `encode` needs (parse a script), ahead of its turn.

        Runs on the agent's card-preparation thread while another card prints, as a printer
        driver's `prepare` does, so a parked card waits only for the chip itself; it must not
        touch the reader. Whatever goes wrong here is left for `encode` to find. The default
        leaves the section as it is.
        """
        return chip

    def check(self) -> None:  # noqa: B027 - optional hook
        """Raise `EncoderError` if no card could be encoded now (the reader is gone, pcscd is
        down). Asked before each chip card's blank is drawn, so a broken station holds the
        card instead of spoiling blanks; the default trusts the encoder."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the reader or whatever the encoder holds; called once, at shutdown."""
