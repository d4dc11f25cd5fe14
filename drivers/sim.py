"""`sim://`: the simulated printer in the same process, for demos and tests.

Query parameters describe the device as data (as pyvisa-sim does), for example
`sim://?print_time=0.5&cards=100&stock=ektp&ribbon=50&film=200&jam_at=3,7&clear_after=2`.
Parameters: model, serial, firmware, print_time (seconds per card), stock, cards, ribbon_type,
ribbon, film, counter, jam_at (card counter values that jam), faults (present at start:
jam, cover_open, ribbon_out, film_out, feeder_empty, offline), clear_after (seconds after
which jams and cover faults clear themselves), render (0 to skip PNGs), out (output folder;
default `<state_dir>/sim`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from printstation.simulator.printer import SimParams, SimulatedPrinter

from .base import CardJob, CardResult, FaultCode, Identity, PrinterDriver, PrinterStatus


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
            values[key] = _convert(key, raw)
        except ValueError as exc:
            raise ValueError(f"sim:// parameter {key}={raw!r}: {exc}") from None
    return SimParams(**values), out


def _convert(key: str, raw: str) -> Any:
    if key in ("print_time", "clear_after"):
        value = float(raw)
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if key in ("cards", "ribbon", "film", "counter"):
        value = int(raw)
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if key == "jam_at":
        return [int(x) for x in raw.split(",") if x]
    if key == "faults":
        return [FaultCode(x) for x in raw.split(",") if x]
    if key == "render":
        return raw not in ("0", "false", "no")
    return raw


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
