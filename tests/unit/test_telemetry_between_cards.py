"""Telemetry while the printer prints back to back: built once a card has started, not in
the printer thread's stretch between two cards (where it held the next blank up)."""

from __future__ import annotations

import threading
import time

from printstation.agent.broker.embedded import EmbeddedSource
from printstation.agent.central.samples import sample_job
from printstation.agent.config import Settings
from printstation.agent.signing import Verifier
from printstation.agent.station.agent import Agent
from printstation.agent.station.telemetry import CARD_START_WAIT
from tests.support import KEY_ID, signed, wait_for


def test_telemetry_waits_for_the_next_card_to_start_and_a_stop_does_not_wait(tmp_path,
                                                                            signing_key):
    s = Settings(station_id="tele-1", state_dir=tmp_path / "state",
                 printer_url=f"sim://?print_time=0.4&render=0&out={tmp_path / 'cards'}",
                 web_listen="", metrics_listen="")
    agent = Agent(s, verifier=Verifier({KEY_ID: signing_key.public_key()}))
    agent.start(embedded_sink=lambda e: None)
    try:
        source = EmbeddedSource(agent.station.intake)
        for n in range(4):
            body = sample_job(f"T-{n}", two_sided=False, destination="station.tele-1").body
            raw, headers = signed(signing_key, body)
            source.submit(raw, headers, message_id=body["job_id"])
        printer = agent.station.printer
        wait_for(lambda: printer.snapshot.current_job is not None, 20, "a card printing")
        started = time.monotonic()
        agent.telemetry._between_cards_passed()
        assert time.monotonic() - started < CARD_START_WAIT, "it waited out its bound"
        assert printer.card_started.is_set(), "it returned before the next card started"
        # A stop while it waits for a card does not wait for that card.
        waiting = threading.Thread(target=agent.telemetry._between_cards_passed)
        waiting.start()
        wait_for(lambda: not printer.card_started.is_set() or not waiting.is_alive(), 5,
                 "telemetry to wait")
        agent.telemetry._wake()
        waiting.join(CARD_START_WAIT / 2)
        assert not waiting.is_alive()
    finally:
        agent.stop()
