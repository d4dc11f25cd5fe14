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


@pytest.mark.parametrize(("reason", "fault"), [
    ("media-jam", FaultCode.JAM),
    ("cover-open", FaultCode.COVER_OPEN),
    ("marker-supply-empty", FaultCode.RIBBON_OUT),
    ("input-tray-missing", FaultCode.FEEDER_EMPTY),
    ("media-low", None),  # a warning, not a fault
])
def test_each_reason_raised_while_a_card_prints_is_its_fault_and_clears(
        card_queue: CardQueue, tmp_path, reason, fault):
    import threading

    watcher = opened(card_queue.url, tmp_path)
    card_queue.printer.behave(reasons=[reason], delay=3)
    done = threading.Event()
    seen: list = []

    def print_one() -> None:
        try:
            job = card("JOB-REASON", two_sided=False)
            job.note_status = seen.append  # what the agent hears while it waits
            opened(card_queue.url, tmp_path).print_card(job)
        finally:
            done.set()

    threading.Thread(target=print_one, daemon=True).start()
    wait_for(lambda: any(reason in r for r in _reasons(card_queue)), 20, f"{reason} raised")
    faults = watcher.status().faults
    assert faults == (() if fault is None else (fault,)), faults
    assert done.wait(60)
    if fault is not None:
        assert any(fault in s.faults for s in seen)  # the station was told while it waited
    card_queue.printer.behave(clear="all")
    opened(card_queue.url, tmp_path).print_card(card("JOB-AFTER", two_sided=False))
    assert watcher.status().faults == ()


def _reasons(queue: CardQueue) -> list[str]:
    import cups

    attrs = cups.Connection().getPrinterAttributes(
        queue.name, requested_attributes=["printer-state-reasons"])
    value = attrs.get("printer-state-reasons")
    return [str(v) for v in (value if isinstance(value, list) else [value])]


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


def test_a_card_the_printer_gave_up_on_is_left_to_an_operator(card_queue: CardQueue,
                                                              tmp_path):
    """The printer aborts a card it had begun. CUPS ends the job canceled, and nothing in
    IPP says whether a blank was drawn or a card came out: `needs_check` (card_drawn None),
    never a resend. (In a race in CUPS's IPP backend, about one time in twelve, CUPS says
    completed instead: the driver says what CUPS says, which is why the README says a
    completed IPP job is no proof of a card.)"""
    driver = opened(card_queue.url, tmp_path)
    card_queue.printer.behave(fail=True, drawn=True)
    try:
        driver.print_card(card("JOB-FAIL", two_sided=False))
    except PrinterError as exc:
        assert exc.card_drawn is None, exc
        assert "canceled" in exc.detail and "had begun" in exc.detail
    assert [c["outcome"] for c in card_queue.printer.ledger()] in ([], ["spoiled"])


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
