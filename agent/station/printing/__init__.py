"""The printer thread and what it needs: the card ahead, held refusals, its snapshot.

    worker     the thread that owns the driver: one job at a time, its outcome journaled
    cards      a stored job made into the card the printer is sent, ahead of its turn
    refusal    a card the printer refused without drawing a blank, held as its fault
    snapshot   what the rest of the agent knows of the printer, without touching it
"""

from .cards import build_card
from .snapshot import PrinterSnapshot
from .worker import PrinterWorker

__all__ = ["PrinterSnapshot", "PrinterWorker", "build_card"]
