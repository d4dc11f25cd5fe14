"""Putting the books right from the console, and the reports offices owe: the real CLI as a
process against a running agent, on the in-process simulated printer and on
`printstation-sim` through the Evolis driver."""

from __future__ import annotations

import json
import os
import pwd
import subprocess

from printstation.agent import contract
from printstation.agent.central.samples import sample_job
from printstation.agent.surfaces.control_socket import call
from tests.support import CLI, wait_for
from tests.support.broker import Events

ME = pwd.getpwuid(os.getuid()).pw_name


def cli(state_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args, "--state-dir", str(state_dir)], capture_output=True,
                          text=True, timeout=60)


def ok(state_dir, *args: str) -> str:
    done = cli(state_dir, *args)
    assert done.returncode == 0, f"printstation {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def level(state_dir, kind: str) -> dict:
    return next(c for c in call(state_dir, {"cmd": "stock"})["consumables"]
                if c["kind"] == kind)


def card_events(events: Events, outcome: str) -> list[dict]:
    return [e for e in events.pump() if e["schema"] == "printstation.card/1"
            and e["outcome"] == outcome]


def test_blanks_taken_out_rolls_and_the_register_on_the_simulated_printer(
        make_station, submitter, events, station_id):
    station = make_station(station_id, sim="print_time=0.05&render=0&cards=40&ribbon=300"
                                           "&jam_at=2&clear_after=0.2")
    state = station.agent.settings.state_dir
    wait_for(lambda: level(state, "cards")["counted"] == 40, what="the feeder first read")

    # A load is made on the simulated printer too: its reading and the count agree.
    assert "loaded blanks ektp: 50 blanks now counted" in ok(state, "load", "cards", "--count",
                                                            "10")
    assert station.printer.cards_in_feeder == 50
    ok(state, "load", "ribbon", "--type", "YMCKO", "--capacity", "200", "--serial", "R-77",
       "--lot", "L-3")
    ribbon = level(state, "ribbon")
    assert (ribbon["read"], ribbon["counted"], ribbon["disagreement"]) == (200, 200, None)

    ids = [submitter.submit_job(sample_job(f"BOOK-{station_id}-{i}", two_sided=i == 0).body,
                                station=station_id) for i in range(3)]
    assert {f["status"] for f in events.wait_final(ids).values()} == {"printed"}
    wait_for(lambda: len([e for e in events.pump() if e["schema"] == "printstation.card/1"])
             == 4, what="4 card events (3 issued, the jammed blank spoiled)")

    # Two blanks leave the feeder behind the agent's back: the books do not balance ...
    station.printer.cards_in_feeder -= 2
    check = wait_for(lambda: (r := cli(state, "ledger", "--check")).returncode == 1 and r,
                     what="ledger --check to fail")
    assert "NOT balanced: 2 blanks unaccounted for" in check.stdout
    assert "`printstation unload cards --count 2 --why ...`" in check.stdout
    # ... until the operator records where they went (the printer shows it done already).
    out = ok(state, "unload", "cards", "--count", "2", "--why", "taken to the training room")
    assert out == ("recorded 2 blanks taken out unprinted (card no. 5-6); 44 now counted in "
                   "the feeder\n")
    check = cli(state, "ledger", "--check")
    assert check.returncode == 0, check.stdout
    assert check.stdout.strip() == ("balanced: loaded 50 = issued 3 + spoiled 1 + test 0 + "
                                    "removed 2 + in the feeder 44 (printer count)")
    # Taken out through the console: the simulated hands take them out.
    ok(state, "unload", "cards", "--count", "4", "--why", "to the KIA printer")
    assert station.printer.cards_in_feeder == 40
    assert cli(state, "ledger", "--check").returncode == 0
    removed = wait_for(lambda: len(card_events(events, "removed")) == 6 and
                       card_events(events, "removed"), what="6 removed card events")
    for e in removed:
        contract.CardEvent.model_validate(e)
    assert [(e["card_no"], e["job_id"], e["reason"]) for e in removed[:3]] == [
        (5, None, "taken to the training room"), (6, None, "taken to the training room"),
        (7, None, "to the KIA printer")]
    refused = cli(state, "unload", "cards", "--count", "41", "--why", "all")
    assert refused.returncode == 2 and refused.stderr == (
        "printstation: the agent counts 40 blanks in the feeder, fewer than 41; record what "
        "was loaded with `printstation load cards` first\n")
    table = ok(state, "ledger").splitlines()
    assert table[0].split() == ["day", "stock", "loaded", "issued", "spoiled", "test",
                                "removed", "ribbon", "film"]
    assert table[1].split()[2:7] == ["50", "3", "1", "0", "6"]
    rows = ok(state, "ledger", "--csv", "-").splitlines()
    assert rows[0].split(",")[:7] == ["day", "stock", "loaded", "issued", "spoiled", "test",
                                      "removed"] and rows[1].split(",")[2:7] == [
        "50", "3", "1", "0", "6"]

    # The register of the month: the jammed blank with its job, the blanks taken out.
    month = contract.now().strftime("%Y-%m")
    register = ok(state, "ledger", "--spoiled", "--month", month)
    assert register.startswith(f"Spoiled-card register, station {station_id}, {month}\n"
                               "7 blanks did not become a card\n")
    assert "Failed prints: 1\n  card      2" in register and f"job {ids[1]}" in register
    assert "Failed encodes: 0\n" in register
    assert "Taken out of the feeder unprinted: 6\n" in register
    listed = json.loads(ok(state, "ledger", "--spoiled", "--json"))["cards"]
    assert [(c["card_no"], c["outcome"]) for c in listed] == [
        (2, "spoiled"), *[(n, "removed") for n in range(5, 11)]]
    assert listed[0]["reference"] and listed[0]["chip_uid"] is None
    rows = ok(state, "ledger", "--spoiled", "--csv", "-").splitlines()
    assert rows[0] == "card_no,at,outcome,reason,job_id,reference,chip_uid,stock"
    assert len(rows) == 8 and rows[1].startswith("2,") and ",spoiled,jam," in rows[1]
    assert cli(state, "ledger", "--month", month).returncode == 2

    # Each roll: the ribbon typed with its serial, the film first read from the printer.
    rolls = json.loads(ok(state, "rolls", "--json"))
    ribbon = [r for r in rolls if r["kind"] == "ribbon"]
    assert [(r["serial"], r["lot"], r["who"], r["finished"]) for r in ribbon] == [
        ("R-77", "L-3", ME, False)]
    assert (ribbon[0]["good_cards"], ribbon[0]["good_use"], ribbon[0]["spoiled_cards"]) == (
        3, 4, 1)
    text = ok(state, "rolls")
    assert "ribbon YMCKO, serial R-77, lot L-3: loaded" in text
    assert "rated 200, 4 used so far, 196 left (in the printer)" in text
    assert "film retransfer, serial SIM-F-0001, lot SIM-LOT-1" in text
    assert ok(state, "rolls", "--csv", "-").startswith("id,kind,type,serial,lot,capacity,")


def test_rolls_serials_corrections_and_removed_blanks_on_printstation_sim(
        sim_process, make_station, submitter, events, station_id):
    sim = sim_process("print_time=0.05", "render=0", "ribbon=300")  # reads the ribbon only
    station = make_station(station_id, printer_url=sim.tcp_url + "?timeout=2")
    state = station.agent.settings.state_dir
    wait_for(lambda: level(state, "ribbon")["counted"] == 300, what="the ribbon first read")
    # Evolis printers do not report a roll's serial: the operator types it.
    ok(state, "load", "ribbon", "--type", "YMCKO", "--capacity", "300", "--serial",
       "EV-R-1", "--lot", "2611")
    ok(state, "load", "film", "--capacity", "100", "--serial", "EV-F-1")
    ok(state, "load", "cards", "--count", "50")
    ids = [submitter.submit_job(sample_job(f"EVB-{station_id}-{i}", two_sided=i == 0).body,
                                station=station_id) for i in range(2)]
    assert {f["status"] for f in events.wait_final(ids).values()} == {"printed"}
    wait_for(lambda: level(state, "film")["remaining"] == 97, what="film counted down")

    # The film is counted by the agent only: the operator puts its count right.
    assert ok(state, "correct", "film", "--remaining", "90", "--why",
              "counted the panels on the roll") == (
        "film retransfer count corrected: 90 of 100 panels left\n")
    assert (level(state, "film")["remaining"], level(state, "film")["source"]) == (90, "agent")
    report = ok(state, "ledger", "--report")
    assert f"film 97 -> 90 by {ME}: counted the panels on the roll" in report
    bad = cli(state, "correct", "film", "--remaining", "101", "--why", "x")
    assert bad.returncode == 2 and "between 0 and the roll's capacity 100" in bad.stderr
    assert cli(state, "correct", "cards", "--remaining", "3", "--why", "x").returncode == 2

    ok(state, "unload", "cards", "--count", "5", "--why", "back to the safe")
    check = cli(state, "ledger", "--check")
    assert check.returncode == 0 and "removed 5 + in the feeder 43 (agent count)" in \
        check.stdout, check.stdout

    # A roll put in without `printstation load`: the printer's reading jumps, a roll is
    # recorded all the same, and the one it replaced is finished with what it gave.
    sim.control(cmd="load", ribbon=500)
    rolls = wait_for(lambda: len([r for r in call(state, {"cmd": "rolls"})["rolls"]
                                  if r["kind"] == "ribbon"]) == 2 and
                     call(state, {"cmd": "rolls"})["rolls"], what="the new roll recorded")
    ribbon = [r for r in rolls if r["kind"] == "ribbon"]
    assert [(r["who"], r["serial"], r["lot"], r["capacity"], r["good_cards"], r["good_use"])
            for r in ribbon] == [(ME, "EV-R-1", "2611", 300, 2, 3),
                                 ("printer", None, None, 500, 0, 0)]
    assert ribbon[0]["summary"] == "rated 300, gave 3 (1%), replaced with 297 left"
    film = [r for r in rolls if r["kind"] == "film"]
    assert [(r["serial"], r["good_cards"], r["good_use"]) for r in film] == [("EV-F-1", 2, 3)]
