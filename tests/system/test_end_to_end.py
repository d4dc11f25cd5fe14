"""Jobs through the real broker, printed on the simulator, statuses back (contract v1)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pika
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from printstation.agent.central.samples import sample_job
from printstation.agent.contract import MAX_BODY_BYTES
from printstation.agent.signing import sign_headers
from tests.support import KEY_ID, signed, wait_for
from tests.support.broker import close_agent_connections


def test_signed_jobs_are_printed_once_each_with_statuses_in_order(
        events, make_station, submitter, station_id):
    station = make_station(station_id)
    job_ids = [f"E2E-{station_id}-{i}" for i in range(4)]
    for i, job_id in enumerate(job_ids):
        submitter.submit_job(sample_job(job_id, two_sided=i % 2 == 0).body, station=station_id)
    finals = events.wait_final(job_ids)

    assert {j: f["status"] for j, f in finals.items()} == dict.fromkeys(job_ids, "printed")
    assert sorted(station.issued()) == sorted(job_ids)
    for job_id in job_ids:
        flow = [e["status"] for e in events.statuses(job_id)]
        assert flow == ["accepted", "printing", "printed"], flow
    cards = [e for e in events.all if e["schema"] == "printstation.card/1"]
    assert sorted(c["job_id"] for c in cards) == sorted(job_ids)
    assert {finals[j]["card"]["card_no"] for j in job_ids} == {c["card_no"] for c in cards}
    seqs = [e["seq"] for e in events.all]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # A terminal job's images are gone from the journal.
    assert all(station.agent.journal.jobs.get(j).body is None for j in job_ids)


def test_a_job_delivered_twice_gives_one_card(events, make_station, submitter, station_id):
    station = make_station(station_id)
    job = sample_job(f"DUP-{station_id}").body
    submitter.submit_job(job, station=station_id)
    submitter.submit_job(job, station=station_id)
    events.wait_final([job["job_id"]])
    wait_for(lambda: station.agent.journal.outbox.backlog() == 0, what="the outbox to drain")
    submitter.submit_job(job, station=station_id)  # and once more after it was printed
    wait_for(lambda: station.printer.counter >= 1 and station.agent.printer.idle.is_set(),
             what="the printer to be idle")
    wait_for(lambda: _queue_empty(submitter, f"printstation.station.{station_id}"),
             what="the station queue to drain")
    assert station.issued() == [job["job_id"]]
    assert [e["status"] for e in events.statuses(job["job_id"])] == [
        "accepted", "printing", "printed"]


def _queue_empty(submitter, queue: str) -> bool:
    ch = submitter._conn.channel()
    try:
        q = ch.queue_declare(queue, passive=True)
        return q.method.message_count == 0
    finally:
        ch.close()


def _dead_letters(broker_url: str, expected: int, timeout: float = 20.0) -> list:
    """Take at least `expected` messages from the dead-letter queue (shared by the vhost)."""
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    got: list = []

    def pull():
        while True:
            method, props, body = ch.basic_get("printstation.dead", auto_ack=True)
            if method is None:
                break
            got.append((props, body))
        return len(got) >= expected

    try:
        wait_for(pull, timeout, f"{expected} dead letters")
    finally:
        conn.close()
    return got


def test_bad_messages_are_dead_lettered_and_rejected_never_printed(
        events, make_station, raw_publish, broker_url, station_id, signing_key):
    station = make_station(station_id)
    other_key = Ed25519PrivateKey.generate()
    good = sample_job(f"BAD-{station_id}-x", two_sided=False,
                      destination=f"station.{station_id}").body

    def body_for(job_id: str, **changes) -> bytes:
        return json.dumps({**good, "job_id": job_id, **changes}).encode()

    unsigned = body_for(f"BAD-{station_id}-unsigned")
    forged = body_for(f"BAD-{station_id}-forged")
    unknown_key = body_for(f"BAD-{station_id}-unknownkey")
    schema = body_for(f"BAD-{station_id}-schema", schema="printstation.job/3")
    bad_image = body_for(f"BAD-{station_id}-image",
                         sides={"front": {"image": "aGVsbG8=", "overlay": True}})
    cases = {
        f"BAD-{station_id}-unsigned": (unsigned, {}, "bad_signature"),
        f"BAD-{station_id}-forged": (forged, sign_headers(other_key, KEY_ID, forged),
                                     "bad_signature"),
        f"BAD-{station_id}-unknownkey": (unknown_key, sign_headers(other_key, "nobody",
                                                                   unknown_key), "bad_signature"),
        f"BAD-{station_id}-schema": (schema, None, "unknown_schema"),
        f"BAD-{station_id}-image": (bad_image, None, "invalid_job"),
        f"BAD-{station_id}-json": (b'{"job_id": "broken', None, "invalid_job"),
        f"BAD-{station_id}-oversize": (b"{" + b" " * MAX_BODY_BYTES + b"}", None, "invalid_job"),
    }
    for job_id, (body, headers, _code) in cases.items():
        if headers is None:
            body, headers = signed(signing_key, body)
        raw_publish(station_id, body, headers, message_id=job_id)
    raw_publish(station_id, b"\xff\xfe not even utf-8", {})  # no job_id to report

    finals = events.wait_final(list(cases))
    for job_id, (_body, _headers, code) in cases.items():
        assert finals[job_id]["status"] == "rejected", job_id
        assert finals[job_id]["reason"]["code"] == code, (job_id, finals[job_id]["reason"])
    dead = [(props, body) for props, body in _dead_letters(broker_url, len(cases) + 1)
            if props.message_id in cases or body.startswith(b"\xff\xfe")]
    assert len(dead) == len(cases) + 1
    assert all(props.headers and "x-death" in props.headers for props, _ in dead)
    assert station.ledger() == []
    assert station.printer.cards_in_feeder == station.printer.params.cards


def test_expired_job_ends_expired_and_is_not_printed(events, make_station, submitter,
                                                    station_id):
    station = make_station(station_id)
    past = datetime.now().astimezone() - timedelta(minutes=1)
    job = sample_job(f"EXP-{station_id}", expires_at=past, two_sided=False).body
    submitter.submit_job(job, station=station_id)
    final = events.wait_final([job["job_id"]])[job["job_id"]]
    assert final["status"] == "expired"
    assert station.ledger() == []


def test_stock_mismatch_fails_without_drawing_a_blank(events, make_station, submitter,
                                                     station_id):
    station = make_station(station_id)
    job = sample_job(f"KIA-{station_id}", card_stock="kia", two_sided=False).body
    submitter.submit_job(job, station=station_id)
    final = events.wait_final([job["job_id"]])[job["job_id"]]
    assert final["status"] == "failed"
    assert final["reason"]["code"] == "stock_mismatch"
    assert station.ledger() == []
    assert station.printer.cards_in_feeder == station.printer.params.cards


def test_control_cancel_before_printing(events, make_station, submitter, station_id):
    station = make_station(station_id)
    submitter.control(station_id, "pause", reason="test")
    wait_for(station.agent.station.paused, what="the agent to pause")
    job = sample_job(f"CAN-{station_id}", two_sided=False).body
    submitter.submit_job(job, station=station_id)
    wait_for(lambda: [e for e in events.statuses(job["job_id"]) if e["status"] == "accepted"],
             what="the job to be accepted")
    submitter.control(station_id, "cancel", job_id=job["job_id"], reason="citizen withdrew")
    final = events.wait_final([job["job_id"]])[job["job_id"]]
    assert final["status"] == "cancelled"
    assert final["reason"]["code"] == "cancelled_by_central"
    submitter.control(station_id, "resume")
    wait_for(lambda: not station.agent.station.paused(), what="the agent to resume")
    wait_for(station.agent.printer.idle.is_set, what="the printer to be idle")
    assert station.ledger() == []


def test_closing_broker_connections_while_jobs_flow_loses_no_status(
        events, make_station, submitter, station_id, vhost):
    station = make_station(station_id, sim="print_time=0.1&render=0")
    job_ids = [f"NET-{station_id}-{i:02d}" for i in range(15)]
    bodies = [sample_job(j, two_sided=False).body for j in job_ids]
    for body in bodies[:8]:
        submitter.submit_job(body, station=station_id)
    wait_for(lambda: station.printer.counter >= 2, what="printing to begin")
    closed = close_agent_connections(vhost)
    assert closed >= 2
    for body in bodies[8:]:
        submitter.submit_job(body, station=station_id)
    wait_for(lambda: station.printer.counter >= 10, what="more cards")
    close_agent_connections(vhost)
    finals = events.wait_final(job_ids, timeout=60)
    assert {f["status"] for f in finals.values()} == {"printed"}
    assert sorted(station.issued()) == sorted(job_ids)
    seqs = sorted({e["seq"] for e in events.all})
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a gap in seq"


def test_seq_keeps_growing_across_restarts(events, make_station, submitter, station_id,
                                           tmp_path):
    state = tmp_path / "state-restart"
    first = make_station(station_id, state_dir=state)
    job = sample_job(f"SEQ-{station_id}-1", two_sided=False).body
    submitter.submit_job(job, station=station_id)
    events.wait_final([job["job_id"]])
    wait_for(lambda: first.agent.journal.outbox.backlog() == 0, what="the outbox to drain")
    last = first.agent.journal.outbox.last_seq()
    first.agent.stop()
    second = make_station(station_id, state_dir=state)
    job2 = sample_job(f"SEQ-{station_id}-2", two_sided=False).body
    submitter.submit_job(job2, station=station_id)
    events.wait_final([job2["job_id"]])
    later = [e["seq"] for e in events.statuses(job2["job_id"])]
    assert min(later) > last
    assert second.agent.journal.outbox.last_seq() > last


def test_topology_mismatch_stops_the_agent_naming_the_queue(make_station, broker_url,
                                                           station_id):
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    conn.channel().queue_declare(f"printstation.station.{station_id}", durable=True)
    conn.close()
    station = make_station(station_id)
    wait_for(lambda: station.agent.fatal, what="the agent to refuse the topology")
    message = str(station.agent.fatal)
    assert f"printstation.station.{station_id}" in message
    assert "x-queue-type" in message or "inequivalent" in message
