"""A printer driver that lives outside printstation, found only through its entry point.

It proves the driver interface is pluggable: `testprinter://NAME` prints into a list that
tests can read, and the agent uses it without knowing it exists.
"""

from __future__ import annotations

from pathlib import Path

from printstation.drivers.base import (
    CardJob,
    CardResult,
    Identity,
    PrinterDriver,
    PrinterStatus,
)

PRINTED: dict[str, list[str | None]] = {}


class TestPrinterDriver(PrinterDriver):
    name = "testprinter"

    def __init__(self, name: str):
        self.printer_name = name
        self.counter = 0
        PRINTED.setdefault(name, [])

    @classmethod
    def from_url(cls, url: str, *, state_dir: Path) -> TestPrinterDriver:
        return cls(url.partition("://")[2] or "default")

    def identity(self) -> Identity:
        return Identity(driver="testprinter", model="Plug-in Test Printer",
                        serial=self.printer_name, firmware="0.1")

    def status(self) -> PrinterStatus:
        return PrinterStatus(state="ready", card_counter=self.counter, card_stock="ektp")

    def print_card(self, card: CardJob) -> CardResult:
        self.counter += 1
        PRINTED[self.printer_name].append(card.job_id)
        return CardResult(counter=self.counter)
