"""What the rest of the agent knows of the printer, without touching it."""

from __future__ import annotations

from dataclasses import dataclass, field

from printstation.drivers.base import Identity, PrinterStatus


@dataclass
class PrinterSnapshot:
    """Replaced whole by the printer thread; read by everyone else."""

    identity: Identity | None = None
    status: PrinterStatus = field(default_factory=lambda: PrinterStatus(state="offline"))
    current_job: str | None = None
    error: str | None = None
    #: Why the next job waits for stock ("ribbon short: 1 print left, ..."), if it does.
    shortage: str | None = None
    updated: float = 0.0
