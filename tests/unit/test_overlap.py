"""Cards fed back to back to a printer that prints a fed card by itself (`overlaps_cards`).

While one card prints, the printer thread journals the next job's start (`armed`), feeds
it the moment the card before is out, then records that card's outcome. Each test runs the
real agent on the in-process `sim://` printer, which is such a printer, and checks its
ledger and the statuses published: every job printed once, the armed job cancellable while
its blank is not drawn, an armed job whose card before failed waiting again unannounced,
and a restart settling two `printing` jobs by the printer's one counter.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from printstation.agent.broker.embedded import EmbeddedSource
from printstation.agent.central.samples import sample_job
from printstation.agent.config import Settings
from printstation.agent.contract import Job
from printstation.agent.signing import Verifier
from printstation.agent.station.agent import Agent
from printstation.agent.station.journal import JobState, Journal
from printstation.agent.station.recovery import settle_printing
from printstation.drivers.base import FaultCode, PrinterStatus
from printstation.simulator.printer import read_ledger
from tests.support import KEY_ID, job_fingerprint, signed, wait_for
from tests.support.journal import commit_fails_once

STATION = "overlap-1"


@dataclass
class Station:
    agent: Agent
    cards: Path
    key: object
    started: list[Agent]
    events: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, *job_ids: str) -> list[dict]:
        """Store the jobs, then start the agent: all are waiting when the first prints."""
        bodies = []
        for job_id in job_ids:
            body = sample_job(job_id, destination=f"station.{STATION}").body
            raw, headers = signed(self.key, body)
            EmbeddedSource(self.agent.station.intake).submit(raw, headers, message_id=job_id)
            bodies.append(body)
        self.agent.start(embedded_sink=self._sink)
        self.started.append(self.agent)
        return bodies

    def _sink(self, event: dict) -> None:
        with self.lock:
            self.events.append(event)

    def statuses(self, job_id: str) -> list[tuple[str, int]]:
        with self.lock:
            return [(e["status"], e["attempt"]) for e in self.events
                    if e["schema"] == "printstation.status/1" and e["job_id"] == job_id]

    def ended(self, *job_ids: str) -> bool:
        done = ("printed", "failed", "cancelled")
        return all(any(s in done for s, _ in self.statuses(j)) for j in job_ids)

    def state(self, job_id: str) -> str | None:
        row = self.agent.journal.jobs.get(job_id)
        return row.state if row else None

    def hold(self, number: int) -> threading.Event:
        """Card `number` stays in the simulated printer until the event is set: what the
        test does while it prints cannot come too late."""
        printer = self.agent.driver.printer  # type: ignore[attr-defined]
        release, print_drawn = threading.Event(), printer.print_drawn

        def held(drawn: int, card, **kwargs):
            if drawn == number:
                release.wait(30)
            return print_drawn(drawn, card, **kwargs)

        printer.print_drawn = held
        return release

    def wait_armed(self, job_id: str) -> None:
        """The job's start journaled while the held card is in the printer."""
        wait_for(lambda: self.state(job_id) == JobState.PRINTING, 10,
                 f"{job_id} armed while the card before prints")


@pytest.fixture
def station(tmp_path: Path, signing_key) -> Iterator:
    started: list[Agent] = []

    def make(sim: str = "") -> Station:
        cards = tmp_path / "cards"
        s = Settings(station_id=STATION, state_dir=tmp_path / "state",
                     printer_url=f"sim://?render=0&out={cards}{sim}",
                     web_listen="", metrics_listen="")
        agent = Agent(s, verifier=Verifier({KEY_ID: signing_key.public_key()}))
        return Station(agent, cards, signing_key, started)

    yield make
    for agent in started:
        agent.stop()


def test_the_next_job_is_started_while_a_card_prints_and_every_job_prints_once(station):
    s = station("&print_time=0.2")
    release = s.hold(1)
    bodies = s.submit("OV-1", "OV-2", "OV-3")
    # While card 1 prints, job 2's start is journaled with the counter card 1 leaves.
    s.wait_armed("OV-2")
    row = s.agent.journal.jobs.get("OV-2")
    assert row is not None and (row.counter_before, row.attempt) == (1, 1)
    assert "printing" not in [st for st, _ in s.statuses("OV-2")], \
        "printing was said before its blank went in"
    release.set()
    wait_for(lambda: s.ended("OV-1", "OV-2", "OV-3"), 20, "the three jobs to end")
    ledger = read_ledger(s.cards)
    assert [(c["card_no"], c["job_id"], c["outcome"], c["fingerprint"]) for c in ledger] == \
        [(n + 1, b["job_id"], "issued", job_fingerprint(b)) for n, b in enumerate(bodies)]
    for b in bodies:
        assert s.statuses(b["job_id"]) == [("accepted", 0), ("printing", 1), ("printed", 1)]


def test_a_cancel_takes_the_armed_job_whose_blank_is_not_drawn(station):
    s = station("&print_time=0.2")
    release = s.hold(1)
    s.submit("CA-1", "CA-2", "CA-3")
    s.wait_armed("CA-2")
    assert s.agent.station.cancel("CA-2", "cancelled_by_central", "data changed") == "cancelled"
    release.set()
    wait_for(lambda: s.ended("CA-1", "CA-3"), 20, "jobs 1 and 3 to end")
    assert [(c["job_id"], c["outcome"]) for c in read_ledger(s.cards)] == \
        [("CA-1", "issued"), ("CA-3", "issued")]
    # No blank was drawn for it: no attempt counted.
    assert s.statuses("CA-2") == [("accepted", 0), ("cancelled", 0)]
    assert s.statuses("CA-3")[-1] == ("printed", 1)


def test_an_armed_job_whose_card_before_jams_waits_again_as_never_started(station):
    s = station("&print_time=0.2&jam_at=1&clear_after=0.2")
    release = s.hold(1)
    s.submit("JA-1", "JA-2")
    s.wait_armed("JA-2")
    release.set()
    wait_for(lambda: s.ended("JA-1", "JA-2"), 20, "both jobs to end")
    assert [(c["card_no"], c["job_id"], c["outcome"]) for c in read_ledger(s.cards)] == \
        [(1, "JA-1", "spoiled"), (2, "JA-1", "issued"), (3, "JA-2", "issued")]
    assert s.statuses("JA-1") == [("accepted", 0), ("printing", 1), ("printing", 2),
                                  ("printed", 2)]
    # Its armed start was taken back: one attempt, one `printing`.
    assert s.statuses("JA-2") == [("accepted", 0), ("printing", 1), ("printed", 1)]


def test_a_pause_while_a_card_prints_leaves_the_armed_job_unprinted_until_resumed(station):
    s = station("&print_time=0.2")
    release = s.hold(1)
    s.submit("PA-1", "PA-2")
    s.wait_armed("PA-2")
    s.agent.station.pause("operator", "lunch")
    release.set()
    wait_for(lambda: s.ended("PA-1") and s.state("PA-2") == JobState.QUEUED, 10,
             "card 1 out and job 2 waiting again")
    assert [c["job_id"] for c in read_ledger(s.cards)] == ["PA-1"]
    assert s.statuses("PA-2") == [("accepted", 0)]
    s.agent.station.resume("operator", "back")
    wait_for(lambda: s.ended("PA-2"), 10, "job 2 to print once resumed")
    assert s.statuses("PA-2") == [("accepted", 0), ("printing", 1), ("printed", 1)]


def test_a_stop_while_a_card_prints_finishes_it_and_leaves_the_armed_job_waiting(
        station, tmp_path):
    s = station("&print_time=0.2")
    release = s.hold(1)
    s.submit("ST-1", "ST-2")
    s.wait_armed("ST-2")
    stopping = threading.Thread(target=s.agent.stop)
    stopping.start()
    wait_for(s.agent.printer._stop.is_set, 10, "the printer thread told to stop")
    release.set()
    stopping.join(30)
    assert not stopping.is_alive()
    assert [c["job_id"] for c in read_ledger(s.cards)] == ["ST-1"]
    assert s.statuses("ST-1")[-1] == ("printed", 1)
    assert s.statuses("ST-2") == [("accepted", 0)]
    journal = Journal(tmp_path / "state", STATION)
    try:
        row = journal.jobs.get("ST-2")
        assert row is not None and (row.state, row.attempt) == (JobState.QUEUED, 0)
    finally:
        journal.close()


def test_an_armed_card_the_printer_refuses_is_announced_once_when_it_prints(station):
    s = station("&print_time=0.2")
    release = s.hold(1)
    s.submit("RF-1", "RF-2")
    s.wait_armed("RF-2")
    printer = s.agent.driver.printer  # type: ignore[attr-defined]
    printer.inject(FaultCode.COVER_OPEN)  # the next blank is refused at its feed
    release.set()
    wait_for(lambda: s.ended("RF-1") and s.state("RF-2") == JobState.QUEUED, 10,
             "card 1 out and job 2 refused")
    printer.clear(FaultCode.COVER_OPEN)
    wait_for(lambda: s.ended("RF-2"), 20, "job 2 to print once the cover is shut")
    assert [(c["card_no"], c["job_id"]) for c in read_ledger(s.cards)] == \
        [(1, "RF-1"), (2, "RF-2")]
    assert s.statuses("RF-2") == [("accepted", 0), ("printing", 1), ("printed", 1)]


@pytest.mark.parametrize(("counter", "first", "armed"), [
    (8, JobState.NEEDS_CHECK, JobState.QUEUED),  # card 8 drawn; the armed one's never was
    (9, JobState.NEEDS_CHECK, JobState.NEEDS_CHECK),  # both may be out
    (7, JobState.QUEUED, JobState.NEEDS_CHECK),  # no feed leaves this: nobody can say
])
def test_a_restart_settles_the_card_in_the_printer_and_the_armed_one_by_the_counter(
        tmp_path, counter, first, armed):
    """Card 8 (job 1) was fed at counter 7 and job 2 armed behind it when the agent died."""
    journal = Journal(tmp_path / "state", STATION)
    try:
        for job_id in ("RE-1", "RE-2"):
            raw = json.dumps(sample_job(job_id, destination=f"station.{STATION}").body).encode()
            journal.jobs.take(Job.model_validate_json(raw), raw, {}, "station")
        assert journal.progress.start_printing("RE-1", 7) == 1
        assert journal.progress.arm("RE-2", 8) == 1
        settle_printing(journal, PrinterStatus(state="ready", card_counter=counter))
        rows = [journal.jobs.get(j) for j in ("RE-1", "RE-2")]
        assert [r.state for r in rows] == [first, armed]
        # A job whose blank the counter says was never drawn counts no attempt.
        assert [r.attempt for r in rows] == [0 if s == JobState.QUEUED else 1
                                             for s in (first, armed)]
    finally:
        journal.close()


def test_a_cancel_cannot_take_a_job_whose_armed_card_was_taken_for_feeding(tmp_path):
    journal = Journal(tmp_path / "state", STATION)
    try:
        raw = json.dumps(sample_job("TK-1", destination=f"station.{STATION}").body).encode()
        journal.jobs.take(Job.model_validate_json(raw), raw, {}, "station")
        assert journal.progress.arm("TK-1", 3) == 1
        assert journal.progress.take_armed("TK-1")
        assert journal.control.cancel("TK-1", "cancelled_by_central", "late",
                                      central=True) == "printing"
        assert not journal.progress.take_armed("TK-1"), "a card is fed once"
    finally:
        journal.close()


@pytest.mark.parametrize("cancel_first", [True, False])
def test_a_cancel_and_taking_back_an_armed_start_end_the_job_cancelled_either_way(
        tmp_path, cancel_first):
    journal = Journal(tmp_path / "state", STATION)
    try:
        raw = json.dumps(sample_job("UA-1", destination=f"station.{STATION}").body).encode()
        journal.jobs.take(Job.model_validate_json(raw), raw, {}, "station")
        assert journal.progress.arm("UA-1", 3) == 1
        if not cancel_first:
            journal.progress.unarm("UA-1")
        assert journal.control.cancel("UA-1", "cancelled_by_central", "data changed",
                                      central=True) == "cancelled"
        journal.progress.unarm("UA-1")
        row = journal.jobs.get("UA-1")
        assert row is not None and (row.state, row.attempt) == (JobState.CANCELLED, 0)
        assert not journal.progress.take_armed("UA-1")
    finally:
        journal.close()


def test_a_pool_job_armed_when_the_agent_stopped_goes_back_to_its_pool(tmp_path):
    """Never started (the counter did not move): as a pool job not started does at a
    restart, it goes back to the central system for another station (contract 7.1)."""
    journal = Journal(tmp_path / "state", STATION)
    try:
        for job_id, source in (("PO-1", "station"), ("PO-2", "pool:ektp-bogor")):
            raw = json.dumps(sample_job(job_id, destination=f"station.{STATION}").body).encode()
            journal.jobs.take(Job.model_validate_json(raw), raw, {}, source)
        assert journal.progress.start_printing("PO-1", 7) == 1
        assert journal.progress.arm("PO-2", 8) == 1
        settle_printing(journal, PrinterStatus(state="ready", card_counter=8))
        assert [journal.jobs.get(j).state for j in ("PO-1", "PO-2")] == \
            [JobState.NEEDS_CHECK, JobState.HANDING_BACK]
    finally:
        journal.close()


@pytest.mark.parametrize("failing", ["cancel", "take back"])
def test_an_armed_job_whose_withdrawal_was_not_written_is_still_cancelled_after(
        tmp_path, failing):
    """A cancel or a take-back whose transaction fails (a full disk) leaves the job armed:
    the cancel that comes once the disk has room still cancels it, its blank not drawn."""
    journal = Journal(tmp_path / "state", STATION)
    try:
        raw = json.dumps(sample_job("WD-1", destination=f"station.{STATION}").body).encode()
        journal.jobs.take(Job.model_validate_json(raw), raw, {}, "station")
        assert journal.progress.arm("WD-1", 3) == 1
        with commit_fails_once(journal, "database or disk is full"), \
                pytest.raises(sqlite3.OperationalError, match="disk is full"):
            if failing == "cancel":
                journal.control.cancel("WD-1", "cancelled_by_central", "data changed",
                                       central=True)
            else:
                journal.progress.unarm("WD-1")
        assert journal.jobs.get("WD-1").state == JobState.PRINTING
        assert journal.control.cancel("WD-1", "cancelled_by_central", "data changed",
                                      central=True) == "cancelled"
    finally:
        journal.close()
