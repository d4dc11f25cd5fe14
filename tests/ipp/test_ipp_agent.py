"""The agent on an `ipp://` printer, end to end: the broker, `printstation run`, the tests'
cupsd and ippeveprinter as the card printer. Every card is counted in the printer's own
ledger (the simulator's print command), never from what the agent says.

At most once across crashes: the agent kills itself (its failpoints, as a power cut would)
after Create-Job with the IPP job id journaled but no document sent, while CUPS prints the
card, and once the card is out but before its status is journaled; each time the restarted
agent asks CUPS first, and the job ends with exactly one card.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from printstation.agent.central.samples import sample_job
from printstation.agent.central.tools import EventTap
from tests.ipp.conftest import CardQueue
from tests.support import wait_for
from tests.support.agents import AgentProcess
from tests.support.broker import Events, submit_when_queued


@pytest.fixture
def ipp_agent(card_queue: CardQueue, tmp_path: Path, broker_url: str, station_id: str):
    agents: list[AgentProcess] = []

    def make(**query: str) -> AgentProcess:
        params = "&".join(f"{k}={v}" for k, v in {"print_timeout": "30", **query}.items())
        agent = AgentProcess(tmp_path, station_id, broker_url, f"{card_queue.url}?{params}")
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop()


def submit(submitter, station_id: str, job_id: str) -> None:
    submit_when_queued(submitter, sample_job(job_id, two_sided=True).body, station_id)


def issued(card_queue: CardQueue, job_id: str) -> list[dict]:
    return [c for c in card_queue.printer.ledger()
            if c["job_name"] == job_id and c["outcome"] == "issued"]


def test_jobs_print_through_cups_with_their_pages_in_the_printers_ledger(
        ipp_agent, card_queue, submitter, broker_url, station_id):
    agent = ipp_agent()
    agent.start()
    ids = [f"IPP-{station_id}-{i}" for i in range(2)]
    with EventTap(broker_url, binding=f"*.{station_id}.#") as tap:
        events = Events(tap)
        for job_id in ids:
            submit(submitter, station_id, job_id)
        finals = events.wait_final(ids, timeout=60)
    assert {f["status"] for f in finals.values()} == {"printed"}
    for job_id in ids:
        [card] = issued(card_queue, job_id)
        assert card["pages"] == 2


@pytest.mark.parametrize("point", ["after_submit", "while_printing", "after_card"])
def test_an_agent_killed_at_each_step_of_an_ipp_job_ends_with_exactly_one_card(
        ipp_agent, cupsd, card_queue, submitter, broker_url, station_id, point):
    """after_submit: Create-Job done and its id journaled, no document sent (CUPS keeps the
    empty job; the restart cancels it and prints the card anew). while_printing: killed
    while CUPS prints the card (the restart waits for CUPS to finish it). after_card: the
    card out, its status not journaled (the restart learns from CUPS it was printed)."""
    agent = ipp_agent()
    job_id = f"KILL-{point}-{station_id}"
    if point == "while_printing":
        card_queue.printer.behave(delay=3)
        agent.start()
    else:
        agent.start(failpoints=f"{point}=1.0")
    with EventTap(broker_url, binding=f"*.{station_id}.#") as tap:
        events = Events(tap)
        submit(submitter, station_id, job_id)
        if point == "while_printing":
            wait_for(lambda: cupsd.queue_attributes(card_queue.name, "printer-state")
                     .get("printer-state") == 4, 30, "CUPS printing the card")
            agent.kill()
        else:
            wait_for(agent.died, 60, f"the agent to kill itself at {point}")
        agent.start()
        final = events.wait_final([job_id], timeout=90)[job_id]
    assert final["status"] == "printed", final
    wait_for(lambda: issued(card_queue, job_id), 30, "the card in the printer's ledger")
    assert len(issued(card_queue, job_id)) == 1
    assert "recovered_by_spooler" in agent.log.read_text()  # CUPS was asked first


def printer_faults(agent: AgentProcess) -> list[str]:
    return agent.cli("status")["telemetry"]["printer"]["faults"]


def test_what_holds_a_card_in_cups_shows_as_its_fault_and_clears(
        ipp_agent, card_queue, submitter, broker_url, station_id):
    """An empty feeder holds the IPP job at the printer (media-empty, media-needed): the
    station shows it while it waits, and the card prints once blanks are loaded. A jam
    raised while a card prints shows as a jam, and no fault is left once the card is out."""
    agent = ipp_agent()
    agent.start()
    card_queue.printer.set_feeder(0)
    with EventTap(broker_url, binding=f"*.{station_id}.#") as tap:
        events = Events(tap)
        submit(submitter, station_id, f"EMPTY-{station_id}")
        wait_for(lambda: "feeder_empty" in printer_faults(agent), 30,
                 "the empty feeder shown by the station")
        card_queue.printer.set_feeder(100)
        events.wait_final([f"EMPTY-{station_id}"], timeout=60)
        wait_for(lambda: printer_faults(agent) == [], 30, "the fault cleared")
        card_queue.printer.behave(reasons=["media-jam"], delay=4)
        submit(submitter, station_id, f"JAM-{station_id}")
        wait_for(lambda: "jam" in printer_faults(agent), 30, "the jam shown by the station")
        final = events.wait_final([f"JAM-{station_id}"], timeout=60)[f"JAM-{station_id}"]
    assert final["status"] == "printed"
    wait_for(lambda: printer_faults(agent) == [], 30, "the jam cleared once the card is out")


def test_supplies_read_from_the_printer_reach_the_stations_stock(
        ipp_agent, card_queue, submitter, broker_url, station_id):
    agent = ipp_agent(ribbon_prints="250", film_panels="500")
    agent.start()
    card_queue.printer.behave_always(markers={"names": ["YMCKO Ribbon", "Retransfer Film"],
                                              "levels": [80, 50],
                                              "types": ["ink-ribbon", "transfer-unit"]})
    with EventTap(broker_url, binding=f"*.{station_id}.#") as tap:
        events = Events(tap)
        submit(submitter, station_id, f"MARK-{station_id}")
        events.wait_final([f"MARK-{station_id}"], timeout=60)

    def read() -> dict | None:
        levels = {c["kind"]: c for c in agent.cli("status")["telemetry"]["consumables"]}
        ribbon = levels.get("ribbon")
        return levels if ribbon and ribbon.get("read") == 200 else None

    levels = wait_for(read, 30, "the ribbon level read from the printer")
    assert levels["film"]["read"] == 250
