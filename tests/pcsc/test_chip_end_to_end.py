"""Chip cards end to end: the broker, `printstation run`, `printstation-sim` over TCP, and pcscd.

Every part is real and in its own process: the agent runs as the service does, talks to the
simulated Evolis printer over TCP (`Sic` parks each blank at the contactless station), and
writes the chip through the `pcsc://` encoder and the tests' own pcscd, to which the simulator
presents the parked card's chip through vsmartcard-vpcd. What the chip holds is checked in the
simulator's ledger (a digest of its files, never the data) against the job's script.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from printstation.agent.central.samples import SampleJob, sample_job
from printstation.agent.central.tools import EventTap
from printstation.simulator.chip import digest_of_writes
from tests.support import wait_for
from tests.support.agents import AgentProcess
from tests.support.broker import Events, submit_when_queued
from tests.support.pcsc import Pcscd
from tests.support.sim import SimProcess

ENCODER = "pcsc://?reader=Virtual%20PCD%2000%2000&timeout=5"


@pytest.fixture
def chip_printer(pcscd: Pcscd, sim_process, tmp_path: Path, broker_url: str,
                 station_id: str) -> Iterator:
    """A simulated Evolis presenting parked chips to the tests' pcscd, and an agent for it."""
    agents: list[AgentProcess] = []

    def make(*settings: str) -> tuple[SimProcess, AgentProcess]:
        sim = sim_process("render=0", f"vpcd_port={pcscd.port}", *settings, pty=False)
        agent = AgentProcess(tmp_path, station_id, broker_url, f"{sim.tcp_url}?timeout=5",
                             encoder_url=ENCODER)
        agents.append(agent)
        agent.start()
        return sim, agent

    yield make
    for agent in agents:
        agent.stop()


def personal_traces(job: SampleJob) -> list[bytes]:
    """Pieces of the job's chip data as they could leak: raw, hex (either case), base64."""
    script = base64.b64decode(job.body["chip"]["data"])
    photo = next(c["apdu"] for c in json.loads(script)["commands"] if len(c["apdu"]) > 200)
    raw = bytes.fromhex(photo[10:70])
    return [raw, raw.hex().encode(), raw.hex().upper().encode(),
            job.body["chip"]["data"][100:140].encode(), job.personal[2].encode()]


def test_a_chip_job_is_encoded_through_pcscd_and_printed_and_a_dead_chip_spoils_one_blank(
        chip_printer, submitter, broker_url, station_id):
    sim, agent = chip_printer("print_time=0.2", "chip_faults=1:dead")
    job = sample_job(f"CHIP-{station_id}", two_sided=False, chip=True)
    job_id = job.body["job_id"]
    with EventTap(broker_url, binding=f"*.{station_id}.#") as tap:
        events = Events(tap)
        submit_when_queued(submitter, job.body, station_id)
        final = events.wait_final([job_id], timeout=60)[job_id]
        cards = wait_for(lambda: (lambda c: c if len(c) >= 2 else None)(
            [e for e in events.pump() if e["schema"] == "printstation.card/1"]), 20,
            "both card events")
    dead, good = sim.ledger()
    # The first blank's chip was dead: rejected unprinted, registered by its UID.
    assert (dead["outcome"], dead["chip_digest"]) == ("spoiled", digest_of_writes([]))
    assert [(c["outcome"], c["reason"], c["chip_uid"]) for c in cards] == [
        ("spoiled", "encode_failed", dead["chip_uid"]), ("issued", None, good["chip_uid"])]
    # The second holds exactly what the job's script wrote, under the UID reported.
    assert (good["outcome"], good["chip_digest"]) == \
        ("issued", digest_of_writes(job.chip_writes))
    assert (final["status"], final["attempt"], final["card"]["chip_uid"]) == \
        ("printed", 2, good["chip_uid"])
    month = cards[0]["at"][:7]
    register = agent.cli("ledger", "--spoiled", "--month", month)
    assert [(r["reason"], r["chip_uid"], r["job_id"]) for r in register["cards"]] == \
        [("encode_failed", dead["chip_uid"], job_id)]
    agent.stop()
    # Once the job has ended, its chip data is nowhere: not in the log, the events, the
    # journal or the printer's folder.
    files = [agent.log, *agent.state.rglob("*"), *sim.out.rglob("*")]
    seen = b"".join(f.read_bytes() for f in files if f.is_file()) + \
        json.dumps(events.all).encode()
    assert b"chip_encoded" in agent.log.read_bytes()  # the log was written, and searched
    for trace in personal_traces(job):
        assert trace not in seen


def test_an_agent_killed_mid_encode_never_encodes_or_prints_a_second_card(
        chip_printer, submitter, station_id):
    """Killed while the chip is written (a slow chip: 0.3 s an APDU): at the restart the
    printer's counter has moved, so the job waits for an operator; no second blank is drawn
    and no chip written again."""
    sim, agent = chip_printer("print_time=0.2", "chip_fault=slow", "chip_delay=0.3")
    job = sample_job(f"KILL-{station_id}", two_sided=False, chip=True)
    submit_when_queued(submitter, job.body, station_id)
    wait_for(lambda: sim.control(cmd="status")["parked"] is not None, 30,
             "the blank parked at the contactless station")
    agent.kill()
    # The printer sees its host gone and rejects the parked card, unprinted.
    wait_for(lambda: sim.ledger(), 20, "the printer to reject the card")
    agent.start()
    jobs = wait_for(lambda: (lambda a: a if a["needs_check"] else None)(agent.cli("jobs")), 30,
                    "the job to wait for a check")
    check = jobs["needs_check"][0]
    assert (check["job_id"], check["counter_before"], check["counter_now"]) == \
        (job.body["job_id"], 0, 1)
    [card] = sim.ledger()
    assert (card["outcome"], card["reason"]) == ("spoiled", "host_lost")
    assert digest_of_writes(job.chip_writes) != card["chip_digest"]  # the script never ended
    status = sim.control(cmd="status")
    assert (status["counter"], status["parked"]) == (1, None)  # one blank, and no other
