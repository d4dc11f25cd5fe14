"""The agent end to end with `printstation-sim` as its own process, over each transport."""

from __future__ import annotations

from collections import Counter

import pytest
from conftest import job_fingerprint, wait_for

from printstation.agent.samples import sample_job


def _url(sim, transport: str, monkeypatch) -> str:
    if transport == "tcp":
        return sim.tcp_url + "?timeout=2"
    if transport == "serial":
        return sim.serial_url + "?timeout=2"
    monkeypatch.setenv("PRINTSTATION_USB_BACKEND", "printstation.simulator.usb_backend:"
                       f"get_backend?address={sim.endpoints['tcp']}&serial=SIM-0001")
    return "evolis+usb://0f49:ffff?serial=SIM-0001&timeout=2"


@pytest.mark.parametrize("transport", ["tcp", "serial", "usb"])
def test_jobs_print_once_on_the_device(sim_process, make_station, submitter, events, station_id,
                                       transport, monkeypatch):
    sim = sim_process("print_time=0.05", "render=0")
    station = make_station(station_id, printer_url=_url(sim, transport, monkeypatch))
    bodies = [sample_job(f"DEV-{station_id}-{i}", two_sided=i == 0).body for i in range(3)]
    for body in bodies:
        submitter.submit_job(body, station=station_id)
    finals = events.wait_final([b["job_id"] for b in bodies], timeout=60)
    assert {f["status"] for f in finals.values()} == {"printed"}
    issued = [c["fingerprint"] for c in sim.ledger() if c["outcome"] == "issued"]
    assert sorted(issued) == sorted(job_fingerprint(b) for b in bodies)
    telemetry = [e for e in events.all if e["schema"] == "printstation.telemetry/1"]
    assert telemetry[-1]["printer"]["driver"] == "evolis"
    assert telemetry[-1]["printer"]["serial"] == "SIM-0001"
    assert station.agent.printer.snapshot.status.card_counter == 3


def test_killing_and_restarting_the_simulator_never_prints_a_job_twice(
        sim_process, make_station, submitter, events, station_id):
    sim = sim_process("print_time=0.3", "render=0")
    make_station(station_id, printer_url=sim.tcp_url + "?timeout=2")
    bodies = [sample_job(f"KILL-{station_id}-{i}", two_sided=False).body for i in range(6)]
    for body in bodies:
        submitter.submit_job(body, station=station_id)
    wait_for(lambda: len(sim.ledger()) >= 2, 30, "two cards")
    sim.kill()  # the printer loses power, mid-card or between cards
    sim.start()  # same output folder and state file, same port
    ends = {"printed", "needs_check"}
    finals = events.wait_status([b["job_id"] for b in bodies], ends, timeout=90)
    outcomes = Counter(f["status"] for f in finals.values())
    # A power cut during the print itself leaves the outcome to an operator; nothing fails.
    assert outcomes["needs_check"] <= 1 and set(outcomes) <= ends, outcomes
    issued = Counter(c["fingerprint"] for c in sim.ledger() if c["outcome"] == "issued")
    assert max(issued.values()) == 1, "a card printed twice"
    printed = {j for j, f in finals.items() if f["status"] == "printed"}
    assert {job_fingerprint(b) for b in bodies if b["job_id"] in printed} <= set(issued)
    assert sim.control(cmd="status")["counter"] >= len(printed)


def test_a_card_cut_off_while_printing_asks_an_operator(sim_process, make_station, submitter,
                                                        events, station_id):
    sim = sim_process("print_time=2.0", "render=0")
    station = make_station(station_id, printer_url=sim.tcp_url + "?timeout=2")
    body = sample_job(f"CUT-{station_id}", two_sided=False).body
    submitter.submit_job(body, station=station_id)
    wait_for(lambda: [e for e in events.statuses(body["job_id"]) if e["status"] == "printing"],
             30, "printing")
    wait_for(lambda: sim.control(cmd="status")["counter"] == 1, 30, "the blank to be drawn")
    # Let the panels go over, then cut the link while the card prints.
    wait_for(lambda: sim.control(cmd="status")["printing"], 30, "the print to start")
    sim.control(cmd="unplug", seconds=1)
    status = wait_for(lambda: [e for e in events.statuses(body["job_id"])
                               if e["status"] in ("needs_check", "printed")], 30,
                      "the outcome")[0]
    assert status["status"] == "needs_check"
    assert station.agent.journal.known(body["job_id"]) == "needs_check"
