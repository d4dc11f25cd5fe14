"""Contract section 7: recovery at start-up, operator resolution, pool hand-back."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from printstation.agent.central.samples import sample_job
from printstation.agent.central.tools import EventTap, HandbackRelay
from printstation.agent.contract import Job
from printstation.agent.station.journal import Journal
from printstation.agent.surfaces.control_socket import ControlError, call
from printstation.drivers.base import FaultCode
from tests.support import control_answers, signed, wait_for
from tests.support.broker import Events


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "printstation.agent", *args],
                          capture_output=True, text=True, timeout=60)


def _left_printing(state_dir, station_id: str, job_id: str, counter_before: int,
                   source: str = "station", key=None) -> dict:
    """A journal as an agent leaves it when it dies with a card in the printer."""
    destination = source.replace(":", ".") if source.startswith("pool:") else \
        f"station.{station_id}"
    body = sample_job(job_id, two_sided=False, destination=destination).body
    raw, headers = signed(key, body) if key else (json.dumps(body).encode(), {})
    journal = Journal(state_dir, station_id)
    journal.jobs.take(Job.model_validate(body), raw, headers, source)
    if counter_before >= 0:
        journal.progress.start_printing(job_id, counter_before)
    journal.close()
    return body


@pytest.mark.parametrize(("printed", "status", "outcome"), [
    (True, "printed", "issued"), (False, "failed", "spoiled")])
def test_a_card_cut_off_by_a_crash_is_resolved_by_an_operator(
        tmp_path, make_station, events, station_id, printed, status, outcome):
    state = tmp_path / "state"
    job_id = f"CRASH-{station_id}"
    _left_printing(state, station_id, job_id, counter_before=41)
    # The printer's counter moved on: a blank was drawn; whether it printed, nobody knows.
    station = make_station(station_id, state_dir=state, sim="print_time=0.05&counter=42")
    wait_for(lambda: [e for e in events.statuses(job_id) if e["status"] == "needs_check"],
             what="needs_check")
    assert station.ledger() == []  # never a blind reprint
    out = cli("resolve", job_id, "--printed" if printed else "--not-printed", "--why",
              "checked the output hopper", "--state-dir", str(state))
    assert out.returncode == 0, out.stderr
    final = events.wait_final([job_id])[job_id]
    assert final["status"] == status
    assert final["reason"]["code"] == "operator_resolved"
    cards = wait_for(lambda: [e for e in events.pump() if e["schema"] == "printstation.card/1"],
                     what="the card event")
    assert [(c["job_id"], c["outcome"]) for c in cards] == [(job_id, outcome)]
    again = cli("resolve", job_id, "--printed", "--why", "twice", "--state-dir", str(state))
    assert again.returncode == 2 and "not needs_check" in again.stderr


def test_a_card_that_never_left_the_feeder_is_printed_once_after_a_crash(
        tmp_path, make_station, events, station_id):
    state = tmp_path / "state"
    job_id = f"NOTDRAWN-{station_id}"
    _left_printing(state, station_id, job_id, counter_before=7)
    station = make_station(station_id, state_dir=state, sim="print_time=0.05&counter=7")
    final = events.wait_final([job_id])[job_id]
    assert final["status"] == "printed"
    assert station.issued() == [job_id]


def test_a_pool_job_not_started_goes_back_to_the_pool_at_restart(
        tmp_path, make_station, broker_url, submitter, signing_key):
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    a_id, b_id = f"ra-{pool}", f"rb-{pool}"
    state = tmp_path / "state-a"
    job_id = f"RESTART-{pool}"
    with EventTap(broker_url, binding="status.#") as tap, \
            HandbackRelay(broker_url, check_sender=False) as central:
        events = Events(tap)
        # Station a took the job from the pool and died before printing it.
        body = _left_printing(state, a_id, job_id, counter_before=-1, source=f"pool:{pool}",
                              key=signing_key)
        b = make_station(b_id, pools=[pool])  # declares the pool queue
        make_station(a_id, pools=[pool], state_dir=state, sim="faults=cover_open")
        released = wait_for(lambda: [e for e in events.statuses(job_id)
                                     if e["status"] == "released"], what="released")[0]
        assert released["station_id"] == a_id
        assert released["reason"]["code"] == "handed_back"
        # The central system sends it again, once it heard the release.
        assert wait_for(central.relay, 30, "the hand-back relayed") == [job_id]
        final = events.wait_final([job_id])[job_id]
    assert final["status"] == "printed" and final["station_id"] == b_id
    assert b.issued() == [job_id]
    assert body["job_id"] == job_id


def test_a_fault_that_lasts_hands_pool_jobs_back_to_other_stations(
        make_station, broker_url, submitter):
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    a = make_station(f"fa-{pool}", pools=[pool], sim="print_time=1.0", handback_after=0.5)
    jobs = [sample_job(f"HB-{pool}-{i}", two_sided=False).body for i in range(2)]
    with EventTap(broker_url, binding="status.#") as tap, \
            HandbackRelay(broker_url, check_sender=False) as central:
        events = Events(tap)
        for job in jobs:
            submitter.submit_job(job, pool=pool)
        # a prints the first and claims the second while it prints; then the cover opens.
        wait_for(lambda: len([e for e in events.statuses() if e["status"] == "accepted"]) == 2,
                 what="both jobs claimed by a")
        a.printer.inject(FaultCode.COVER_OPEN)
        second = jobs[1]["job_id"]
        released = wait_for(lambda: [e for e in events.statuses(second)
                                     if e["status"] == "released"], what="hand-back")[0]
        assert released["reason"]["code"] == "handed_back"
        assert wait_for(central.relay, 30, "the hand-back relayed") == [second]
        b = make_station(f"fb-{pool}", pools=[pool])
        final = events.wait_final([second], timeout=30)[second]
    assert final["station_id"] == b.agent.settings.station_id
    assert b.issued() == [second] and second not in a.issued()


def test_operators_act_through_the_control_socket(tmp_path, make_station, submitter, events,
                                                  station_id):
    station = make_station(station_id)
    state = station.agent.settings.state_dir
    assert cli("pause", "--why", "loading cards", "--state-dir", str(state)).returncode == 0
    wait_for(station.agent.station.paused, what="paused")
    job = sample_job(f"OP-{station_id}", two_sided=False).body
    submitter.submit_job(job, station=station_id)
    wait_for(lambda: station.agent.journal.jobs.known(job["job_id"]) == "queued", what="queued")
    listing = cli("jobs", "--state-dir", str(state))
    assert job["job_id"] in listing.stdout and "waiting" in listing.stdout
    for secret in sample_job(job["job_id"], two_sided=False).personal:
        assert secret not in listing.stdout
    out = cli("cancel", job["job_id"], "--why", "citizen withdrew", "--state-dir", str(state))
    assert out.returncode == 0, out.stderr
    final = events.wait_final([job["job_id"]])[job["job_id"]]
    assert final["status"] == "cancelled"
    assert final["reason"]["code"] == "cancelled_by_operator"
    status = cli("status", "--state-dir", str(state))
    assert "paused" in status.stdout
    with pytest.raises(ControlError, match="unknown command 'explode'"):
        call(state, {"cmd": "explode"})
    with pytest.raises(ControlError, match="cancel needs why"):
        call(state, {"cmd": "cancel", "job_id": "x"})
    with pytest.raises(ControlError, match="only a job not yet printing"):
        call(state, {"cmd": "cancel", "job_id": job["job_id"], "why": "again"})


def test_sighup_reloads_good_settings_and_refuses_bad_ones(tmp_path, broker_url, station_id):
    import os
    import signal

    from printstation.agent.surfaces.control_socket import call as control

    cfg = tmp_path / "station.toml"
    base = (f'station_id = "{station_id}"\nbroker_url = "{broker_url}"\n'
            f'printer_url = "sim://?render=0&out={tmp_path / "cards"}"\n'
            f'state_dir = "{tmp_path / "state"}"\nverify_signatures = false\n')
    cfg.write_text(base)
    log_path = tmp_path / "agent.log"
    with log_path.open("w") as log:
        agent = subprocess.Popen([sys.executable, "-m", "printstation.agent", "run",
                                  "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                 env={**os.environ})
    try:
        wait_for(lambda: control_answers(tmp_path / "state"), 30, "the control socket")
        cfg.write_text(base + "max_attempts = 0\n")
        agent.send_signal(signal.SIGHUP)
        wait_for(lambda: "config_reload_rejected" in log_path.read_text(), 20, "the refusal")
        refusal = next(json.loads(x) for x in log_path.read_text().splitlines()
                   if "config_reload_rejected" in x)
        assert "config key max_attempts" in refusal["error"]
        assert control(tmp_path / "state", {"cmd": "status"})["ok"]  # still running
        cfg.write_text(base + "max_attempts = 5\nhandback_after = 10\n")
        agent.send_signal(signal.SIGHUP)
        wait_for(lambda: "config_reloaded" in log_path.read_text(), 20, "the reload")
        reloaded = next(json.loads(x) for x in log_path.read_text().splitlines()
                    if "config_reloaded" in x)
        assert sorted(reloaded["applied"]) == ["handback_after", "max_attempts"]
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0

