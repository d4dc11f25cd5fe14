"""`sim://` as a chip encoder: writes the chip of a card parked at an in-process `sim://` printer.

It runs the `apdu-script/1` profile exactly as the PC/SC encoder does (`apdu_script`), but
reaches the simulated chip directly, so a demo or a test encodes chips with no pcscd: the
`sim://` printer names its contactless station `sim:<serial>` in `ParkedCard.reader`, and
this encoder finds that station here. A `sim://` printer with `vpcd_port` names no reader:
its chip is for a real pcscd and the `pcsc://` encoder.

Registered like any encoder, through the `printstation.encoders` entry point
(`sim = "printstation.simulator.encoder:SimChipEncoder"`); the agent knows nothing of it.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from printstation.drivers.apdu_script import (
    APDU_SCRIPT_PROFILE,
    ChipSilent,
    encode_steps,
    prepared_steps,
    script_steps,
)
from printstation.drivers.encoder import ChipSection, Encoder, EncodeResult, ParkedCard
from printstation.drivers.errors import EncoderError

if TYPE_CHECKING:
    from .printer import SimulatedPrinter

#: The contactless stations of the `sim://` printers in this process, by reader name.
_readers: dict[str, SimulatedPrinter] = {}
_readers_lock = threading.Lock()


def attach_reader(name: str, printer: SimulatedPrinter) -> None:
    """A `sim://` printer opened: its station answers at reader `name`."""
    with _readers_lock:
        _readers[name] = printer


def detach_reader(name: str, printer: SimulatedPrinter) -> None:
    with _readers_lock:
        if _readers.get(name) is printer:
            del _readers[name]


class SimChipEncoder(Encoder):
    """`sim://`: no parameters; see the module docstring."""

    name = "sim"
    profiles = (APDU_SCRIPT_PROFILE,)

    @classmethod
    def from_url(cls, url: str) -> SimChipEncoder:
        parts = urlsplit(url)
        if parts.scheme != "sim" or parts.netloc or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"encoder URL {url!r}: the simulator's encoder is plain sim://")
        return cls()

    def prepare(self, chip: ChipSection) -> ChipSection:
        return prepared_steps(chip)

    def encode(self, parked: ParkedCard, chip: ChipSection) -> EncodeResult:
        steps = script_steps(chip, self.name)
        with _readers_lock:
            printer = _readers.get(parked.reader or "")
        if printer is None:
            raise EncoderError("no_reader", f"{parked.reader!r} is not a sim:// printer's "
                               "station in this process")
        at_station = printer.parked_chip()
        if at_station is None:
            return EncodeResult.failed("no chip answered at the station (absent)")
        at_station.power()

        def transmit(apdu: bytes) -> tuple[bytes, bytes]:
            if at_station.delay:
                time.sleep(at_station.delay)  # a slow chip is slow; nothing waits on this
            answer = at_station.respond(apdu)
            if answer is None:
                raise ChipSilent
            return answer[:-2], answer[-2:]

        return encode_steps(steps, transmit)
