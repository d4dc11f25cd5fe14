"""Start-up after a crash, for a card handed to a spooler (an IPP job): its reference is
journaled before the card is sent, and recovery asks the spooler what became of it before
anything else; the printer's counter decides only for cards that have none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from printstation.agent.central.samples import sample_job
from printstation.agent.contract import Job
from printstation.agent.station.journal import Journal
from printstation.agent.station.recovery import settle_printing
from printstation.drivers.base import (
    CardJob,
    CardResult,
    Identity,
    PrinterDriver,
    PrinterStatus,
    SubmittedCard,
)


class Spooler(PrinterDriver):
    """A driver whose spooler remembers what became of each job it was given."""

    name = "spooler"

    def __init__(self, said: dict[str, SubmittedCard]):
        self.said = said
        self.asked: list[str] = []

    @classmethod
    def from_url(cls, url: str, *, state_dir: Path) -> Spooler:
        return cls({})

    def identity(self) -> Identity:
        return Identity("spooler", None, None, None)

    def status(self) -> PrinterStatus:
        return PrinterStatus(state="ready", card_counter=None)

    def print_card(self, card: CardJob) -> CardResult:
        raise AssertionError("recovery never prints")

    def card_outcome(self, ref: str) -> SubmittedCard | None:
        self.asked.append(ref)
        return self.said.get(ref, SubmittedCard("unknown", "job history purged"))


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "state", "s1")
    yield j
    j.close()


def printing(journal: Journal, job_id: str, ref: str | None) -> None:
    raw = json.dumps(sample_job(job_id, two_sided=False, destination="station.s1").body).encode()
    journal.jobs.take(Job.model_validate_json(raw), raw, {}, "station")
    journal.progress.start_printing(job_id, None)
    if ref is not None:
        journal.progress.submitted(job_id, ref)


@pytest.mark.parametrize(("said", "state", "outcomes"), [
    (SubmittedCard("printed"), "printed", ["issued"]),
    (SubmittedCard("not_printed", "aborted"), "queued", []),
    (SubmittedCard("spoiled", "aborted after a page"), "queued", ["spoiled"]),
    (SubmittedCard("unknown", "job history purged"), "needs_check", []),
])
def test_a_card_the_spooler_held_is_settled_by_what_it_says(journal, said, state, outcomes):
    printing(journal, "J-1", "17")
    driver = Spooler({"17": said})
    settle_printing(journal, driver.status(), driver)
    assert driver.asked == ["17"]
    assert journal.jobs.get("J-1").state == state
    cards = [json.loads(b) for _, _, b in journal.outbox.unpublished()
             if json.loads(b)["schema"] == "printstation.card/1"]
    assert [c["outcome"] for c in cards] == outcomes


def test_a_new_attempt_forgets_the_last_attempts_reference(journal):
    printing(journal, "J-1", "17")
    journal.progress.back_to_queue("J-1")
    journal.progress.start_printing("J-1", None)
    assert journal.jobs.get("J-1").printer_ref is None
    # No reference, no counter: nobody can know, so an operator must say.
    settle_printing(journal, PrinterStatus(state="ready"), Spooler({}))
    assert journal.jobs.get("J-1").state == "needs_check"


def test_a_spooler_that_cannot_be_asked_leaves_the_card_to_an_operator(journal):
    class Down(Spooler):
        def card_outcome(self, ref: str) -> SubmittedCard | None:
            raise OSError("connection refused")

    printing(journal, "J-1", "17")
    settle_printing(journal, PrinterStatus(state="offline"), Down({}))
    row = journal.jobs.get("J-1")
    assert row.state == "needs_check"
