"""Settling, at start-up and before any job is taken, what the journal held at the last stop.

Claims never confirmed are released; a hand-back whose publication was attempted is
released without a second attempt (a second copy in the pool could be printed twice); pool
jobs not started go back to the central system, as other stations may print them sooner.
Jobs that were `printing` are settled by the printer thread, which asks the printer. The
images of jobs that ended are erased first.
"""

from __future__ import annotations

import structlog

from printstation.agent.station.journal import JobState, Journal
from printstation.agent.station.needscheck import printer_report
from printstation.drivers.base import PrinterDriver, PrinterStatus, SubmittedCard

log = structlog.get_logger("printstation.recovery")


def recover(journal: Journal) -> None:
    # A card recorded between cards leaves its images for later (`card_printed`); a stop or
    # a kill before then must not keep them on disk until the next job.
    journal.jobs.erase_finished_images()
    journal.store.checkpoint("TRUNCATE")
    for row in journal.jobs.in_states(JobState.CLAIMING):
        journal.jobs.release(row.job_id, "claim_unconfirmed",
                             "the agent stopped before the broker confirmed the claim")
    for row in journal.jobs.in_states(JobState.HANDBACK_SENDING):
        journal.handback.done(row.job_id, confirmed=False)
    for row in journal.jobs.in_states(JobState.QUEUED):
        if row.source.startswith("pool:"):
            journal.handback.hand_back(row.job_id, "the station restarted before printing it")
    log.info("recovered", held=journal.jobs.waiting())


def settle_printing(journal: Journal, status: PrinterStatus,
                    driver: PrinterDriver | None = None) -> None:
    """Jobs that were `printing` when the agent stopped. A card handed to a spooler (its
    reference journaled) is settled by what the spooler says became of it. Else by the
    printer's card counter now: unchanged, the blank never left the feeder (the job prints
    once, later, its attempt not counted; a pool job goes back to its pool, as one not
    started does); moved, nobody knows, and an operator must say (`needs_check`), shown what
    the printer said now. Never a blind reprint. A job armed behind the card in the printer
    (cards back to back) has the counter that card leaves: the one counter settles both."""
    counter = status.card_counter
    for row in journal.jobs.in_states(JobState.PRINTING):
        if row.printer_ref is not None and driver is not None:
            _settle_by_spooler(journal, row.job_id, row.printer_ref, driver)
        elif counter is not None and row.counter_before is not None \
                and counter == row.counter_before:
            journal.progress.not_started(row.job_id)
            log.info("recovered_not_printed", job_id=row.job_id)
            if row.source.startswith("pool:") and journal.handback.hand_back(
                    row.job_id, "the station restarted before printing it"):
                log.info("pool_job_handed_back", job_id=row.job_id)
        else:
            journal.progress.mark_needs_check(
                row.job_id, "the agent stopped while this card was in the printer; an "
                            "operator must say whether it came out",
                printer_report("agent_stopped", status=status))
            log.warning("recovered_needs_check", job_id=row.job_id)


def _settle_by_spooler(journal: Journal, job_id: str, ref: str, driver: PrinterDriver) -> None:
    """The spooler's word on a card it was given (`PrinterDriver.card_outcome`)."""
    try:
        said = driver.card_outcome(ref) or SubmittedCard("unknown", "the driver keeps no record")
    except Exception as exc:  # the spooler cannot be asked: nobody can say
        said = SubmittedCard("unknown", f"the spooler could not be asked ({type(exc).__name__})")
    log.info("recovered_by_spooler", job_id=job_id, ref=ref, state=said.state)
    if said.state == "printed":
        journal.progress.card_printed(job_id, None)
    elif said.state == "not_printed":
        journal.progress.back_to_queue(job_id)
    elif said.state == "spoiled":
        journal.cards.spoiled(job_id, None, "printer_fault")
        journal.progress.back_to_queue(job_id)
    else:
        journal.progress.mark_needs_check(
            job_id, f"the agent stopped while the spooler held this card ({ref}); "
                    f"{said.detail or 'it cannot say what became of it'}: an operator must "
                    "say whether it came out",
            printer_report("agent_stopped", detail=said.detail[:200]))
