"""The journal's lifetime counts behind the metrics' counters: they never go down (pruning,
restarts, a released job coming back) and are keyed by codes, never by what people typed."""

from __future__ import annotations

import datetime
import json

import pytest

from printstation.agent import contract
from printstation.agent.central.samples import sample_job
from printstation.agent.contract import Job
from printstation.agent.station.journal import Journal, tally
from printstation.agent.station.journal.stock import CardUse

OPERATOR = "Siti Rahayu"


def _job(job_id: str, created_at: datetime.datetime | None = None) -> tuple[Job, bytes]:
    raw = json.dumps(sample_job(job_id, two_sided=False, destination="station.s1").body).encode()
    job = Job.model_validate_json(raw)
    return (job.model_copy(update={"created_at": created_at}) if created_at else job), raw


def _print(journal: Journal, job_id: str, created_at: datetime.datetime | None = None) -> None:
    job, raw = _job(job_id, created_at)
    journal.jobs.take(job, raw, {}, "station")
    journal.progress.start_printing(job_id, 0)
    journal.progress.card_printed(job_id, 1, CardUse(stock="ektp", sides=1))


def _counts(journal: Journal) -> tuple[dict, dict]:
    return journal.jobs.ended(), journal.cards.outcomes()


def test_counts_never_go_down_across_pruning_and_restarts(tmp_path, monkeypatch):
    journal = Journal(tmp_path, "s1")
    now = contract.now()
    then = now - datetime.timedelta(days=500)
    clock = [then]
    monkeypatch.setattr(contract, "now", lambda: clock[0])
    _print(journal, "OLD-1", then)
    journal.cards.spoiled("OLD-1", 2, "jam", CardUse(stock="ektp", sides=1))
    journal.cards.test(3, CardUse(stock="ektp", sides=1), OPERATOR)
    expiring, raw = _job("OLD-2", then)
    journal.jobs.take(expiring, raw, {}, "station")
    journal.progress.finish("OLD-2", "expired")
    journal.outbox.mark_published([s for s, _, _ in journal.outbox.unpublished(100)])
    ended, cards = _counts(journal)
    assert ended == {"printed": 1, "failed": 0, "rejected": 0, "cancelled": 0, "expired": 1,
                     "released": 0}
    assert cards[("issued", "")] == 1 and cards[("spoiled", "jam")] == 1
    assert cards[("test", "")] == 1  # the operator's name is not a reason code
    clock[0] = now
    _print(journal, "NEW-1")  # the central system's clock moves on
    pruned = journal.retention.prune(job_days=400, event_days=14)
    assert pruned["jobs"] == 2 and pruned["ledger"] == 3  # the rows behind the counts went
    after_ended, after_cards = _counts(journal)
    assert after_ended == {**ended, "printed": 2}
    assert after_cards == {**cards, ("issued", ""): 2}
    journal.close()
    again = Journal(tmp_path, "s1")
    assert _counts(again) == (after_ended, after_cards)


def test_a_journal_from_before_the_counts_starts_them_from_what_it_holds(tmp_path):
    journal = Journal(tmp_path, "s1")
    _print(journal, "J-1")
    _print(journal, "J-2")
    journal.cards.spoiled(None, 5, "test card: cover_open", CardUse(stock="ektp", sides=1))
    expected = _counts(journal)
    with journal.store.tx() as db:  # as an agent before this version left it
        db.execute("DELETE FROM meta WHERE key LIKE 'tally.%'")
    journal.close()
    again = Journal(tmp_path, "s1")
    assert _counts(again) == expected
    assert expected[1][("spoiled", "cover_open")] == 1 and expected[0]["printed"] == 2


@pytest.mark.parametrize(("reason", "label"), [
    (None, ""), ("jam", "jam"), ("operator_resolved", "operator_resolved"),
    ("test card: ribbon_out", "ribbon_out"), (f"test card by {OPERATOR}", ""),
    ("Pak Budi dropped it", ""), ("jam; see Budi", ""),
])
def test_a_reason_is_a_label_only_when_it_is_a_code(reason, label):
    assert tally.reason_label(reason) == label
