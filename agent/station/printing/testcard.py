"""The operator's test card: colour bars, a grey ramp and fine lines; no personal data.

It prints between jobs, waits for stock and for a refusal like any card, and counts in the
ledger as `test` (spoiled, if the printer spoils it).
"""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

import structlog
from PIL import Image, ImageDraw, ImageFont

from printstation.agent import contract
from printstation.drivers.base import CardJob, PrinterError, PrinterStatus
from printstation.drivers.panels import prepare_side

if TYPE_CHECKING:
    from .worker import PrinterWorker

log = structlog.get_logger("printstation.printer")


def test_card_png(station_id: str, at: datetime) -> bytes:
    """The test card's image: colour bars, a grey ramp, fine lines, the station and time."""
    img = Image.new("RGB", (1016, 648), "white")
    draw = ImageDraw.Draw(img)
    bars = [(255, 255, 0), (255, 0, 255), (0, 255, 255), (255, 0, 0), (0, 255, 0),
            (0, 0, 255), (0, 0, 0)]
    for i, colour in enumerate(bars):
        draw.rectangle([40 + i * 134, 40, 40 + (i + 1) * 134 - 8, 220], fill=colour)
    for x in range(936):
        level = 255 - x * 255 // 935
        draw.line([40 + x, 250, 40 + x, 330], fill=(level, level, level))
    for i in range(0, 936, 6):
        draw.line([40 + i, 360, 40 + i, 420], fill="black", width=1)
    draw.text((40, 450), "TEST CARD", fill="black", font=ImageFont.load_default(size=64))
    draw.text((40, 540), f"{station_id}  {at:%Y-%m-%d %H:%M}", fill="black",
              font=ImageFont.load_default(size=32))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def print_test_card(worker: PrinterWorker, status: PrinterStatus, who: str) -> None:
    """Print one test card on the printer thread (the worker's own)."""
    journal = worker.journal
    use = worker.stock_for(status, worker.loaded_stock(), 1, "test card")
    if use is None:
        worker.tests.put(who)  # it waits for stock like any card
        return
    journal.store.sync()  # a test card has no `printing` commit to carry the last fsync
    png = test_card_png(journal.store.station_id, contract.now())
    card = CardJob(job_id=None, front=prepare_side(png, None, True, worker.driver.native_size))
    worker.update(current_job="test card")
    try:
        result = worker.driver.print_card(card)
    except PrinterError as exc:
        log.warning("test_card_fault", fault=exc.fault.value, by=who)
        if exc.card_drawn is False:
            worker.tests.put(who)  # refused: it waits like any card
            worker.update(current_job=None)
            worker.refused(exc, None)
            return
        worker.refusals.cleared()
        worker.settle(partial(journal.cards.spoiled, None, exc.counter,
                              f"test card: {exc.fault.value}", replace(use, ribbon=0, film=0)))
        worker.update(current_job=None, error=exc.detail)
        return
    worker.refusals.cleared()
    worker.settle(partial(journal.cards.test, result.counter, use, who))
    log.info("test_card_printed", by=who, counter=result.counter)
