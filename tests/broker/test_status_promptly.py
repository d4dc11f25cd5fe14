"""A card's `printed` goes out once its outcome is on disk, without waiting for the printer
thread: the publisher syncs what was committed between cards (status latency, issue 17)."""

from __future__ import annotations

import json

from printstation.agent.broker.publisher import AmqpPublisher
from printstation.agent.central.samples import sample_job
from printstation.agent.central.tools import EventTap
from printstation.agent.config import Settings
from printstation.agent.contract import Job
from printstation.agent.station.journal import Journal
from tests.support import wait_for


def test_the_publisher_syncs_and_sends_a_card_recorded_between_cards(
        tmp_path, broker_url: str, station_id: str):
    """The printer thread commits a card's outcome without an fsync and goes on to the next
    card; nothing else commits here. Before, its `printed` waited for that thread's next
    durable commit (the next card's start, after the next card's images were decoded);
    now the publisher makes it durable and sends it on its own."""
    journal = Journal(tmp_path / "state", station_id)
    body = sample_job("PROMPT-1", two_sided=False, destination=f"station.{station_id}").body
    journal.jobs.take(Job.model_validate(body), json.dumps(body).encode(), {}, "station")
    journal.progress.start_printing("PROMPT-1", 0)
    settings = Settings(station_id=station_id, state_dir=tmp_path / "state",
                        broker_url=broker_url, printer_url="sim://")
    failed: list[BaseException] = []
    publisher = AmqpPublisher(settings, journal, on_connected=lambda up: None,
                              on_fatal=failed.append)
    with EventTap(broker_url, binding=f"*.{station_id}.#") as tap:
        publisher.start()
        try:
            seen: list[dict] = []

            def statuses() -> list[str]:
                seen.extend(tap.drain(0.05))
                return [e["status"] for e in seen if e["schema"] == "printstation.status/1"]

            wait_for(lambda: statuses() == ["accepted", "printing"], 20,
                     "the durable statuses")
            journal.progress.card_printed("PROMPT-1", 1, between_cards=True)
            # Telemetry, a next card or an idle printer would sync it within seconds:
            # none of them is here, so only the publisher can.
            wait_for(lambda: "printed" in statuses(), 5, "`printed` without another commit")
            printed = next(e for e in seen if e.get("status") == "printed")
            assert printed["seq"] <= journal.store.synced_seq
            assert statuses() == ["accepted", "printing", "printed"]  # once
            assert not failed
        finally:
            publisher.stop()
            journal.close()
