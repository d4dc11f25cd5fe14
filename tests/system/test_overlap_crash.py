"""A power cut while one card prints and the next is armed behind it (`overlaps_cards`).

The agent runs as its own process (`printstation run`) on the real broker, with the
in-process `sim://` printer keeping its counter in a state file, as a printer keeps its
own across a power cut. The `after_arm` failpoint kills the agent the moment the next
job's start is journaled, while card 1 prints: at the restart the printer's counter has
moved by card 1 only, so card 1's job waits for an operator (nobody knows whether it came
out) and the armed job, whose blank was never drawn, prints once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from printstation.agent.central.samples import sample_job
from printstation.simulator.printer import read_ledger
from tests.support import control_answers, job_fingerprint, run, wait_for
from tests.support.broker import submit_when_queued


def _jobs(cfg: Path) -> dict:
    listing = run("jobs", "--json", "--config", str(cfg))
    assert listing.returncode == 0, listing.stderr
    return json.loads(listing.stdout)


def test_a_kill_after_the_next_card_is_armed_prints_it_once_and_checks_the_card_inside(
        tmp_path, broker_url, submitter, station_id):
    state, cards = tmp_path / "state", tmp_path / "cards"
    cfg = tmp_path / "station.toml"
    cfg.write_text(
        f'station_id = "{station_id}"\nbroker_url = "{broker_url}"\n'
        f'printer_url = "sim://?print_time=1.0&render=0&out={cards}'
        f'&state_file={tmp_path / "printer.json"}"\nstate_dir = "{state}"\n'
        "verify_signatures = false\n")

    def start(failpoints: str) -> subprocess.Popen:
        agent = subprocess.Popen(
            [sys.executable, "-m", "printstation.agent", "run", "--config", str(cfg)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PRINTSTATION_FAILPOINTS": failpoints})
        wait_for(lambda: control_answers(state), 30, "the agent's control socket")
        return agent

    agent = start("after_arm=1")
    try:
        # Paused while both jobs come, so that the second is waiting when the first prints.
        assert run("pause", "--why", "loading", "--config", str(cfg)).returncode == 0
        bodies = [sample_job(f"ARM-{n}-{station_id}", two_sided=False).body for n in (1, 2)]
        for body in bodies:
            submit_when_queued(submitter, body, station_id)
        wait_for(lambda: [j["state"] for j in _jobs(cfg)["jobs"]] == ["queued", "queued"], 30,
                 "both jobs stored")
        assert run("resume", "--why", "loaded", "--config", str(cfg)).returncode == 0
        assert agent.wait(30) == -9, "the failpoint did not kill the agent"
        agent = start("")
        first, second = (b["job_id"] for b in bodies)
        wait_for(lambda: [c["job_id"] for c in read_ledger(cards)] == [second], 30,
                 "the armed job to print")
        [card] = read_ledger(cards)
        assert (card["card_no"], card["outcome"], card["fingerprint"]) == \
            (2, "issued", job_fingerprint(bodies[1]))
        jobs = _jobs(cfg)
        assert {j["job_id"]: j["state"] for j in jobs["jobs"]} == \
            {first: "needs_check", second: "printed"}
        [check] = jobs["needs_check"]  # card 1 was inside; the counter has moved by 2 since
        assert (check["job_id"], check["counter_before"], check["counter_now"]) == \
            (first, 0, 2)
    finally:
        agent.terminate()
        agent.wait(30)
