"""A disk that fills (contract 6 and 7, v2): nothing is lost, nothing printed unrecorded.

Each test mounts a small tmpfs of its own under the agent's state folder and fills it for
real, so SQLite gets ENOSPC exactly as on a station PC whose disk ran full.
"""

from __future__ import annotations

import time

from printstation.agent.central.samples import sample_job
from printstation.agent.surfaces.control_socket import call
from tests.support import wait_for
from tests.support.broker import ready_messages


def _blocked_by_the_journal(state) -> dict | None:
    t = call(state, {"cmd": "status"})["telemetry"]
    reason = t.get("blocked_reason") or ""
    return t if t["state"] == "blocked" and "journal cannot be written" in reason else None


def test_a_job_the_station_cannot_store_waits_in_its_queue_until_it_can(
        small_disk, make_station, submitter, events, broker_url, station_id):
    state = small_disk.path / "state"
    station = make_station(station_id, state_dir=state)
    wait_for(station.agent.printer.idle.is_set, 20, "the printer thread to be idle")
    small_disk.fill()
    job = sample_job(f"FULL-{station_id}", two_sided=False).body
    submitter.submit_job(job, station=station_id)
    # Not its fault: back to its queue (not dead-lettered), and nothing more is taken.
    telemetry = wait_for(lambda: _blocked_by_the_journal(state), 30,
                         "the station to say it cannot store")
    assert not telemetry["taking_jobs"]
    queue = f"printstation.station.{station_id}"
    wait_for(lambda: ready_messages(broker_url, queue) == 1, 30, "the job back in its queue")
    assert events.statuses(job["job_id"]) == []
    assert station.agent.journal.jobs.known(job["job_id"]) is None

    small_disk.free()
    final = events.wait_final([job["job_id"]], timeout=60)[job["job_id"]]
    assert final["status"] == "printed"
    assert station.issued() == [job["job_id"]]
    alerts = wait_for(lambda: [e for e in events.pump() if e["schema"] == "printstation.alert/1"
                               and e["condition"] == "journal_unwritable"], 60,
                      "the alert, published once the disk took writes again")
    assert alerts[0]["severity"] == "critical" and not alerts[0]["cleared"]
    wait_for(lambda: [e for e in events.pump() if e["schema"] == "printstation.alert/1"
                      and e["condition"] == "journal_unwritable" and e["cleared"]], 60,
             "the alert cleared")


def test_a_card_whose_outcome_cannot_be_recorded_is_recorded_before_the_next_blank(
        small_disk, sim_process, make_station, submitter, events, station_id):
    sim = sim_process("print_time=1.5", "render=0")
    station = make_station(station_id, state_dir=small_disk.path / "state",
                           printer_url=sim.tcp_url + "?timeout=3")
    printer = station.agent.printer
    wait_for(printer.idle.is_set, 20, "the printer thread to be idle")
    jobs = [sample_job(f"MIDCARD-{station_id}-{i}", two_sided=False).body for i in (1, 2)]
    for job in jobs:
        submitter.submit_job(job, station=station_id)
    wait_for(lambda: sim.control(cmd="status")["printing"], 30, "the first card in print")
    small_disk.fill()
    wait_for(lambda: [c for c in sim.ledger() if c["outcome"] == "issued"], 30,
             "the first card out of the printer")
    wait_for(lambda: "journal" in (printer.snapshot.error or ""), 30,
             "the printer thread to find the journal full")
    failed_at = time.monotonic()
    # The printer thread retries every 5 s; let it come round twice while the disk is full.
    wait_for(lambda: printer.heartbeat > failed_at + 6, 30, "two rounds of the printer loop")
    assert sim.control(cmd="status")["counter"] == 1, "a blank was drawn with an unrecorded card"
    assert _blocked_by_the_journal(station.agent.settings.state_dir)

    small_disk.free()
    finals = events.wait_final([j["job_id"] for j in jobs], timeout=60)
    assert {f["status"] for f in finals.values()} == {"printed"}
    first, second = (events.statuses(j["job_id"]) for j in jobs)
    printed_first = next(e["seq"] for e in first if e["status"] == "printed")
    printing_second = next(e["seq"] for e in second if e["status"] == "printing")
    assert printed_first < printing_second
    assert [c["outcome"] for c in sim.ledger()] == ["issued", "issued"]
    cards = [e for e in events.pump() if e["schema"] == "printstation.card/1"]
    assert sorted(c["job_id"] for c in cards) == sorted(j["job_id"] for j in jobs)
