"""Intake never crashes on a message, whatever its bytes, and takes only valid signed jobs."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from printstation.agent.central.samples import sample_job
from printstation.agent.signing import Verifier
from printstation.agent.station.intake import Delivery, Intake
from printstation.agent.station.journal import Journal
from tests.support import KEY_ID, signed

KEY = Ed25519PrivateKey.generate()
UNIT = "station.unit"


@pytest.fixture(scope="module")
def intake(tmp_path_factory) -> Intake:
    journal = Journal(tmp_path_factory.mktemp("intake"), "unit")
    return Intake(journal, Verifier({KEY_ID: KEY.public_key()}), None)


header_values = st.one_of(st.text(max_size=100), st.binary(max_size=100), st.integers(),
                          st.none(), st.booleans())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=2000),
       headers=st.dictionaries(st.sampled_from(["x-signature", "x-key-id", "x-delivery-count",
                                                "other"]), header_values),
       message_id=st.one_of(st.none(), st.text(max_size=70)),
       source=st.sampled_from(["station", "pool:p1", "control"]))
def test_arbitrary_messages_are_rejected_never_raised(intake, body, headers, message_id, source):
    d = Delivery(body=body, headers=headers, message_id=message_id, source=source)
    decision = intake.control(d) if source == "control" else intake.job(d)
    assert decision.action == "reject"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(doc=st.dictionaries(st.text(max_size=12), st.one_of(st.text(max_size=30), st.integers(),
                                                           st.none()), max_size=6))
def test_signed_json_that_is_not_a_job_is_rejected(intake, doc):
    body, headers = signed(KEY, {"schema": "printstation.job/2", **doc})
    assert intake.job(Delivery(body=body, headers=headers)).action == "reject"


def test_deeply_nested_json_is_rejected(intake):
    body, headers = signed(KEY, b"[" * 100_000 + b"]" * 100_000)
    decision = intake.job(Delivery(body=body, headers=headers))
    assert decision.action == "reject" and decision.why == "invalid_job"


def test_a_valid_signed_job_is_taken_once(intake):
    body, headers = signed(KEY, sample_job("INTAKE-1", two_sided=False, destination=UNIT).body)
    assert intake.job(Delivery(body=body, headers=headers, message_id="INTAKE-1")).why \
        == "accepted"
    assert intake.job(Delivery(body=body, headers=headers)).why == "duplicate"
    assert intake.journal.jobs.known("INTAKE-1") == "queued"


def test_a_message_id_that_differs_from_the_job_id_is_refused(intake):
    body, headers = signed(KEY, sample_job("INTAKE-2", two_sided=False, destination=UNIT).body)
    decision = intake.job(Delivery(body=body, headers=headers, message_id="OTHER"))
    assert decision.action == "reject"


def test_a_bad_copy_of_a_known_job_gets_no_second_status(intake):
    body, headers = signed(KEY, sample_job("INTAKE-3", two_sided=False, destination=UNIT).body)
    intake.job(Delivery(body=body, headers=headers))
    before = intake.journal.outbox.last_seq()
    tampered = json.dumps({**json.loads(body), "reference": "changed"}).encode()
    assert intake.job(Delivery(body=tampered, headers=headers)).action == "reject"
    assert intake.journal.outbox.last_seq() == before


def test_a_store_failure_the_space_probe_cannot_see_stops_the_station_not_the_job(
        tmp_path, monkeypatch):
    """A damaged journal (or a bug) that fails every job while a trial write succeeds must
    not have the station take, fail and return the same job until the broker's delivery
    limit dead-letters it without a status: after a few rounds it stops and says so."""
    import sqlite3

    from printstation.agent.station import storefault

    monkeypatch.setattr(storefault, "STORE_RETRY_SECONDS", 0.0)
    journal = Journal(tmp_path, "unit")
    unit = Intake(journal, Verifier({KEY_ID: KEY.public_key()}), None)

    def damaged(*args, **kwargs):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(journal.jobs, "take", damaged)
    body, headers = signed(KEY, sample_job("FAULT-1", two_sided=False, destination=UNIT).body)
    requeued = 0
    for _ in range(20):  # the broker's delivery limit
        if not unit.fault.cleared():
            continue  # not consuming: the job waits in its queue, its deliveries unspent
        decision = unit.job(Delivery(body=body, headers=headers))
        assert decision.action == "requeue"
        requeued += 1
    assert requeued == storefault.MAX_RESUMES + 1
    assert unit.fault.stuck and "malformed" in unit.fault.why
    assert journal.jobs.known("FAULT-1") is None


def test_a_cancel_older_than_the_retention_period_is_refused(tmp_path):
    """A late cancel is acted on (refusing it would print a cancelled card), unless it is
    older than the ids the station keeps (a replay of it could not be told apart) or dated
    in the future beyond the skew (it waited in no queue)."""
    import datetime

    from printstation.agent.station.intake import ControlActions, Policy

    journal = Journal(tmp_path, "unit")
    cancelled: list[str] = []
    actions = ControlActions(pause=lambda *a: None, resume=lambda *a: None,
                             telemetry=lambda: None,
                             cancel=lambda job_id, *a: cancelled.append(job_id) or "done")
    unit = Intake(journal, Verifier({KEY_ID: KEY.public_key()}), actions,
                  Policy(station_id="unit", job_retention_days=30))
    body, headers = signed(KEY, sample_job("RECENT", two_sided=False, destination=UNIT).body)
    assert unit.job(Delivery(body=body, headers=headers)).why == "accepted"
    now = datetime.datetime.now().astimezone()
    for job_id, age in (("LATE", datetime.timedelta(hours=15)),
                        ("ANCIENT", datetime.timedelta(days=31)),
                        ("FUTURE", -datetime.timedelta(days=1))):  # no queue waits backwards
        raw, hdrs = signed(KEY, {"schema": "printstation.control/2", "command": "cancel",
                                 "command_id": f"c-{job_id}", "station_id": "unit",
                                 "issued_at": (now - age).isoformat(), "job_id": job_id})
        unit.control(Delivery(body=raw, headers=hdrs, source="control"))
    assert cancelled == ["LATE"]
