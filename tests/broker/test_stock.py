"""Consumables end to end: the real broker, the simulator, the operator's commands."""

from __future__ import annotations

import json
import subprocess
import uuid

from printstation.agent.central.samples import sample_job
from printstation.agent.central.tools import EventTap
from printstation.agent.surfaces.control_socket import call
from tests.support import CLI, wait_for
from tests.support.broker import Events


def cli(state_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args, "--state-dir", str(state_dir)], capture_output=True,
                          text=True, timeout=60)


def telemetry(events: Events) -> list[dict]:
    events.pump()
    return [e for e in events.all if e["schema"] == "printstation.telemetry/1"]


def alerts(events: Events, condition: str) -> list[tuple[str, bool]]:
    events.pump()
    return [(e["severity"], e["cleared"]) for e in events.all
            if e["schema"] == "printstation.alert/1" and e["condition"] == condition]


def submit(submitter, station_id: str, prefix: str, n: int, two_sided: bool) -> list[str]:
    ids = [f"{prefix}-{station_id}-{i}" for i in range(n)]
    for job_id in ids:
        submitter.submit_job(sample_job(job_id, two_sided=two_sided).body, station=station_id)
    return ids


def test_ribbon_running_out_blocks_at_the_right_card_and_a_load_resumes(
        make_station, submitter, events, station_id):
    station = make_station(station_id, sim="print_time=0.05&render=0&ribbon=6")
    ids = submit(submitter, station_id, "RIB", 5, two_sided=True)
    events.wait_final(ids[:3])
    wait_for(lambda: any(t["state"] == "blocked" and "ribbon" in t["blocked_reason"].lower()
                         for t in telemetry(events)), what="telemetry saying the ribbon is out")
    assert station.issued() == ids[:3] and len(station.ledger()) == 3  # no blank drawn
    assert {e["status"] for e in events.statuses(ids[3])} == {"accepted"}
    wait_for(lambda: alerts(events, "ribbon_out") == [("critical", False)], what="ribbon_out")
    status = cli(station.agent.settings.state_dir, "status")
    assert "Ribbon out" in status.stdout, status.stdout + status.stderr

    # The operator records the new roll; the simulated printer takes it as loaded.
    done = cli(station.agent.settings.state_dir, "load", "ribbon", "--type", "YMCKO",
               "--capacity", "100")
    assert done.returncode == 0, done.stderr
    finals = events.wait_final(ids[3:])
    assert {f["status"] for f in finals.values()} == {"printed"}
    assert station.issued() == ids
    wait_for(lambda: alerts(events, "ribbon_out") == [("critical", False), ("critical", True)],
             what="ribbon_out cleared once")
    stock = call(station.agent.settings.state_dir, {"cmd": "stock"})
    ribbon = next(c for c in stock["consumables"] if c["kind"] == "ribbon")
    assert (ribbon["remaining"], ribbon["counted"], ribbon["disagreement"]) == (96, 96, None)


def test_a_two_sided_job_is_not_started_with_stock_for_one_side(
        make_station, submitter, events, station_id):
    station = make_station(station_id, sim="print_time=0.05&render=0&ribbon=3")
    ids = submit(submitter, station_id, "SIDE", 2, two_sided=True)
    events.wait_final(ids[:1])
    why = wait_for(lambda: [t["blocked_reason"] for t in telemetry(events)
                            if t["state"] == "blocked"], what="blocked telemetry")[-1]
    assert why.startswith("ribbon short: 1 print left, the next 2-sided card needs 2"), why
    assert len(station.ledger()) == 1 and not station.agent.station.state().taking_jobs
    stock = cli(station.agent.settings.state_dir, "stock")
    assert "ribbon" in stock.stdout and "can print 0 more cards; the ribbon runs out first" in \
        stock.stdout, stock.stdout + stock.stderr

    station.printer.load(ribbon=50)  # a new roll the printer reports: resumes by itself
    assert events.wait_final(ids[1:])[ids[1]]["status"] == "printed"
    assert station.issued() == ids


def test_running_out_mid_card_holds_the_job_never_fails_it(
        make_station, submitter, events, station_id):
    station = make_station(station_id, sim="print_time=1.0&render=0", max_attempts=1)
    [job_id] = submit(submitter, station_id, "MID", 1, two_sided=True)
    events.wait_status([job_id], {"printing"})
    station.printer.ribbon_left = 0  # the roll ends under the print head
    wait_for(lambda: any(e["schema"] == "printstation.card/1" and e["outcome"] == "spoiled"
                         for e in events.pump()), what="the spoiled blank")
    wait_for(lambda: station.agent.station.state().state == "blocked", what="blocked")
    assert events.final(job_id) is None  # held, not failed, although max_attempts is 1
    station.printer.load(ribbon=100)
    final = events.wait_final([job_id])[job_id]
    assert (final["status"], final["attempt"]) == ("printed", 2)


def test_a_pool_station_out_of_film_leaves_the_jobs_to_the_others(
        make_station, submitter, broker_url, central_relay):
    pool = f"film-{uuid.uuid4().hex[:8]}"
    short = make_station(f"fa-{pool}", pools=[pool], handback_after=1.0,
                         sim="print_time=0.05&render=0&film=3")
    others = [make_station(f"f{x}-{pool}", pools=[pool]) for x in "bc"]
    job_ids = [f"FILM-{pool}-{i}" for i in range(12)]
    with EventTap(broker_url, binding="#") as tap:
        events = Events(tap)
        for job_id in job_ids:
            submitter.submit_job(sample_job(job_id, two_sided=True).body, pool=pool)
        finals = events.wait_final(job_ids, timeout=90, meanwhile=central_relay.relay)
        assert {f["status"] for f in finals.values()} == {"printed"}
        printed = short.issued() + others[0].issued() + others[1].issued()
        assert sorted(printed) == sorted(job_ids)  # each exactly once
        assert len(short.issued()) <= 1  # three film panels: one two-sided card
        mine = [e for e in events.pump() if e.get("station_id") == f"fa-{pool}"
                and e["schema"] == "printstation.telemetry/1"]
        assert any(t["state"] == "blocked" and not t["taking_jobs"] and "film" in
                   (t["not_taking_jobs_because"] or "").lower() for t in mine)


def test_the_blank_ledger_balances_after_jams_and_fails_when_a_blank_goes_missing(
        make_station, submitter, events, station_id):
    station = make_station(station_id, sim="print_time=0.05&render=0&cards=40&jam_at=2,4"
                                           "&clear_after=0.2", cleaning_interval=5)
    state = station.agent.settings.state_dir
    ids = submit(submitter, station_id, "LEDGER", 5, two_sided=False)
    events.wait_final(ids)
    wait_for(lambda: sum(1 for e in events.pump() if e["schema"] == "printstation.card/1") == 7,
             what="7 card events (5 issued, 2 spoiled)")
    check = cli(state, "ledger", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "balanced: loaded 40 = issued 5 + spoiled 2 + test 0 + removed 0 + in the feeder " \
           "33" in check.stdout
    rows = cli(state, "ledger", "--csv", "-").stdout.splitlines()
    assert rows[0].startswith("day,stock,loaded,issued,spoiled")
    assert rows[1].split(",")[1:5] == ["ektp", "40", "5", "2"]
    report = cli(state, "ledger", "--report").stdout
    assert "Cards printed (issued): 5" in report and "jam: 2" in report
    wait_for(lambda: alerts(events, "cleaning_due") == [("warning", False)], what="cleaning due")
    assert cli(state, "clean").returncode == 0
    wait_for(lambda: alerts(events, "cleaning_due")[-1:] == [("warning", True)],
             what="cleaning_due cleared")
    t = telemetry(events)[-1]
    assert t["blanks"]["balanced"] and t["maintenance"]["cards_since_cleaning"] == 0
    assert {c["kind"]: c["source"] for c in t["consumables"]} == {
        "ribbon": "printer", "film": "printer", "cards": "printer"}

    number = station.printer.draw_blank()  # a blank leaves the feeder behind the agent's back
    station.printer.reject(number, "taken by hand")

    def unbalanced() -> subprocess.CompletedProcess | None:
        result = cli(state, "ledger", "--check")
        return result if result.returncode == 1 else None

    result = wait_for(unbalanced, what="ledger --check to fail")
    assert "NOT balanced: 1 blank unaccounted for" in result.stdout
    wrong = cli(state, "load", "cards", "--count", "10", "--stock", "kia")
    assert wrong.returncode == 2 and "the feeder still holds 33 ektp blanks" in wrong.stderr
    # Blanks taken out unprinted never went under the print head: no nearer a cleaning.
    assert cli(state, "unload", "cards", "--count", "3", "--why", "to the safe").returncode == 0
    assert json.loads(cli(state, "stock", "--json").stdout)["maintenance"][
        "cards_since_cleaning"] == 0


def test_levels_the_printer_cannot_read_are_counted_by_the_agent(
        sim_process, make_station, submitter, events, station_id):
    sim = sim_process("print_time=0.05", "render=0")  # an Evolis: reads its ribbon only
    station = make_station(station_id, printer_url=sim.tcp_url + "?timeout=2")
    state = station.agent.settings.state_dir
    wait_for(lambda: alerts(events, "film_unknown") == [("warning", False)], what="film_unknown")
    assert cli(state, "load", "film", "--capacity", "100").returncode == 0
    assert cli(state, "load", "cards", "--count", "50").returncode == 0
    ids = [submitter.submit_job(sample_job(f"EVO-{station_id}-{i}", two_sided=i == 0).body,
                                station=station_id) for i in range(2)]
    assert {f["status"] for f in events.wait_final(ids).values()} == {"printed"}

    def levels() -> dict | None:
        stock = call(state, {"cmd": "stock"})
        found = {c["kind"]: (c["remaining"], c["source"]) for c in stock["consumables"]}
        return found if found["film"] == (97, "agent") else None

    found = wait_for(levels, what="film counted down by 3 panels")
    assert found["cards"] == (48, "agent") and found["ribbon"][1] == "printer"
    wait_for(lambda: alerts(events, "film_unknown")[-1:] == [("warning", True)],
             what="film_unknown cleared")
    check = cli(state, "ledger", "--check")
    assert check.returncode == 0 and "(agent count)" in check.stdout, check.stdout


def test_a_threshold_crossed_many_times_raises_and_clears_its_alert_once(
        make_station, submitter, events, station_id):
    station = make_station(station_id, sim="print_time=0.05&render=0&ribbon=5",
                           thresholds={"ribbon": {"warning": 3, "critical": 0}})
    for i in range(4):  # 5 -> 4 -> 3 (low) -> reload to 4 -> 3 -> reload to 4 -> ...
        ids = submit(submitter, station_id, f"HOVER{i}", 2 if i == 0 else 1, two_sided=False)
        events.wait_final(ids)
        wait_for(lambda: station.agent.journal.cards.counted_stock()["ribbon"].remaining <= 3,
                 what="the ribbon at 3")
        station.printer.load(ribbon=4)  # a few prints more: the level hovers at the threshold
        wait_for(lambda: station.agent.station.consumables.levels(
            station.agent.printer.snapshot.status)[0].remaining == 4, what="the reload seen")
        station.agent.telemetry.now()
    station.printer.load(ribbon=200)
    wait_for(lambda: alerts(events, "ribbon_low") == [("warning", False), ("warning", True)],
             what="ribbon_low raised once and cleared once")
    ids = submit(submitter, station_id, "AFTER", 1, two_sided=False)
    events.wait_final(ids)
    station.agent.telemetry.now()
    wait_for(lambda: telemetry(events)[-1]["counters"]["printed_total"] == 6, what="telemetry")
    assert alerts(events, "ribbon_low") == [("warning", False), ("warning", True)]


def test_a_test_card_is_printed_between_jobs_and_counted_as_test(
        make_station, submitter, events, station_id):
    station = make_station(station_id)
    state = station.agent.settings.state_dir
    assert cli(state, "test-print", "--why", "new ribbon").returncode == 0
    card = wait_for(lambda: [e for e in events.pump() if e["schema"] == "printstation.card/1"],
                    what="the test card's ledger event")[0]
    assert (card["outcome"], card["job_id"]) == ("test", None)
    assert [c["outcome"] for c in station.ledger()] == ["issued"]  # the printer made one card
    check = cli(state, "ledger", "--check")
    assert check.returncode == 0 and "test 1" in check.stdout, check.stdout
