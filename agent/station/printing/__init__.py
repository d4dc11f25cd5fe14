"""The printer thread and what it needs: the card ahead, held refusals, its snapshot.

    worker     the thread that owns the driver: one job at a time, its outcome journaled
    cards      a stored job made into the card the printer is sent, ahead of its turn
    refusal    a card the printer refused without drawing a blank, held as its fault
    outcome    a card's outcome recorded before the next blank is drawn
    snapshot   what the rest of the agent knows of the printer, without touching it
    testcard   the operator's test card (no personal data)
"""

from .cards import build_card
from .snapshot import PrinterSnapshot
from .worker import PrinterWorker

__all__ = ["PrinterSnapshot", "PrinterWorker", "build_card"]
