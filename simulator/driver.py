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
jams and cover faults clear themselves), render (0 to skip PNGs), out (output folder;
default `<state_dir>/sim`).

What an operator records with `printstation load` or `unload` is done to this printer too
(`stock_changed`), so its readings and the agent's count stay one story.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from printstation.drivers.base import (
    CardJob,
    CardResult,
    Identity,
    PrinterDriver,
    PrinterStatus,
    StockChange,
)

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

    def __init__(self, printer: SimulatedPrinter):
        self.printer = printer

    @classmethod
    def from_url(cls, url: str, *, state_dir: Path) -> SimDriver:
        params, out = parse_sim_url(url)
        return cls(SimulatedPrinter(params, out or state_dir / "sim"))

    def identity(self) -> Identity:
        return self.printer.identity()

    def status(self) -> PrinterStatus:
        return self.printer.status()

    def print_card(self, card: CardJob) -> CardResult:
        return self.printer.print_card(card)

    def stock_changed(self, change: StockChange) -> None:
        """What an operator records loading or taking out is done to the simulated printer."""
        self.printer.stock_changed(change)
