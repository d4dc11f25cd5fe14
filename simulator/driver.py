"""`sim://`: the simulated printer in the same process, for demos and tests.

A plug-in like any other: the simulator registers it through the `printstation.drivers`
entry point (`sim = "printstation.simulator.driver:SimDriver"`), and the drivers know
nothing of it.

Query parameters describe the device as data (as pyvisa-sim does), for example
`sim://?print_time=0.5&cards=100&stock=ektp&ribbon=50&film=200&jam_at=3,7&clear_after=2`.
Parameters: model, serial, firmware, print_time (seconds per card), stock, cards, ribbon_type,
ribbon, film, ribbon_serial, ribbon_lot, film_serial, film_lot (what the rolls' chips
report), counter, jam_at (card counter values that jam), faults (present at start: jam,
cover_open, ribbon_out, film_out, feeder_empty, offline), clear_after (seconds after which
jams and cover faults clear themselves), render (0 to skip PNGs), chip_fault (every blank's
chip: none, absent, dead, mute, wrong, slow), chip_faults (by card counter: `3:dead,5:absent`),
chip_delay (seconds per answer of a slow chip), vpcd_port (present the parked card's chip to
vsmartcard-vpcd on that port, for a real pcscd), out (output folder; default `<state_dir>/sim`).

The printer has a contactless station: `park_card` holds a blank there, and its chip is
reached in the same process by the `sim://` chip encoder (`printstation.simulator.encoder`),
through the reader name `ParkedCard.reader` gives, or by a PC/SC encoder through vpcd.

What an operator records with `printstation load` or `unload` is done to this printer too
(`stock_changed`), so its readings and the agent's count stay one story.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from printstation.drivers.base import (
    CardJob,
    CardResult,
    FaultCode,
    Identity,
    ParkedCard,
    PrinterDriver,
    PrinterError,
    PrinterStatus,
    StockChange,
)

from .encoder import attach_reader, detach_reader
from .printer import SimParams, SimulatedPrinter, setting_value


def parse_sim_url(url: str) -> tuple[SimParams, Path | None]:
    parts = urlsplit(url)
    fields = {f.name: f for f in dataclasses.fields(SimParams)}
    values: dict[str, Any] = {}
    out: Path | None = None
    for key, raw in parse_qsl(parts.query, keep_blank_values=True):
        if key == "out":
            out = Path(raw)
            continue
        if key not in fields:
            known = ", ".join(sorted([*fields, "out"]))
            raise ValueError(f"sim:// parameter {key!r} is unknown; known: {known}")
        try:
            values[key] = setting_value(key, raw)
        except ValueError as exc:
            raise ValueError(f"sim:// parameter {key}={raw!r}: {exc}") from None
    return SimParams(**values), out


class SimDriver(PrinterDriver):
    name = "sim"
    chip_station = True
    overlaps_cards = True

    def __init__(self, printer: SimulatedPrinter):
        self.printer = printer
        #: The blank held at the contactless station, printed by the next `print_card`.
        self._parked: int | None = None
        #: The card fed and printing by itself (its number, when its printing began), which
        #: the next `print_card` waits for.
        self._fed: tuple[int, float] | None = None
        #: The reader name the in-process encoder finds this printer's station by; with
        #: vpcd, the PC/SC encoder's own reader setting names it instead.
        self.reader = None if printer.params.vpcd_port else f"sim:{printer.params.serial}"

    def open(self) -> None:
        if self.reader is not None:
            attach_reader(self.reader, self.printer)

    def close(self) -> None:
        if self.reader is not None:
            detach_reader(self.reader, self.printer)
        self.printer.close()

    @classmethod
    def from_url(cls, url: str, *, state_dir: Path) -> SimDriver:
        params, out = parse_sim_url(url)
        return cls(SimulatedPrinter(params, out or state_dir / "sim"))

    def identity(self) -> Identity:
        return self.printer.identity()

    def status(self) -> PrinterStatus:
        return self.printer.status()

    def print_card(self, card: CardJob) -> CardResult:
        fed, self._fed = self._fed, None
        if fed is not None:
            return self.printer.print_drawn(fed[0], card, started=fed[1])
        parked, self._parked = self._parked, None
        if parked is None:
            return self.printer.print_card(card)
        return self.printer.print_drawn(parked, card)

    def feed_card(self, card: CardJob) -> int:
        """The card's printing begins as its blank is drawn; `print_card` waits for it."""
        if self._parked is not None or self._fed is not None:
            raise PrinterError(FaultCode.PROTOCOL, "a card is already in the printer",
                               card_drawn=False)
        number = self.printer.draw_blank()
        self._fed = (number, time.monotonic())
        return number

    def park_card(self, card: CardJob) -> ParkedCard:
        if self._parked is not None or self._fed is not None:
            raise PrinterError(FaultCode.PROTOCOL, "a card is already at the contactless "
                               "station", card_drawn=False)
        self._parked = self.printer.park_blank()
        return ParkedCard(card_no=self._parked, reader=self.reader)

    def reject_card(self, card: CardJob) -> None:
        parked, self._parked = self._parked, None
        if parked is not None:
            self.printer.reject(parked, "rejected_by_host")

    def stock_changed(self, change: StockChange) -> None:
        """What an operator records loading or taking out is done to the simulated printer."""
        self.printer.stock_changed(change)
