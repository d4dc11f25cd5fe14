"""The `ipp://` driver against the real cupsd and ippeveprinter (tests/support/cups.py).

Each test drives the driver as the agent's printer thread does, on this thread (libcups
keeps its server per thread), and checks what the card printer's own ledger says.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from printstation.agent.central.samples import sample_job
from printstation.agent.station.journal import JobRow
from printstation.agent.station.printing.cards import build_card
from printstation.drivers.base import FaultCode, PrinterError
from printstation.drivers.ipp.driver import IppDriver
from printstation.drivers.registry import open_driver
from tests.ipp.conftest import CardQueue
from tests.support import wait_for


def card(job_id: str, two_sided: bool = True):
    import json

    body = sample_job(job_id, two_sided=two_sided, destination="station.s1").body
    row = JobRow(job_id, None, "ektp", "station", "queued", 0, 2, None,
                 json.dumps(body).encode(), None, None, None)
    return build_card(row, IppDriver.native_size)


def opened(url: str, tmp_path: Path) -> IppDriver:
    driver = open_driver(url, state_dir=tmp_path)
    assert isinstance(driver, IppDriver)
    driver.open()
    return driver


def test_a_card_is_one_two_page_job_named_by_its_job_id(card_queue: CardQueue, tmp_path):
    driver = opened(card_queue.url, tmp_path)
    refs: list[str] = []
    job = driver.prepare(card("JOB-IPP-1"))
    job.note_submitted = refs.append
    result = driver.print_card(job)
    assert result.counter is None  # IPP carries no card counter
    [line] = card_queue.printer.ledger()
    assert (line["job_name"], line["pages"], line["outcome"]) == ("JOB-IPP-1", 2, "issued")
    assert all((card_queue.printer.out / png).exists() for png in line["png"])
    [ref] = refs
    job_id, uuid = ref.split(" ")
    assert job_id.isdigit() and uuid.startswith("urn:uuid:")
    # What the agent asks at start-up about a card it journaled.
    assert driver.card_outcome(ref).state == "printed"


def test_identity_state_and_details_come_from_the_queue(card_queue: CardQueue, tmp_path):
    driver = opened(card_queue.url, tmp_path)
    ident = driver.identity()
    assert ident.driver == "ipp" and ident.model
    status = driver.status()
    assert (status.state, status.faults, status.card_counter) == ("ready", (), None)
    details = driver.details()
    assert details["printer-state"] == "idle" and "printer-state-reasons" in details


def test_a_jam_while_a_card_prints_is_a_jam_fault_and_clears(card_queue: CardQueue,
                                                             tmp_path):
    watcher = opened(card_queue.url, tmp_path)
    card_queue.printer.behave(reasons=["media-jam"], delay=4)
    import threading

    done = threading.Event()

    def print_one() -> None:
        try:
            opened(card_queue.url, tmp_path).print_card(card("JOB-JAM", two_sided=False))
        finally:
            done.set()

    threading.Thread(target=print_one, daemon=True).start()
    seen = wait_for(lambda: FaultCode.JAM in watcher.status().faults, 20, "the jam to show")
    assert seen
    assert done.wait(60)
    card_queue.printer.behave(clear="all")
    opened(card_queue.url, tmp_path).print_card(card("JOB-AFTER", two_sided=False))
    assert watcher.status().faults == ()


def test_markers_are_ribbon_and_film_levels_read_from_the_printer(card_queue: CardQueue,
                                                                   tmp_path):
    url = card_queue.url + "?ribbon_prints=250&film_panels=500"
    driver = opened(url, tmp_path)
    card_queue.printer.behave(markers={"names": ["YMCKO Ribbon", "Retransfer Film"],
                                       "levels": [40, -3],
                                       "types": ["ink-ribbon", "transfer-unit"]})
    driver.print_card(card("JOB-MARK", two_sided=False))
    levels = {c.kind: c for c in wait_for(lambda: driver.status().consumables, 20, "levels")}
    assert (levels["ribbon"].remaining, levels["ribbon"].capacity) == (100, 250)
    assert (levels["film"].remaining, levels["film"].capacity) == (None, 500)
    assert all(c.source == "printer" for c in levels.values())
    assert "YMCKO Ribbon 40%" in driver.details()["markers"]


def test_a_print_the_printer_fails_is_not_printed_and_held_as_a_refusal(
        card_queue: CardQueue, tmp_path):
    """The printer aborts the card. CUPS ends the job canceled: not printed, and the card
    waits to be tried again (no attempt used, as IPP cannot say whether a blank was drawn).
    Or, in a race in CUPS's IPP backend (about one time in twelve), completed: the driver
    says what CUPS says, which is why the README says a completed IPP job is no proof."""
    driver = opened(card_queue.url, tmp_path)
    card_queue.printer.behave(fail=True, drawn=False)
    try:
        driver.print_card(card("JOB-FAIL", two_sided=False))
    except PrinterError as exc:
        assert exc.card_drawn is False, exc
        assert "canceled" in exc.detail or "aborted" in exc.detail
        assert "canceled at printer" in exc.detail.lower() or "aborted" in exc.detail
    assert [c["outcome"] for c in card_queue.printer.ledger()] == []


def test_a_job_cups_never_knew_is_unknown(card_queue: CardQueue, tmp_path):
    driver = opened(card_queue.url + "?print_timeout=2", tmp_path)
    said = driver.card_outcome("99999 urn:uuid:00000000-0000-0000-0000-000000000000")
    assert said.state == "unknown" and "no longer knows" in said.detail


def test_a_stopped_queue_refuses_the_card_without_drawing_a_blank(
        cupsd, card_queue: CardQueue, tmp_path):
    import subprocess

    subprocess.run(["cupsreject", "-h", cupsd.server, card_queue.name], check=True,
                   capture_output=True)
    driver = opened(card_queue.url, tmp_path)
    assert FaultCode.OFFLINE in driver.status().faults
    with pytest.raises(PrinterError) as info:
        driver.print_card(card("JOB-REJECTED", two_sided=False))
    assert info.value.card_drawn is False
    assert card_queue.printer.ledger() == []
