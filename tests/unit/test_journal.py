"""The journal keeps jobs and events durably, privately, and says how to recover when broken."""

from __future__ import annotations

import json
import sqlite3
import stat

import pytest

from printstation.agent import contract
from printstation.agent.central.samples import sample_job
from printstation.agent.contract import Job
from printstation.agent.station.journal import (
    JobState,
    Journal,
    JournalError,
    Taken,
    schema,
    store,
)
from tests.support.journal import commit_fails_once


def spy_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, the descriptor of every fsync the journal makes (each still made)."""
    import os

    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(store.os, "fsync", spy)
    return synced

@pytest.fixture
def job() -> tuple[Job, bytes]:
    body = sample_job("J-1", two_sided=False, destination="station.s1")
    raw = json.dumps(body.body).encode()
    return Job.model_validate_json(raw), raw


def test_state_dir_and_files_are_private(tmp_path, job):
    journal = Journal(tmp_path / "state", "s1")
    journal.jobs.take(job[0], job[1], {}, "station")
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    for f in (tmp_path / "state").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_seq_grows_by_one_per_event_and_across_reopen(tmp_path, job):
    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "station")
    journal.progress.start_printing("J-1", 0)
    journal.progress.card_printed("J-1", 1)
    seqs = [s for s, _, _ in journal.outbox.unpublished()]
    assert seqs == list(range(1, 5))  # accepted, printing, card, printed
    journal.outbox.mark_published(seqs)
    journal.close()
    again = Journal(tmp_path, "s1")
    assert again.outbox.emit_now(contract.AlertFields(severity="info", condition="test",
                                                      message="m")) == 5


def test_a_job_is_taken_once_and_its_data_dropped_when_terminal(tmp_path, job):
    journal = Journal(tmp_path, "s1")
    assert journal.jobs.take(job[0], job[1], {}, "station") is Taken.ACCEPTED
    assert journal.jobs.take(job[0], job[1], {}, "station") is Taken.DUPLICATE
    assert journal.jobs.get("J-1").body == job[1]
    assert journal.progress.finish("J-1", "expired")
    assert journal.jobs.get("J-1").body is None
    assert not journal.progress.finish("J-1", "failed", "printer_fault", "again")
    statuses = [json.loads(b)["status"] for _, _, b in journal.outbox.unpublished()]
    assert statuses == ["accepted", "expired"]


def test_events_are_checked_against_the_contract(tmp_path):
    journal = Journal(tmp_path, "s1")
    with pytest.raises(ValueError):
        journal.outbox.emit_now(contract.AlertFields(severity="loud", condition="x",
                                                     message="m"))
    assert journal.outbox.last_seq() == 0


def test_a_corrupt_journal_stops_with_how_to_recover(tmp_path):
    (tmp_path / "journal.sqlite3").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError, match="move it aside"):
        Journal(tmp_path, "s1")


def test_the_column_list_matches_the_jobs_table(tmp_path):
    from printstation.agent.station.journal.jobs import JOB_COLUMNS

    journal = Journal(tmp_path / "state", "cols")
    columns = tuple(r[1] for r in journal.store.db.execute("PRAGMA table_info(jobs)"))
    journal.close()
    assert columns == JOB_COLUMNS


def test_a_card_recorded_between_cards_is_published_only_once_on_disk(tmp_path, job):
    """The quick form skips its fsync: its events wait for the next durable commit."""
    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "station")
    journal.progress.start_printing("J-1", 0)
    before = [s for s, _, _ in journal.outbox.unpublished()]
    journal.progress.card_printed("J-1", 1, between_cards=True)
    assert [s for s, _, _ in journal.outbox.unpublished()] == before  # not yet on disk
    assert journal.jobs.get("J-1").state == "printed" and journal.jobs.get("J-1").body == job[1]
    journal.store.sync()
    assert [s for s, _, _ in journal.outbox.unpublished()] == [*before, 3, 4]  # card, printed
    journal.jobs.erase_finished_images()
    assert journal.jobs.get("J-1").body is None


def test_a_card_recorded_between_cards_wakes_the_publisher_which_syncs_it(tmp_path, job,
                                                                       monkeypatch):
    """Its status must not wait for the printer thread's next durable commit: the commit
    wakes the publisher, whose `sync_events` makes it durable, and only then publishable."""

    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "station")
    journal.progress.start_printing("J-1", 0)
    before = [s for s, _, _ in journal.outbox.unpublished()]
    journal.store.outbox_event.clear()
    journal.progress.card_printed("J-1", 1, between_cards=True)
    assert journal.store.outbox_event.is_set()
    assert journal.store.unsynced_events()
    assert [s for s, _, _ in journal.outbox.unpublished()] == before  # not yet on disk
    synced = spy_fsyncs(monkeypatch)
    journal.store.sync_events()
    assert synced
    assert [s for s, _, _ in journal.outbox.unpublished()] == [*before, 3, 4]  # card, printed
    assert not journal.store.unsynced_events()
    synced.clear()
    journal.store.sync_events()  # nothing waits: no fsync
    assert not synced


def test_a_card_whose_next_card_follows_leaves_the_publisher_to_the_next_start(tmp_path,
                                                                               job):
    """With the next card prepared, the printer thread commits its start (durable) at
    once: that commit, not the publisher's fsync beside it, makes `printed` publishable."""
    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "station")
    second = job[0].model_copy(update={"job_id": "J-2"})
    journal.jobs.take(second, job[1], {}, "station")
    journal.progress.start_printing("J-1", 0)
    before = [s for s, _, _ in journal.outbox.unpublished()]
    journal.store.outbox_event.clear()
    journal.progress.card_printed("J-1", 1, between_cards=True, next_card_follows=True)
    assert not journal.store.outbox_event.is_set()
    assert [s for s, _, _ in journal.outbox.unpublished()] == before  # not yet on disk
    journal.progress.start_printing("J-2", 1)
    assert journal.store.outbox_event.is_set()
    after = [s for s, _, _ in journal.outbox.unpublished()]
    assert after[:len(before)] == before and len(after) == len(before) + 3  # card, printed,
    # and J-2's `printing`
    assert not journal.store.unsynced_events()


def test_after_a_failed_fsync_nothing_more_is_published_in_this_run(tmp_path, job,
                                                                  monkeypatch):
    """Linux reports a failed write-back once and drops the pages that failed, so the next
    fsync succeeds without them: a retry must not make `printed` publishable. Modelled by
    an fsync that fails once, then succeeds; the journal stays failed until a restart."""
    import errno

    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "station")
    journal.progress.start_printing("J-1", 0)
    journal.progress.card_printed("J-1", 1, between_cards=True)  # not on disk yet
    before = [s for s, _, _ in journal.outbox.unpublished()]
    calls: list[int] = []

    def fails_once(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(store.os, "fsync", fails_once)
    for _ in range(2):  # the publisher's next wake, the printer thread's retry
        with pytest.raises(sqlite3.OperationalError, match="restart the agent"):
            journal.store.sync_events()
    with pytest.raises(sqlite3.OperationalError):  # a durable commit publishes nothing either
        journal.progress.not_started("J-1")
    assert [s for s, _, _ in journal.outbox.unpublished()] == before
    assert "check the disk" in (journal.store.write_error or "")
    assert len(calls) == 1


def test_sqlites_own_failed_fsync_fails_the_journal_as_ours_does(tmp_path, job):
    """SQLite reports its fsync of a commit failing (SQLITE_IOERR_FSYNC): the same as a
    failed fsync of ours, nothing more is written or published until a restart. Modelled
    by the COMMIT failing once with that code; every later statement would succeed."""
    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "station")
    with commit_fails_once(journal, "disk I/O error", sqlite3.SQLITE_IOERR_FSYNC):
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            journal.progress.start_printing("J-1", 0)
        for write in (lambda: journal.progress.start_printing("J-1", 0), journal.store.sync,
                      lambda: journal.store.checkpoint("TRUNCATE")):
            with pytest.raises(sqlite3.OperationalError, match="restart the agent"):
                write()
    assert "check the disk" in (journal.store.write_error or "")


def _break_sync(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    """One fsync fails (EIO) with something not yet on disk: the journal is failed."""
    import errno

    with journal.store.tx(durable=False) as db:
        db.execute("INSERT INTO meta VALUES ('k', '1')")

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(store.os, "fsync", eio)
    with pytest.raises(sqlite3.OperationalError):
        journal.store.sync()
    monkeypatch.undo()


def test_a_failed_journal_writes_nothing_it_then_reports_failed(tmp_path, job, monkeypatch):
    """A start committed and then reported failed would leave a job `printing` that never
    started, again at every retry of the printer thread's."""
    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "station")
    journal.jobs.take(job[0].model_copy(update={"job_id": "J-2"}), job[1], {}, "station")
    _break_sync(journal, monkeypatch)
    for _ in range(2):
        row = journal.jobs.next(with_body=False)
        with pytest.raises(sqlite3.OperationalError):
            journal.progress.start_printing(row.job_id, 0)
    assert journal.jobs.in_states(JobState.PRINTING) == []


def test_a_failed_journal_leaves_no_space_probe_behind(tmp_path, monkeypatch):
    """The station's space probe, every few seconds while it cannot store, must not pile
    its rows up on a disk that just failed."""
    journal = Journal(tmp_path, "s1")
    _break_sync(journal, monkeypatch)
    for _ in range(3):
        assert not journal.store.can_store(300_000)
    with journal.store.lock:
        n = journal.store.db.execute("SELECT count(*) FROM space_probe").fetchone()[0]
    assert n == 0, f"{n} probe rows left in the journal"


def test_a_commit_made_while_a_sync_runs_is_not_taken_for_synced(tmp_path, job, monkeypatch):
    """`sync` fsyncs outside the lock, so another thread may commit meanwhile: that commit
    need not be in what was synced, so its events stay unpublished until the next sync."""
    import os
    import threading

    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "station")
    journal.progress.start_printing("J-1", 0)
    journal.progress.card_printed("J-1", 1, between_cards=True)  # seq 3, 4
    real_fsync = os.fsync
    late: list[threading.Thread] = []

    def commit_meanwhile(fd: int) -> None:
        if not late:
            late.append(threading.Thread(target=_quick_event, args=(journal,)))
            late[0].start()
            late[0].join(5)
            assert not late[0].is_alive(), "a commit waited for the fsync (the lock was held)"
        real_fsync(fd)

    monkeypatch.setattr(store.os, "fsync", commit_meanwhile)
    journal.store.sync()
    monkeypatch.setattr(store.os, "fsync", real_fsync)
    published = [s for s, _, _ in journal.outbox.unpublished()]
    assert published[-1] == 4  # the card and `printed`, not the event committed meanwhile
    assert journal.store.unsynced_events()
    journal.store.sync_events()
    assert [s for s, _, _ in journal.outbox.unpublished()][-1] == 5


def _quick_event(journal: Journal) -> None:
    """An event committed without an fsync, as a card's outcome is between cards."""
    with journal.store.tx(durable=False) as db:
        journal.outbox.status(db, "J-1", "printed")


def test_a_durable_commit_that_writes_releases_what_waited_with_its_own_fsync(tmp_path, job,
                                                                             monkeypatch):
    """The next card's start writes: SQLite's fsync of the log at its commit covers the
    card recorded between cards, and no second fsync stands between the two cards."""

    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "station")
    raw = json.dumps(sample_job("J-2", two_sided=False, destination="station.s1").body).encode()
    journal.jobs.take(Job.model_validate_json(raw), raw, {}, "station")
    journal.progress.start_printing("J-1", 0)
    journal.progress.card_printed("J-1", 1, between_cards=True)
    waiting = len(journal.outbox.unpublished())
    synced = spy_fsyncs(monkeypatch)
    assert journal.progress.start_printing("J-2", 1) == 1
    assert not synced, "a second fsync between two cards"
    assert len(journal.outbox.unpublished()) == waiting + 3  # card, printed, printing
    assert not journal.store.unsynced_events()
    journal.close()


def test_the_log_starts_over_on_the_preparing_thread_not_in_the_cards_outcome(tmp_path, job):
    """After the erase's complete checkpoint, the next commit that writes restarts the
    write-ahead log (new salts in its header) and SQLite fsyncs that header in it: the
    erase makes that commit itself, so the card recorded between cards is not the one."""
    journal = Journal(tmp_path, "s1")
    wal = tmp_path / "journal.sqlite3-wal"
    journal.jobs.take(job[0], job[1], {}, "station")
    raw = json.dumps(sample_job("J-2", two_sided=False, destination="station.s1").body).encode()
    journal.jobs.take(Job.model_validate_json(raw), raw, {}, "station")
    journal.progress.start_printing("J-1", 0)
    journal.progress.card_printed("J-1", 1, between_cards=True)
    journal.progress.start_printing("J-2", 1)
    salts = wal.read_bytes()[16:24]
    journal.jobs.erase_finished_images()  # the preparing thread, while J-2 prints
    assert wal.read_bytes()[16:24] != salts, "the erase did not start the log over"
    salts = wal.read_bytes()[16:24]
    journal.progress.card_printed("J-2", 2, between_cards=True)
    assert wal.read_bytes()[16:24] == salts, "the card's outcome started the log over"
    journal.close()


def test_a_printed_jobs_images_left_by_a_stop_are_erased_at_the_next_start(tmp_path, job):
    """Killed (or stopped) after a card recorded between cards, the station must not keep
    that citizen's images on disk: the next start erases them before anything else."""
    from printstation.agent.station.recovery import recover

    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "station")
    journal.progress.start_printing("J-1", 0)
    journal.progress.card_printed("J-1", 1, between_cards=True)
    journal.close()
    journal = Journal(tmp_path, "s1")
    assert journal.jobs.get("J-1").body == job[1]  # left behind by the stop
    recover(journal)
    assert journal.jobs.get("J-1").body is None
    journal.close()
    photo = job[0].sides.front.image[1000:1064].encode()
    assert not any(photo in p.read_bytes() for p in tmp_path.iterdir() if p.is_file())


def test_a_schema_1_journal_moves_its_job_data_out_of_the_jobs_rows(tmp_path, job):
    import sqlite3

    db = sqlite3.connect(tmp_path / "journal.sqlite3")
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '1'), ('last_seq', '7');"
        "CREATE TABLE jobs (job_id TEXT PRIMARY KEY, reference TEXT, card_stock TEXT, "
        "source TEXT NOT NULL, state TEXT NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, "
        "sides INTEGER, created_at TEXT, expires_at TEXT, accepted_at TEXT NOT NULL, "
        "updated_at TEXT NOT NULL, body BLOB, headers TEXT, reason_code TEXT, "
        "reason_detail TEXT, card_no INTEGER, counter_before INTEGER);")
    db.execute("INSERT INTO jobs (job_id, card_stock, source, state, sides, accepted_at, "
               "updated_at, body, headers) VALUES ('J-1', 'ektp', 'station', 'queued', 1, "
               "'t', 't', ?, '{\"h\": 1}')", (job[1],))
    db.commit()
    db.close()
    journal = Journal(tmp_path, "s1")
    row = journal.jobs.next()
    assert row is not None and row.body == job[1] and json.loads(row.headers) == {"h": 1}
    assert journal.store.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
    assert journal.progress.finish("J-1", "expired") and journal.jobs.get("J-1").body is None


def test_a_commit_that_writes_nothing_syncs_before_what_waited_is_published(tmp_path, job,
                                                                           monkeypatch):
    """SQLite skips the fsync of an empty commit (a redelivery, a finish of a finished job):
    events that waited for a durable commit go out only after an explicit fsync."""


    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "station")
    journal.progress.start_printing("J-1", 0)
    journal.progress.card_printed("J-1", 1, between_cards=True)
    waiting = len(journal.outbox.unpublished())
    synced = spy_fsyncs(monkeypatch)
    assert journal.jobs.take(job[0], job[1], {}, "station") is Taken.DUPLICATE  # writes nothing
    assert synced, "the events were released without an fsync"
    assert len(journal.outbox.unpublished()) == waiting + 2  # card, printed
    synced.clear()
    assert not journal.progress.finish("J-1", "failed", "printer_fault", "x")  # nothing to sync now
    assert not synced


def test_a_job_cancelled_while_it_was_next_never_starts(tmp_path, job):
    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "station")
    assert journal.jobs.next() is not None
    assert journal.control.cancel("J-1", "cancelled_by_central", "not needed") == "cancelled"
    assert journal.progress.start_printing("J-1", 0) is None
    statuses = [json.loads(b)["status"] for _, _, b in journal.outbox.unpublished()]
    assert statuses == ["accepted", "cancelled"]


def test_a_journal_from_a_newer_agent_is_refused_unchanged(tmp_path):
    journal = Journal(tmp_path, "s1")
    journal.store.set_meta("schema_version", "99")
    journal.close()
    before = (tmp_path / "journal.sqlite3").read_bytes()
    with pytest.raises(JournalError, match="newer agent"):
        Journal(tmp_path, "s1")
    assert (tmp_path / "journal.sqlite3").read_bytes() == before


def _statuses(journal: Journal) -> list[tuple[str, str | None]]:
    out = []
    for _seq, rk, body in journal.outbox.unpublished(10_000):
        event = json.loads(body)
        if rk.startswith("status."):
            out.append((event["status"], (event["reason"] or {}).get("code")))
    return out


def test_a_cancel_during_a_pool_claim_never_publishes_accepted_after_cancelled(tmp_path, job):
    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "pool:p", claiming=True)
    # An operator's cancel does not touch a claim the broker has not confirmed...
    answer = journal.control.cancel("J-1", "cancelled_by_operator", "siti: wrong person")
    assert answer == "claiming"
    # ...the central system's is remembered, and ends the job once the claim is confirmed.
    journal.control.cancel("J-1", "cancelled_by_central", "withdrawn", central=True)
    journal.jobs.confirm_claim("J-1")
    journal.jobs.confirm_claim("J-1")  # a second confirmation changes nothing
    # One terminal status, said when the claim is confirmed (a `released` could still
    # have come instead, had the claim failed).
    assert _statuses(journal) == [("cancelled", "cancelled_by_central")]
    assert journal.jobs.known("J-1") == "cancelled" and journal.jobs.get("J-1").body is None
    assert not journal.jobs.release("J-1", "claim_unconfirmed", "late")  # no `released` either


def test_a_pool_job_whose_blank_was_spoiled_is_never_handed_back(tmp_path, job):
    """Contract 7.1: never once printing has begun. A blank the printer called spoiled may
    still be a usable card; handed back, another station would print the job again."""
    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "pool:p", claiming=True)
    journal.jobs.confirm_claim("J-1")
    assert journal.progress.start_printing("J-1", 10) == 1
    journal.cards.spoiled("J-1", 11, "card_jam")
    journal.progress.back_to_queue("J-1")  # waits to be printed again, here
    assert journal.jobs.known("J-1") == "queued"
    assert not journal.handback.hand_back("J-1", "printer fault not cleared")
    assert journal.jobs.known("J-1") == "queued" and journal.handback.pending() == []
    # One whose printer refused the card before drawing a blank has not begun: it may go.
    other = sample_job("J-2", two_sided=False, destination="pool.p").body
    raw = json.dumps(other).encode()
    journal.jobs.take(Job.model_validate_json(raw), raw, {}, "pool:p", claiming=True)
    journal.jobs.confirm_claim("J-2")
    assert journal.progress.start_printing("J-2", 11) == 1
    journal.progress.not_started("J-2")
    assert journal.handback.hand_back("J-2", "printer fault not cleared")


def test_a_cancel_during_a_claim_that_fails_ends_the_job_when_it_comes_again(tmp_path, job):
    journal = Journal(tmp_path, "s1")
    journal.jobs.take(job[0], job[1], {}, "pool:p", claiming=True)
    journal.control.cancel("J-1", "cancelled_by_central", "withdrawn", central=True)
    assert journal.jobs.release("J-1", "claim_unconfirmed", "the connection broke")
    assert journal.jobs.take(job[0], job[1], {}, "pool:p", claiming=True) is Taken.CANCELLED
    assert _statuses(journal) == [("released", "claim_unconfirmed"),
                                  ("cancelled", "cancelled_by_central")]


def test_a_forged_message_takes_no_job_id(tmp_path, job):
    journal = Journal(tmp_path, "s1")
    assert journal.jobs.reject("J-1", None, "bad_signature", "forged")
    assert journal.jobs.known("J-1") is None
    assert journal.jobs.take(job[0], job[1], {}, "station") is Taken.ACCEPTED


def test_only_the_signature_headers_are_stored_as_strings(tmp_path, job):
    import datetime

    journal = Journal(tmp_path, "s1")
    headers = {"x-signature": b"c2ln", "x-key-id": "k1", "x-death": [
        {"time": datetime.datetime(2026, 11, 27), "count": 1}], "x-delivery-count": 3}
    assert journal.jobs.take(job[0], job[1], headers, "station") is Taken.ACCEPTED
    assert json.loads(journal.jobs.get("J-1").headers) == {"x-signature": "c2ln", "x-key-id": "k1"}


def test_unsent_telemetry_is_replaced_not_piled_up(tmp_path):
    journal = Journal(tmp_path, "s1")
    telemetry = {"schema": "printstation.telemetry/1", "agent_version": "t", "state": "ready",
                 "taking_jobs": True, "signatures_verified": True,
                 "printer": {"driver": "sim", "model": None, "serial": None, "firmware": None,
                             "state": "ready", "faults": []},
                 "consumables": [], "cards_left": None, "first_to_run_out": None,
                 "counters": {"printed_today": 0, "spoiled_today": 0, "printed_total": 0,
                              "spoiled_total": 0}, "queued_jobs": 0}
    seqs = [journal.outbox.emit_now(contract.TelemetryFields(**{**telemetry, "queued_jobs": n}))
            for n in range(1000)]
    assert seqs == [1] * 1000 and journal.outbox.backlog() == 1
    journal.outbox.mark_published([1])
    telemetry_model = contract.TelemetryFields(**telemetry)
    assert journal.outbox.emit_now(telemetry_model) == 2  # a published one is never rewritten
    alert = contract.AlertFields(severity="info", condition="c", message="m")
    assert journal.outbox.emit_now(alert) == 3 and journal.outbox.emit_now(telemetry_model) == 4
    # Once a publisher was handed it (published, its confirm lost, it goes out again), an
    # event is never rewritten: the same seq must never carry two contents.
    journal.store.sync()
    assert journal.outbox.unpublished()[-1][0] == 4
    assert journal.outbox.emit_now(telemetry_model) == 5
    assert json.loads(journal.outbox.unpublished()[0][2])["seq"] == 2


def test_retention_prunes_what_it_no_longer_needs_and_the_ledger_still_balances(
        tmp_path, job, monkeypatch):
    import datetime

    from printstation.agent import contract
    from printstation.agent.station.journal.stock import CardUse

    journal = Journal(tmp_path, "s1")
    now = contract.now()
    then = now - datetime.timedelta(days=500)
    old_job = job[0].model_copy(update={"created_at": then})
    clock = [then]
    monkeypatch.setattr(contract, "now", lambda: clock[0])
    journal.cards.load(kind="cards", type_="ektp", capacity=10, amount=10, add=True,
                       who="t", note="")
    journal.jobs.take(old_job, job[1], {}, "station")
    journal.progress.start_printing("J-1", 0)
    journal.progress.card_printed("J-1", 1, CardUse(stock="ektp", sides=1, ribbon=1, film=1))
    journal.control.cancel("GONE-1", "cancelled_by_central", "x", central=True, issued_at=then)
    journal.control.record_command("cmd-1", "pause", "done", issued_at=then)
    journal.outbox.mark_published([s for s, _, _ in journal.outbox.unpublished(100)])
    before = journal.cards.ledger_days()
    clock[0] = now
    recent = job[0].model_copy(update={"job_id": "J-2"})
    journal.jobs.take(recent, job[1], {}, "station")  # the central system's clock moves on
    counts = journal.retention.prune(job_days=400, event_days=14)
    assert counts["jobs"] == 1 and counts["cancels"] == 1 and counts["commands"] == 1
    assert counts["events"] >= 4 and counts["ledger"] == 2
    assert journal.jobs.known("J-1") is None and not journal.control.command_seen("cmd-1")
    assert journal.jobs.known("J-2") == "queued"
    assert journal.outbox.backlog() == 1  # J-2's `accepted`, not yet published: kept
    assert journal.cards.ledger_days() == before  # folded into day sums, not lost
    assert journal.retention.prune(job_days=400, event_days=14) == {
        "events": 0, "jobs": 0, "cancels": 0, "commands": 0, "actions": 0, "ledger": 0}
    # Too old to tell from a replay: refused, not printed.
    assert journal.jobs.take(old_job, job[1], {}, "station", retention_days=400) is Taken.TOO_OLD


def test_disk_use_is_bounded_however_long_the_station_runs(tmp_path, monkeypatch):
    """A year of telemetry every 30 s, a card every few minutes, pruned hourly."""
    import datetime

    from printstation.agent import contract
    from printstation.agent.station.journal.stock import CardUse

    journal = Journal(tmp_path, "s1")
    clock = [datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)]
    monkeypatch.setattr(contract, "now", lambda: clock[0])
    alert = contract.AlertFields(severity="info", condition="c", message="x" * 400)
    sizes = []
    for day in range(60):
        for hour in range(24):
            clock[0] = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + \
                datetime.timedelta(days=day, hours=hour)
            for _ in range(20):  # events of an hour, sampled
                journal.outbox.emit_now(alert)
            journal.cards.test(None, CardUse(stock="ektp", sides=1), "t")
            journal.outbox.mark_published([s for s, _, _ in journal.outbox.unpublished(1000)])
            journal.retention.prune(job_days=20, event_days=7)
        sizes.append(sum(f.stat().st_size for f in tmp_path.iterdir()))
    assert max(sizes[40:]) <= max(sizes[20:40]) * 1.05, sizes


def test_what_replays_are_judged_by_is_the_central_systems_clock_not_the_pcs(
        tmp_path, job, monkeypatch):
    """A PC that printed with its clock in the year 2000, then corrected, forgets nothing."""
    import datetime

    from printstation.agent import contract

    journal = Journal(tmp_path, "s1")
    real = contract.now()
    monkeypatch.setattr(contract, "now",
                        lambda: datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC))
    journal.jobs.take(job[0], job[1], {}, "station")
    journal.progress.start_printing("J-1", 0)
    journal.progress.card_printed("J-1", 1)
    journal.control.cancel("LATER-1", "cancelled_by_central", "x", central=True,
                   issued_at=real)
    monkeypatch.setattr(contract, "now", lambda: real)  # NTP corrects the clock
    counts = journal.retention.prune(job_days=400, event_days=14)
    assert counts["jobs"] == 0 and counts["cancels"] == 0
    assert journal.jobs.take(job[0], job[1], {}, "station", retention_days=400) is Taken.DUPLICATE
    assert journal.jobs.known("J-1") == "printed"


def test_a_job_dated_in_the_future_does_not_make_later_jobs_too_old(tmp_path, job):
    import datetime

    journal = Journal(tmp_path, "s1")
    future = job[0].model_copy(update={"job_id": "FUTURE",
                                       "created_at": job[0].created_at +
                                       datetime.timedelta(days=800)})
    journal.jobs.take(future, job[1], {}, "station", retention_days=400)
    assert journal.jobs.take(job[0], job[1], {}, "station", retention_days=400) is Taken.ACCEPTED


def test_card_numbers_are_never_used_twice_even_after_the_ledger_is_pruned(
        tmp_path, monkeypatch):
    import datetime

    from printstation.agent import contract
    from printstation.agent.station.journal.stock import CardUse

    journal = Journal(tmp_path, "s1")
    then = contract.now() - datetime.timedelta(days=500)
    monkeypatch.setattr(contract, "now", lambda: then)
    first = [journal.cards.test(None, CardUse(stock="ektp", sides=1), "t") for _ in range(3)]
    monkeypatch.undo()
    assert journal.retention.prune(job_days=400, event_days=14)["ledger"] == 3
    assert journal.store.db.execute("SELECT COUNT(*) FROM cards").fetchone()[0] == 0
    assert journal.cards.drawn() == 3  # the life count, from the counter
    assert journal.cards.test(None, CardUse(stock="ektp", sides=1), "t") == max(first) + 1


def test_held_counts_every_job_whose_images_are_on_disk_until_they_are_erased(tmp_path, job):
    """`held` is what `max_held_jobs` bounds: a job counts from stored until its images go,
    a printed one whose images wait for the next card included."""
    journal = Journal(tmp_path, "s1")
    assert journal.jobs.held() == 0
    journal.jobs.take(job[0], job[1], {}, "station")
    second = job[0].model_copy(update={"job_id": "J-2"})
    journal.jobs.take(second, job[1], {}, "station")
    assert (journal.jobs.held(), journal.jobs.waiting()) == (2, 2)
    journal.progress.start_printing("J-1", 0)
    journal.progress.card_printed("J-1", 1, between_cards=True)
    assert (journal.jobs.held(), journal.jobs.waiting()) == (2, 1)  # its images still here
    journal.jobs.erase_finished_images()
    assert journal.jobs.held() == 1
    assert journal.progress.finish("J-2", "expired")
    assert journal.jobs.held() == 0
