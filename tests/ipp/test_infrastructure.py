"""The ipp tier's real components, checked before any driver runs on them: a card submitted
the way the `ipp://` driver submits it (pycups: create-job, then one two-page PDF) reaches
the simulated card printer through a real cupsd; and what CUPS shows of the printer (job
states, printer-state-reasons, markers, its job history across restarts) is what the
driver will read. Each test names what it found where, with timings (shown with -s).
"""

from __future__ import annotations

import io
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cups
import pytest
from PIL import Image

from tests.ipp.conftest import CardQueue
from tests.support import wait_for
from tests.support.cups import (
    ABORTED,
    CANCELED,
    CARD_MEDIA,
    COMPLETED,
    PENDING,
    PRINTER_PROCESSING,
    PROCESSING,
    CardPrinter,
    Cupsd,
)

FRONT, BACK = (20, 40, 160), (170, 20, 20)


def card_pdf() -> bytes:
    """One card as the driver sends it: a two-page PDF (front, back), 1016x648 px pages at
    300 dpi (CR80), made with Pillow."""
    pages = [Image.new("RGB", (1016, 648), colour) for colour in (FRONT, BACK)]
    out = io.BytesIO()
    pages[0].save(out, "PDF", resolution=300, save_all=True, append_images=pages[1:])
    return out.getvalue()


def submit(cupsd: Cupsd, queue: str, job_name: str, document: bytes | None = None) -> int:
    """Create-job then send-document, as the driver does with pycups; the CUPS job id."""
    cups.setServer(cupsd.server)
    conn = cups.Connection()
    job_id = conn.createJob(queue, job_name, {"media": CARD_MEDIA})
    data = document if document is not None else card_pdf()
    conn.startDocument(queue, job_id, "card.pdf", "application/pdf", 1)
    conn.writeRequestData(data, len(data))
    conn.finishDocument(queue)
    return int(job_id)


def job(cupsd: Cupsd, job_id: int, *names: str) -> dict[str, Any]:
    return cupsd.connection().getJobAttributes(job_id, requested_attributes=list(names))


def reasons(cupsd: Cupsd, queue: str) -> list[str]:
    return list(cupsd.queue_attributes(queue, "printer-state-reasons")["printer-state-reasons"])


def report(what: str, seconds: float) -> None:
    print(f"\n[timing] {what}: {seconds:.2f} s")


def colour_near(pixel: tuple[int, ...], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 24 for a, b in zip(pixel[:3], colour, strict=True))


def test_a_card_reaches_the_printer_through_cups(cupsd: Cupsd, card_queue: CardQueue) -> None:
    started = time.monotonic()
    job_id = submit(cupsd, card_queue.name, "JOB-1")
    assert cupsd.wait_job_state(job_id) == COMPLETED
    report("submit -> completed through CUPS", time.monotonic() - started)

    [card] = card_queue.printer.ledger()
    assert card["job_name"] == "JOB-1"
    assert (card["card_no"], card["pages"], card["outcome"], card["reason"]) == (1, 2, "issued",
                                                                                   None)
    out = card_queue.printer.out
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    front, back = (out / name for name in card["png"])
    for page in (front, back):
        assert stat.S_IMODE(page.stat().st_mode) == 0o600
    # One document with both pages, each fitted to the portrait 54x86 mm card by pdftopdf:
    # the landscape card arrives turned a quarter (638x1016 at 300 dpi).
    with Image.open(front) as image:
        assert abs(image.width - 638) <= 2 and abs(image.height - 1016) <= 2
        assert colour_near(image.getpixel((image.width // 2, image.height // 2)), FRONT)
    with Image.open(back) as image:
        assert colour_near(image.getpixel((image.width // 2, image.height // 2)), BACK)
    assert card_queue.url == f"ipp://127.0.0.1:{cupsd.port}/printers/{card_queue.name}"


def test_create_job_needs_the_server_set_in_the_same_thread(cupsd: Cupsd,
                                                            card_queue: CardQueue) -> None:
    """libcups keeps its server per thread; pycups' createJob on Connection(host, port) in a
    thread that did not call cups.setServer treats cupsd as the printer itself (it sends
    the queue's device URI) and fails with client-error-not-found. The driver sets the
    server in its printer thread."""
    failure: list[BaseException] = []

    def other_thread() -> None:
        conn = cups.Connection(host="127.0.0.1", port=cupsd.port)
        try:
            conn.createJob(card_queue.name, "JOB-T", {"media": CARD_MEDIA})
        except cups.IPPError as error:
            failure.append(error)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(30)
    assert [error.args[0] for error in failure] == [cups.IPP_NOT_FOUND]
    assert card_queue.printer.ledger() == []


def test_the_card_counter_survives_a_printer_restart(cupsd: Cupsd,
                                                     card_queue: CardQueue) -> None:
    printer = card_queue.printer
    assert cupsd.wait_job_state(submit(cupsd, card_queue.name, "JOB-1")) == COMPLETED
    printer.stop()
    printer.start()
    assert cupsd.wait_job_state(submit(cupsd, card_queue.name, "JOB-2")) == COMPLETED
    cards = printer.ledger()
    assert [(c["card_no"], c["job_name"]) for c in cards] == [(1, "JOB-1"), (2, "JOB-2")]
    # ippeveprinter's own job ids start again at 1: they name nothing across its restarts.
    assert [c["ipp_job_id"] for c in cards] == [1, 1]


#: How CUPS ends a job the printer aborted: canceled ("Print job canceled at printer."), but
#: about one time in twelve completed. CUPS 2.4's IPP backend (backend/ipp.c, also its
#: master) polls the printer's job from two threads; only the monitor thread turns an
#: aborted remote job into a canceled one, and when the main loop sees the end first the
#: backend exits 0. A CUPS "completed" says the job left CUPS, not that a card came out.
ENDED_AFTER_A_FAILURE = (CANCELED, ABORTED, COMPLETED)


def test_a_failed_print_ends_the_job(cupsd: Cupsd, card_queue: CardQueue) -> None:
    printer = card_queue.printer
    printer.behave(fail=True)
    printer.behave(fail="media-jam", drawn=True)
    undrawn = submit(cupsd, card_queue.name, "JOB-1")
    state = cupsd.wait_job_state(undrawn)
    assert state in ENDED_AFTER_A_FAILURE
    message = job(cupsd, undrawn, "job-printer-state-message")["job-printer-state-message"]
    print(f"\n[found] a print command exiting 1: CUPS job-state {state}, message {message!r}")
    assert printer.ledger() == []

    drawn = submit(cupsd, card_queue.name, "JOB-2")
    assert cupsd.wait_job_state(drawn) in ENDED_AFTER_A_FAILURE
    [card] = printer.ledger()
    assert (card["job_name"], card["outcome"], card["reason"], card["pages"], card["png"]) == (
        "JOB-2", "spoiled", "media-jam", 0, [])
    # The queue goes on: the next card prints.
    assert cupsd.wait_job_state(submit(cupsd, card_queue.name, "JOB-3")) == COMPLETED
    assert [c["outcome"] for c in printer.ledger()] == ["spoiled", "issued"]


def test_a_state_reason_shows_at_the_queue_while_and_after_the_job(
        cupsd: Cupsd, card_queue: CardQueue) -> None:
    """ippeveprinter suffixes its reasons by its state (-warning while processing, -report
    when idle) and CUPS's IPP backend passes them on as they are, only while a job runs:
    the queue keeps the last ones it saw after the job, until a later job sees them gone."""
    printer, queue = card_queue.printer, card_queue.name
    printer.behave(reasons=["media-jam"], delay=4)
    started = time.monotonic()
    job_id = submit(cupsd, queue, "JOB-1")
    wait_for(lambda: "media-jam-warning" in reasons(cupsd, queue), 15,
             "media-jam-warning at the queue")
    report("media-jam raised by the printer -> shown at the queue", time.monotonic() - started)
    assert cupsd.job_state(job_id) == PROCESSING
    assert "media-jam-warning" in printer.attributes("printer-state-reasons")[
        "printer-state-reasons"]

    assert cupsd.wait_job_state(job_id) == COMPLETED
    assert "media-jam-report" in reasons(cupsd, queue)
    assert printer.attributes("printer-state-reasons")["printer-state-reasons"] == [
        "media-jam-report"]

    printer.behave(clear=["media-jam"])
    assert cupsd.wait_job_state(submit(cupsd, queue, "JOB-2")) == COMPLETED
    assert not [r for r in reasons(cupsd, queue) if r.startswith("media-jam")]
    assert printer.attributes("printer-state-reasons")["printer-state-reasons"] == ["none"]


def test_markers_show_at_the_queue(cupsd: Cupsd, card_queue: CardQueue) -> None:
    printer, queue = card_queue.printer, card_queue.name
    names = ("marker-names", "marker-levels", "marker-types", "marker-colors")
    assert not set(names) & set(cupsd.queue_attributes(queue, *names))
    printer.behave(markers={"names": ["Ribbon YMCKO", "Retransfer film"], "levels": [73, -2],
                            "types": ["ink-ribbon", "transfer-unit"],
                            "colors": ["#00FFFF", "none"]})
    assert cupsd.wait_job_state(submit(cupsd, queue, "JOB-1")) == COMPLETED
    assert cupsd.queue_attributes(queue, *names) == {
        "marker-names": ["Ribbon YMCKO", "Retransfer film"], "marker-levels": [73, -2],
        "marker-types": ["ink-ribbon", "transfer-unit"], "marker-colors": ["#00FFFF", "none"]}


def test_an_empty_feeder_holds_the_job_until_cards_are_loaded(
        cupsd: Cupsd, card_queue: CardQueue) -> None:
    printer, queue = card_queue.printer, card_queue.name
    printer.set_feeder(0)
    assert printer.attributes("printer-state-reasons")["printer-state-reasons"] == [
        "media-empty-report"]
    job_id = submit(cupsd, queue, "JOB-1")
    wait_for(lambda: {"media-empty-warning", "media-needed-warning"} <= set(
        reasons(cupsd, queue)), 15, "media-empty and media-needed at the queue")
    assert cupsd.job_state(job_id) == PROCESSING
    assert printer.ledger() == []
    loaded = time.monotonic()
    printer.set_feeder(100)
    assert cupsd.wait_job_state(job_id) == COMPLETED
    report("cards loaded -> the waiting job completed", time.monotonic() - loaded)
    assert [c["job_name"] for c in printer.ledger()] == ["JOB-1"]
    assert not [r for r in reasons(cupsd, queue) if r.startswith("media-")]


def test_an_unreachable_printer_shows_only_in_the_message(cupsd: Cupsd,
                                                          card_queue: CardQueue) -> None:
    """No `offline` reason: CUPS's backend retries and says so in printer-state-message."""
    printer, queue = card_queue.printer, card_queue.name
    printer.stop()
    job_id = submit(cupsd, queue, "JOB-1")

    def unreachable() -> dict[str, Any] | None:
        attrs = cupsd.queue_attributes(queue, "printer-state", "printer-state-message",
                                       "printer-state-reasons")
        return attrs if "unavailable" in attrs["printer-state-message"] else None

    attrs = wait_for(unreachable, 15, "the queue to say the printer is unavailable")
    print(f"\n[found] printer off: queue {attrs}")
    assert attrs["printer-state"] == PRINTER_PROCESSING
    assert not [r for r in attrs["printer-state-reasons"] if r.startswith("offline")]
    assert cupsd.job_state(job_id) == PROCESSING
    back = time.monotonic()
    printer.start()
    assert cupsd.wait_job_state(job_id, timeout=60) == COMPLETED
    report("printer back -> the retried job completed", time.monotonic() - back)
    assert [c["job_name"] for c in printer.ledger()] == ["JOB-1"]


def test_cups_keeps_the_job_history_across_its_orderly_restart(
        cupsd: Cupsd, card_queue: CardQueue) -> None:
    job_id = submit(cupsd, card_queue.name, "JOB-1")
    assert cupsd.wait_job_state(job_id) == COMPLETED
    before = job(cupsd, job_id, "job-uuid")["job-uuid"]
    cupsd.stop()
    cupsd.start()
    assert cupsd.job_state(job_id) == COMPLETED
    assert job(cupsd, job_id, "job-uuid")["job-uuid"] == before
    # job-name is one of CUPS's private job values: an unauthenticated client never sees it.
    assert "job-name" not in job(cupsd, job_id, "job-name", "job-state")


def _queue_of_its_own(own_cupsd: Callable[[], Cupsd],
                      tmp_path: Path) -> tuple[Cupsd, CardPrinter]:
    daemon = own_cupsd()
    printer = CardPrinter(tmp_path / "card-printer")
    daemon.add_queue("card", printer)
    daemon.restart()   # the queue on disk, as a station's long-standing queue is
    return daemon, printer


def test_a_killed_cupsd_forgets_recent_jobs_and_gives_their_ids_again(
        own_cupsd: Callable[[], Cupsd], tmp_path: Path) -> None:
    """cupsd writes a job's control file up to 30 s (DirtyCleanInterval) after it changes:
    killed before that, it comes back without the job, and the next job gets its id. A
    journaled job id is checked against job-uuid before it is believed."""
    daemon, printer = _queue_of_its_own(own_cupsd, tmp_path)
    try:
        first = submit(daemon, "card", "JOB-1")
        assert daemon.wait_job_state(first) == COMPLETED
        first_uuid = job(daemon, first, "job-uuid")["job-uuid"]
        daemon.kill()
        daemon.start()
        with pytest.raises(cups.IPPError) as gone:
            daemon.job_state(first)
        assert gone.value.args[0] == cups.IPP_NOT_FOUND
        second = submit(daemon, "card", "JOB-2")
        assert second == first
        assert job(daemon, second, "job-uuid")["job-uuid"] != first_uuid
        assert daemon.wait_job_state(second) == COMPLETED
        # The printer printed both: CUPS forgot a card that exists.
        assert [c["job_name"] for c in printer.ledger()] == ["JOB-1", "JOB-2"]
    finally:
        printer.stop()


def test_an_orderly_cupsd_stop_mid_job_leaves_it_pending_without_its_document(
        own_cupsd: Callable[[], Cupsd], tmp_path: Path) -> None:
    """Stopped while the printer prints the card, cupsd comes back with the job pending
    (job-printing), no document, never sent again: the card printed once, CUPS never says
    so."""
    daemon, printer = _queue_of_its_own(own_cupsd, tmp_path)
    try:
        printer.behave(delay=3)
        job_id = submit(daemon, "card", "JOB-1")
        wait_for(lambda: printer.attributes("printer-state")["printer-state"] == PRINTER_PROCESSING,
                 15, "the printer to be printing the card")
        daemon.stop()
        daemon.start()
        wait_for(lambda: [c["job_name"] for c in printer.ledger()] == ["JOB-1"], 15,
                 "the printer to finish the card")
        later = submit(daemon, "card", "JOB-2")
        assert daemon.wait_job_state(later) == COMPLETED
        attrs = job(daemon, job_id, "job-state", "job-state-reasons", "number-of-documents")
        assert (attrs["job-state"], attrs["job-state-reasons"],
                attrs["number-of-documents"]) == (PENDING, "job-printing", 0)
        assert [c["job_name"] for c in printer.ledger()] == ["JOB-1", "JOB-2"]
    finally:
        printer.stop()
