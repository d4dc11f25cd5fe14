"""A hostile world (issue: contract v2): forged and replayed messages, poison, a full disk,
a second agent. Each test reproduces a defect an adversarial review found, against the real
broker, and shows it fixed."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import uuid

import pika
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from printstation.agent.central.samples import sample_job
from printstation.agent.central.tools import EventTap, HandbackRelay
from printstation.agent.signing import sign_headers
from printstation.agent.surfaces.control_socket import call
from tests.support import KEY_ID, signed, wait_for
from tests.support.broker import Events, ready_messages


def _publish(broker_url: str, exchange: str, routing_key: str, body: bytes, headers: dict,
             message_id: str | None = None, user_id: str | None = None) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(exchange, routing_key, body,
                         pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                              headers=headers, message_id=message_id,
                                              user_id=user_id),
                         mandatory=True)
    finally:
        conn.close()


def _control(key: Ed25519PrivateKey, station: str, command: str, **fields) -> tuple[bytes, dict]:
    doc = {"schema": "printstation.control/2", "command_id": f"c-{uuid.uuid4().hex}",
           "issued_at": datetime.datetime.now().astimezone().isoformat(),
           "station_id": station, "command": command, **fields}
    return signed(key, doc)


# ------------------------------------------------------------------ forged and replayed


@pytest.mark.parametrize("where", ["station", "pool"])
def test_a_forged_message_naming_a_job_does_not_stop_the_genuine_job(
        where, make_station, submitter, broker_url, station_id, signing_key):
    pool = f"fp-{uuid.uuid4().hex[:8]}"
    station = make_station(station_id, pools=[pool])
    job = sample_job(f"FORGED-{station_id}", two_sided=False).body
    rk = f"station.{station_id}" if where == "station" else f"pool.{pool}"
    forged = json.dumps({**job, "destination": rk}).encode()
    with EventTap(broker_url, binding=f"status.{station_id}.#") as tap:
        events = Events(tap)
        for headers in ({}, sign_headers(Ed25519PrivateKey.generate(), KEY_ID, forged)):
            _publish(broker_url, "printstation.jobs", rk, forged, headers, job["job_id"])
        wait_for(lambda: len([e for e in events.statuses(job["job_id"])
                              if e["status"] == "rejected"]) == 2, 30, "both forgeries refused")
        submitter.submit_job(job, **{where: station_id if where == "station" else pool})
        final = wait_for(lambda: [e for e in events.statuses(job["job_id"])
                                  if e["status"] == "printed"], 30, "the genuine job printed")
    assert final[0]["card"]["card_no"] >= 1
    assert station.issued() == [job["job_id"]]


def test_a_job_replayed_to_another_station_never_prints_there(
        make_station, submitter, broker_url, signing_key):
    run = uuid.uuid4().hex[:8]
    a, b = make_station(f"ra-{run}"), make_station(f"rb-{run}")
    job = sample_job(f"REPLAY-{run}", two_sided=False, destination=f"station.ra-{run}").body
    raw, headers = signed(signing_key, job)
    with EventTap(broker_url, binding="status.#") as tap:
        events = Events(tap)
        # What station b's login (or anyone) could do with a copy of a's signed job.
        _publish(broker_url, "printstation.jobs", f"station.rb-{run}", raw, headers,
                 job["job_id"])
        refused = wait_for(lambda: [e for e in events.statuses(job["job_id"])
                                    if e["station_id"] == f"rb-{run}"], 30, "b's answer")[0]
        assert refused["status"] == "rejected"
        assert refused["reason"]["code"] == "wrong_destination"
        assert "station.ra-" in refused["reason"]["detail"]
        _publish(broker_url, "printstation.jobs", f"station.ra-{run}", raw, headers,
                 job["job_id"])
        printed = wait_for(lambda: [e for e in events.statuses(job["job_id"])
                                    if e["status"] == "printed"], 30, "a prints it")[0]
    assert printed["station_id"] == f"ra-{run}"
    assert a.issued() == [job["job_id"]] and b.issued() == []


def test_a_signed_job_with_broker_timestamps_in_its_headers_is_taken(
        make_station, events, broker_url, station_id, signing_key):
    """A re-driven dead letter carries `x-death` with timestamps: they are not JSON."""
    station = make_station(station_id)
    job = sample_job(f"XDEATH-{station_id}", two_sided=False,
                     destination=f"station.{station_id}").body
    raw, headers = signed(signing_key, job)
    death = {"count": 1, "reason": "rejected", "queue": "printstation.station.x",
             "time": datetime.datetime(2026, 11, 27, 8, 0, 0), "exchange": "printstation.jobs",
             "routing-keys": [f"station.{station_id}"]}
    _publish(broker_url, "printstation.jobs", f"station.{station_id}", raw,
             {**headers, "x-death": [death], "x-first-death-reason": "rejected"}, job["job_id"])
    final = events.wait_final([job["job_id"]])[job["job_id"]]
    assert final["status"] == "printed"
    stored = station.agent.journal.store.db.execute(
        "SELECT COUNT(*) FROM job_data").fetchone()[0]
    assert stored == 0  # and its data erased once printed
    assert station.issued() == [job["job_id"]]


# ------------------------------------------------------------------------------- poison


def test_poison_messages_never_stop_the_consumer(make_station, submitter, events, broker_url,
                                                 station_id, signing_key, raw_publish):
    station = make_station(station_id)
    newline = json.dumps({"schema": "printstation.job/2", "job_id": "POISON-1\n"}).encode()
    raw_publish(station_id, newline, {}, message_id="POISON-1\n")
    huge = b'{"schema": "printstation.control/2", "command": "pause", "n": ' + b"9" * 5000 + b"}"
    raw_publish(station_id, huge, sign_headers(signing_key, KEY_ID, huge),
                exchange="printstation.control")
    job = sample_job(f"AFTER-POISON-{station_id}", two_sided=False).body
    submitter.submit_job(job, station=station_id)
    assert events.wait_final([job["job_id"]], timeout=15)[job["job_id"]]["status"] == "printed"
    assert station.agent.station.broker.all_up and station.agent.fatal is None
    assert not station.agent.station.paused()
    assert ready_messages(broker_url, f"printstation.station.{station_id}") == 0
    assert ready_messages(broker_url, f"printstation.control.{station_id}") == 0


# ------------------------------------------------------------------------------ control


def test_a_cancel_that_comes_before_its_job_is_remembered(
        make_station, submitter, events, broker_url, station_id, signing_key):
    station = make_station(station_id)
    job = sample_job(f"EARLY-CANCEL-{station_id}", two_sided=False).body
    raw, headers = _control(signing_key, station_id, "cancel", job_id=job["job_id"],
                            reason="citizen withdrew")
    _publish(broker_url, "printstation.control", f"station.{station_id}", raw, headers)
    told = wait_for(lambda: events.statuses(job["job_id"]), 20, "the cancel's outcome")[0]
    assert (told["status"], told["reason"]["code"]) == ("cancelled", "cancel_unknown")
    # The same cancel sent again (a new command) says nothing new.
    again = _control(signing_key, station_id, "cancel", job_id=job["job_id"])
    _publish(broker_url, "printstation.control", f"station.{station_id}", *again)
    submitter.submit_job(job, station=station_id)
    wait_for(lambda: station.agent.journal.jobs.known(job["job_id"]) == "cancelled", 20,
             "the job to end cancelled on arrival")
    # Its one terminal status was said when the cancel came: nothing printed, nothing more.
    assert [e["status"] for e in events.statuses(job["job_id"])] == ["cancelled"]
    assert station.issued() == []
    # A cancel for a job that printed changes nothing and says no second `printed` (a
    # second SMS to the citizen); one that waited hours in its queue still cancels.
    done = sample_job(f"DONE-{station_id}", two_sided=False).body
    submitter.submit_job(done, station=station_id)
    events.wait_final([done["job_id"]])
    late = _control(signing_key, station_id, "cancel", job_id=done["job_id"])
    _publish(broker_url, "printstation.control", f"station.{station_id}", *late)
    wait_for(lambda: station.agent.journal.control.command_seen(json.loads(late[0])["command_id"]),
             20, "the late cancel to be handled")
    assert [e["status"] for e in events.statuses(done["job_id"])].count("printed") == 1
    station.agent.station.pause("operator", "hold the next job")
    held = sample_job(f"HELD-{station_id}", two_sided=False).body
    submitter.submit_job(held, station=station_id)
    wait_for(lambda: station.agent.journal.jobs.known(held["job_id"]) == "queued", 20, "queued")
    hours_ago = datetime.datetime.now().astimezone() - datetime.timedelta(hours=15)
    stale = _control(signing_key, station_id, "cancel", job_id=held["job_id"],
                     issued_at=hours_ago.isoformat())
    _publish(broker_url, "printstation.control", f"station.{station_id}", *stale)
    final = events.wait_final([held["job_id"]])[held["job_id"]]
    assert (final["status"], final["reason"]["code"]) == ("cancelled", "cancelled_by_central")


def test_a_command_acts_once_only_here_and_only_while_fresh(
        make_station, broker_url, station_id, signing_key):
    station = make_station(station_id)
    send = lambda raw, headers: _publish(  # noqa: E731
        broker_url, "printstation.control", f"station.{station_id}", raw, headers)
    pause = _control(signing_key, station_id, "pause", reason="lunch")
    send(*pause)
    wait_for(station.agent.station.paused, 20, "paused")
    send(*_control(signing_key, station_id, "resume"))
    wait_for(lambda: not station.agent.station.paused(), 20, "resumed")
    old = datetime.datetime.now().astimezone() - datetime.timedelta(minutes=11)
    for raw, headers in (
            pause,  # the same command again: a replay
            _control(signing_key, station_id, "pause", issued_at=old.isoformat()),
            _control(signing_key, f"other-{station_id}", "pause")):
        send(raw, headers)
    marker = _control(signing_key, station_id, "telemetry")
    send(*marker)
    command_id = json.loads(marker[0])["command_id"]
    wait_for(lambda: station.agent.journal.control.command_seen(command_id), 20, "the last command")
    assert not station.agent.station.paused()
    dead = _dead_control(broker_url, station_id)
    assert len(dead) == 2  # the stale one and the other station's; the replay is acked


def _dead_control(broker_url: str, station_id: str) -> list[dict]:
    """Take this station's dead control commands; leave every other dead letter queued."""
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    found = []
    try:
        ch = conn.channel()
        while True:
            method, props, body = ch.basic_get("printstation.dead")
            if method is None:
                return found
            deaths = (props.headers or {}).get("x-death") or [{}]
            if deaths[0].get("queue") == f"printstation.control.{station_id}":
                ch.basic_ack(method.delivery_tag)
                found.append(json.loads(body))
    finally:
        conn.close()  # what was not acknowledged goes back to the queue


# ----------------------------------------------------------------------- migration, chip


def test_version_1_jobs_print_only_while_migration_is_on(make_station, broker_url,
                                                          signing_key):
    run = uuid.uuid4().hex[:8]
    strict = make_station(f"v2-{run}")
    migrating = make_station(f"v1-{run}", accept_contract_v1=True)
    with EventTap(broker_url, binding="#") as tap:
        events = Events(tap)
        for station in (strict, migrating):
            sid = station.agent.settings.station_id
            v1 = {k: v for k, v in sample_job(f"V1-{sid}", two_sided=False).body.items()}
            v1["schema"] = "printstation.job/1"
            raw, headers = signed(signing_key, v1)
            _publish(broker_url, "printstation.jobs", f"station.{sid}", raw, headers,
                     v1["job_id"])
        finals = events.wait_final([f"V1-v2-{run}", f"V1-v1-{run}"])
        telemetry = wait_for(lambda: [e for e in events.pump()
                                      if e["schema"] == "printstation.telemetry/1"
                                      and e["station_id"] == f"v1-{run}"], 20, "telemetry")
    assert finals[f"V1-v2-{run}"]["status"] == "rejected"
    assert finals[f"V1-v2-{run}"]["reason"]["code"] == "unknown_schema"
    assert finals[f"V1-v1-{run}"]["status"] == "printed"
    assert all(t["contract_v1_accepted"] for t in telemetry)


def test_a_job_with_a_chip_fails_without_an_encoder_and_uses_no_blank(
        make_station, submitter, events, station_id):
    import base64

    station = make_station(station_id)
    script = json.dumps({"commands": [{"apdu": "00A4040007A0000002471001",
                                       "expect": ["9000"]}]}).encode()
    job = sample_job(f"CHIP-{station_id}", two_sided=False).body
    job["chip"] = {"profile": "apdu-script/1", "data": base64.b64encode(script).decode()}
    submitter.submit_job(job, station=station_id)
    final = events.wait_final([job["job_id"]])[job["job_id"]]
    assert (final["status"], final["reason"]["code"]) == ("failed", "no_encoder")
    assert station.ledger() == [] and station.agent.journal.cards.drawn() == 0


def test_a_job_created_before_the_retention_period_is_refused(
        make_station, submitter, events, station_id):
    """Judged in the central system's time (the newest `created_at` seen), never by the
    PC's clock: a PC whose clock is wrong neither forgets early nor refuses everything."""
    make_station(station_id, job_retention_days=30)
    recent = sample_job(f"NEW-{station_id}", two_sided=False).body
    submitter.submit_job(recent, station=station_id)
    events.wait_final([recent["job_id"]])
    job = sample_job(f"OLD-{station_id}", two_sided=False).body
    created = datetime.datetime.now().astimezone() - datetime.timedelta(days=31)
    job["created_at"] = created.isoformat()
    submitter.submit_job(job, station=station_id)
    final = events.wait_final([job["job_id"]])[job["job_id"]]
    assert (final["status"], final["reason"]["code"]) == ("failed", "too_old")


# --------------------------------------------------------------------------- one agent


def test_a_second_agent_on_the_same_state_folder_refuses_to_start(make_station, station_id):
    station = make_station(station_id)
    state = station.agent.settings.state_dir
    second = subprocess.run(
        [sys.executable, "-m", "printstation.agent", "run", "--station-id", station_id,
         "--state-dir", str(state), "--printer-url", "sim://?render=0"],
        capture_output=True, text=True, timeout=60)
    assert second.returncode == 2
    line = second.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert f"another agent (pid {__import__('os').getpid()})" in line
    assert call(state, {"cmd": "status"})["ok"]  # the first one's socket is still there


def test_a_station_handing_back_a_job_it_printed_gets_no_second_card(
        make_station, submitter, broker_url, central_relay, signing_key):
    """A station's login may write on printstation.handback: the central system sends a
    hand-back to the pool again only for a job no station printed or holds."""
    pool = f"hb-{uuid.uuid4().hex[:8]}"
    a = make_station(f"hba-{pool}", pools=[pool])
    job = sample_job(f"HB-REPLAY-{pool}", two_sided=False).body
    with EventTap(broker_url, binding="status.#") as tap:
        events = Events(tap)
        submitter.submit_job(job, pool=pool)
        events.wait_final([job["job_id"]])
        # What a holds: the genuine signed body the central system sent to the pool.
        body, headers = signed(signing_key, {**job, "destination": f"pool.{pool}"})
        central_relay.relay()  # it has heard the job printed
        b = make_station(f"hbb-{pool}", pools=[pool])
        # What a's login can do: publish the job it printed as a hand-back.
        _publish(broker_url, "printstation.handback", f"pool.{pool}", body, headers,
                 job["job_id"], user_id="guest")
        wait_for(lambda: central_relay.relay() == [] and central_relay.dropped, 30,
                 "the relay to drop it")
    assert central_relay.dropped[0][0] == job["job_id"]
    assert "printed" in central_relay.dropped[0][1]
    assert a.issued() == [job["job_id"]] and b.issued() == []
    assert ready_messages(broker_url, f"printstation.pool.{pool}") == 0


def test_a_station_takes_nothing_from_a_pool_of_another_stock(
        make_station, submitter, broker_url):
    """Contract 7.3: a station whose feeder holds another stock takes no pool jobs (it
    cannot know a job's stock before taking it, so it knows its pools' stock), and a job
    of another stock that reaches it all the same ends `failed` (`stock_mismatch`, 3)."""
    pool = f"mix-{uuid.uuid4().hex[:8]}"
    kia = make_station(f"ki-{pool}", pools=[pool], pool_stocks={pool: "ektp"},
                       card_stock="kia", sim="print_time=0.05&render=0&stock=kia")
    assert not kia.agent.station.can_take_pool_job(pool)
    job = sample_job(f"EKTP-POOL-{pool}", two_sided=False).body
    with EventTap(broker_url, binding="status.#") as tap:
        events = Events(tap)
        submitter.submit_job(job, pool=pool)
        ektp = make_station(f"ek-{pool}", pools=[pool], pool_stocks={pool: "ektp"})
        final = events.wait_final([job["job_id"]], timeout=40)[job["job_id"]]
        assert final["status"] == "printed" and final["station_id"] == f"ek-{pool}"
        assert {e["station_id"] for e in events.statuses(job["job_id"])} == {f"ek-{pool}"}
        assert kia.ledger() == [] and ektp.issued() == [job["job_id"]]
        stray = sample_job(f"KIA-POOL-{pool}", card_stock="kia", two_sided=False).body
        submitter.submit_job(stray, pool=pool)
        final = events.wait_final([stray["job_id"]], timeout=40)[stray["job_id"]]
    assert (final["status"], final["reason"]["code"]) == ("failed", "stock_mismatch")
    assert final["station_id"] == f"ek-{pool}" and ektp.issued() == [job["job_id"]]


def test_a_station_that_once_held_a_job_cannot_release_it_again_for_a_second_copy(
        tmp_path, make_station, submitter, broker_url, signing_key):
    """After a real hand-back was sent to the pool and another station took it, the first
    station's login hands the body back again with a `released` in its own name: the relay
    believes releases only from the station holding the job, once per release."""
    from datetime import UTC

    from printstation.agent.contract import Job
    from printstation.agent.station.journal import Journal

    pool = f"sr-{uuid.uuid4().hex[:8]}"
    a_id, b_id, c_id = f"sra-{pool}", f"srb-{pool}", f"src-{pool}"
    x = sample_job(f"X-{pool}", two_sided=False, destination=f"pool.{pool}").body
    raw, headers = signed(signing_key, x)
    state = tmp_path / "state-a"
    journal = Journal(state, a_id)  # a took X from the pool earlier and did not print it
    journal.jobs.take(Job.model_validate(x), raw, headers, f"pool:{pool}", claiming=True)
    journal.jobs.confirm_claim(x["job_id"])
    journal.close()
    with EventTap(broker_url, binding="status.#") as tap, \
            HandbackRelay(broker_url, user_for_station=lambda s: "guest") as relay:
        events = Events(tap)
        b = make_station(b_id, pools=[pool], sim="print_time=8&render=0")
        first = sample_job(f"J1-{pool}", two_sided=False).body
        submitter.submit_job(first, pool=pool)
        wait_for(lambda: [e for e in events.statuses(first["job_id"])
                          if e["status"] == "printing"], 30, "b printing its first card")
        make_station(a_id, pools=[pool], state_dir=state, sim="faults=cover_open")
        assert wait_for(relay.relay, 30, "a's hand-back relayed") == [x["job_id"]]
        wait_for(lambda: [e for e in events.statuses(x["job_id"])
                          if e["status"] == "accepted" and e["station_id"] == b_id], 30,
                 "b holding X")
        forged = {"schema": "printstation.status/1", "station_id": a_id, "seq": 10**6,
                  "at": datetime.datetime.now(UTC).isoformat(), "job_id": x["job_id"],
                  "reference": x["reference"], "status": "released", "attempt": 0,
                  "reason": {"code": "handed_back", "detail": "fault"}, "card": None}
        _publish(broker_url, "printstation.events", f"status.{a_id}.released",
                 json.dumps(forged).encode(), {})
        _publish(broker_url, "printstation.handback", f"pool.{pool}", raw, headers,
                 x["job_id"], user_id="guest")  # a's own (verified) broker user
        wait_for(lambda: [e for e in events.statuses(x["job_id"]) if e["seq"] == 10**6], 20,
                 "the forged release heard")
        assert relay.relay() == []
        c = make_station(c_id, pools=[pool])
        wait_for(lambda: x["job_id"] in b.issued(), 60, "b to print X")
        assert relay.relay() == []
    assert c.issued() == []
