"""The agent end to end with `printstation-sim` as its own process, over each transport."""

from __future__ import annotations

from collections import Counter

import pytest

from printstation.agent.central.samples import sample_job
from tests.support import job_fingerprint, wait_for
from tests.support.broker import submit_when_queued


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
    # Telemetry waits for the next card to start while cards go back to back: it may come
    # after the last `printed`.
    telemetry = wait_for(lambda: [e for e in events.pump()
                                  if e["schema"] == "printstation.telemetry/1"
                                  and e["printer"]["driver"] == "evolis"], 30,
                         "telemetry naming the printer's driver")
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
    assert station.agent.journal.jobs.known(body["job_id"]) == "needs_check"


def test_a_fault_the_printer_shows_only_by_refusing_a_card_is_held_shown_and_cleared(
        sim_process, make_station, submitter, events, station_id):
    """An Evolis reads no print head and no film: it says so only by refusing `Ss`."""
    from printstation.agent.surfaces.control_socket import call

    sim = sim_process("print_time=0.1", "render=0")
    station = make_station(station_id, printer_url=sim.tcp_url + "?timeout=2")
    state = station.agent.settings.state_dir
    sim.control(cmd="inject", fault="head_error")
    body = sample_job(f"REFUSED-{station_id}", two_sided=False).body
    submitter.submit_job(body, station=station_id)

    def blocked() -> dict | None:
        t = call(state, {"cmd": "status"})["telemetry"]
        return t if t["state"] == "blocked" and "head_error" in t["printer"]["faults"] else None

    telemetry = wait_for(blocked, 30, "the station to show the refused card's fault")
    assert "Print head error" in telemetry["blocked_reason"]
    assert not telemetry["taking_jobs"]
    alert = wait_for(lambda: [e for e in events.pump() if e["schema"] == "printstation.alert/1"
                              and e["condition"] == "printer_fault_head_error"], 30, "alert")
    assert not alert[0]["cleared"]
    # Held, not retried in a loop: one `printing` for the job, no blank drawn.
    wait_for(lambda: station.agent.printer.refusals.refusal is not None
             and station.agent.printer.refusals.refusal.delay >= 10, 40, "a second, later try")
    printing = [e for e in events.statuses(body["job_id"]) if e["status"] == "printing"]
    assert len(printing) == 1 and printing[0]["attempt"] == 1
    assert sim.control(cmd="status")["counter"] == 0

    sim.control(cmd="clear")
    station.agent.station.resume("operator", "head replaced")  # an operator's action tries at once
    final = events.wait_final([body["job_id"]], timeout=30)[body["job_id"]]
    assert final["status"] == "printed" and final["attempt"] == 1
    assert [e["status"] for e in events.statuses(body["job_id"])].count("printing") == 1
    wait_for(lambda: station.agent.station.state().state == "ready", 20, "ready again")
    assert station.agent.printer.refusals.refusal is None


def test_an_unplug_mid_card_leaves_a_check_the_operator_can_decide(
        sim_process, make_station, submitter, events, station_id):
    """The issue's scenario: a real cable pull mid-card. `jobs`, `status` and the alert say
    which card it is, the printer's counter when its blank was drawn and now, what the
    printer said, and what to look for; `resolve` answers in a sentence."""
    import json

    from tests.support import run

    sim = sim_process("print_time=2.0", "render=0", "counter=41")
    station = make_station(station_id, printer_url=sim.tcp_url + "?timeout=2")
    body = sample_job(f"UNPLUG-{station_id}", two_sided=False,
                      reference="PERMOHONAN-000777").body
    submitter.submit_job(body, station=station_id)
    job_id = body["job_id"]
    wait_for(lambda: sim.control(cmd="status")["printing"], 30, "the print to start")
    sim.control(cmd="unplug", seconds=1)
    wait_for(lambda: station.agent.journal.jobs.known(job_id) == "needs_check", 30, "needs_check")
    # The printer finishes a card whose print order arrived: it is in the output hopper.
    wait_for(lambda: [c for c in sim.ledger() if c["outcome"] == "issued"], 30, "the card out")
    wait_for(lambda: station.agent.printer.snapshot.status.card_counter == 42, 30,
             "the printer to answer again")
    flags = ["--state-dir", str(station.agent.settings.state_dir), "--station-id", station_id]

    jobs = run("jobs", *flags)
    assert jobs.returncode == 0, jobs.stderr
    out = jobs.stdout
    check_block = out[out.index("NEEDS A CHECK"):]
    assert f"NEEDS A CHECK: job {job_id}\n    reference PERMOHONAN-000777; unsure since" in out
    assert "printer said: the link to the printer broke while the card was inside" in out
    assert "printer's card counter: 41 when its blank was drawn, 42 now" in out
    assert "went from 41 to 42" in " ".join(out.split())
    assert "output hopper" in out and f"printstation resolve {job_id} --printed" in out
    assert max(len(line) for line in check_block.splitlines()) <= 80, check_block

    status = run("status", *flags)
    assert status.returncode == 0, status.stderr
    assert "printer's card counter: 41 when its blank was drawn, 42 now" in status.stdout
    assert f"NEEDS A CHECK: job {job_id}" in status.stdout
    for command in ("status", "jobs"):
        as_json = run(command, "--json", *flags)
        assert as_json.returncode == 0, as_json.stderr
        check = json.loads(as_json.stdout)["needs_check"][0]
        assert (check["job_id"], check["counter_before"], check["counter_now"],
                check["drawn_since"]) == (job_id, 41, 42, 1)
        assert check["reference"] == "PERMOHONAN-000777"
    alert = wait_for(lambda: [e for e in events.pump() if e["schema"] == "printstation.alert/1"
                              and e["condition"] == f"needs_check_{job_id}"], 30, "the alert")[0]
    assert not alert["cleared"] and "PERMOHONAN-000777" in alert["message"]
    assert "41 when its blank was drawn" in alert["message"]
    assert "output hopper" in alert["message"]

    resolved = run("resolve", job_id, "--printed", "--why", "found it in the hopper", *flags)
    assert resolved.returncode == 0, resolved.stderr
    assert resolved.stdout.strip() == (f"job {job_id}: recorded as printed; the central "
                                       "system is told it printed")
    assert events.wait_final([job_id])[job_id]["status"] == "printed"
    wait_for(lambda: [e for e in events.pump() if e["schema"] == "printstation.alert/1"
                      and e["condition"] == f"needs_check_{job_id}" and e["cleared"]], 30,
             "the alert to clear")
    test_print = run("test-print", *flags)
    assert test_print.returncode == 0, test_print.stderr
    assert test_print.stdout.startswith("a test card will print next") \
        and "{" not in test_print.stdout


def test_an_agent_killed_mid_card_leaves_a_check_saying_what_the_printer_said(
        sim_process, tmp_path, broker_url, submitter, station_id):
    """The agent itself killed (SIGKILL) while the printer holds a card: at the next start
    the printer's counter has moved, so the job waits for an operator, told what the
    printer said at the restart."""
    import json
    import subprocess
    import sys

    from tests.support import control_answers, run

    sim = sim_process("print_time=3.0", "render=0", "counter=7")
    state = tmp_path / "state"
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'station_id = "{station_id}"\nbroker_url = "{broker_url}"\n'
                   f'printer_url = "{sim.tcp_url}?timeout=2"\nstate_dir = "{state}"\n'
                   "verify_signatures = false\n")

    def start() -> subprocess.Popen:
        agent = subprocess.Popen([sys.executable, "-m", "printstation.agent", "run",
                                  "--config", str(cfg)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        wait_for(lambda: control_answers(state), 30, "the agent's control socket")
        return agent

    agent = start()
    try:
        body = sample_job(f"KILLED-{station_id}", two_sided=False).body
        submit_when_queued(submitter, body, station_id)
        wait_for(lambda: sim.control(cmd="status")["printing"], 30, "the card in the printer")
        agent.kill()
        agent.wait(10)
        wait_for(lambda: sim.control(cmd="status")["counter"] == 8
                 and not sim.control(cmd="status")["printing"], 30, "the printer done")
        agent = start()
        jobs = wait_for(lambda: (lambda a: a if a["needs_check"] else None)(
            json.loads(run("jobs", "--json", "--config", str(cfg)).stdout)), 30,
            "the job to wait for a check")
        check = jobs["needs_check"][0]
        assert (check["job_id"], check["counter_before"], check["counter_now"]) == \
            (body["job_id"], 7, 8)
        assert check["printer_said"] == ("the agent stopped while the card was inside; at the "
                                         "restart the printer was ready, its card counter "
                                         "at 8")
    finally:
        agent.terminate()
        agent.wait(30)
