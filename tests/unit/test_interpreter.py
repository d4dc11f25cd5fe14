"""An agent lets its light threads (publisher, printer) take the interpreter lock back
within 0.5 ms; bench/status_latency.py measures what that does to a status's latency."""

from __future__ import annotations

import sys

from printstation.agent.config import Settings
from printstation.agent.station.agent import Agent
from printstation.agent.station.interpreter import SWITCH_INTERVAL


def test_an_agent_shortens_the_interpreter_switch_interval(tmp_path):
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # Python's default, whatever ran before in this process
    try:
        settings = Settings(station_id="gil", state_dir=tmp_path / "state",
                            printer_url=f"sim://?render=0&out={tmp_path / 'cards'}",
                            web_listen="", metrics_listen="")
        agent = Agent(settings)
        try:
            assert sys.getswitchinterval() == SWITCH_INTERVAL
        finally:
            agent.journal.close()
    finally:
        sys.setswitchinterval(before)
