"""The agent's log lines as a collector reads them: JSON with an RFC 3339 timestamp that
carries the PC's UTC offset."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.support import CLI, wait_for


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("zone", "offset"), [("Asia/Jakarta", timedelta(hours=7)),
                                              ("UTC", timedelta(0))])
def test_every_log_line_of_a_running_agent_has_a_zoned_timestamp(tmp_path: Path, zone,
                                                                  offset):
    config = tmp_path / "station.toml"
    config.write_text(f'station_id = "logs"\nstate_dir = "{tmp_path / "state"}"\n'
                      f'broker_url = "amqp://127.0.0.1:{_closed_port()}/%2F"\n'
                      f'printer_url = "sim://?render=0&out={tmp_path / "cards"}"\n'
                      "verify_signatures = false\n")
    config.chmod(0o600)
    stderr = tmp_path / "stderr.log"
    with stderr.open("w") as err:
        agent = subprocess.Popen([*CLI, "run", "--config", str(config)], stderr=err,
                                 stdout=subprocess.DEVNULL, env={**os.environ, "TZ": zone})
    try:
        # Started, and the broker (a closed port) refused: lines from several threads.
        wait_for(lambda: "agent_started" in stderr.read_text()
                 and "broker_lost" in stderr.read_text(), 30, "the agent's first log lines")
    finally:
        agent.terminate()
        agent.wait(timeout=30)
    lines = [json.loads(line) for line in stderr.read_text().splitlines() if line.strip()]
    assert len(lines) >= 3
    for line in lines:
        stamp = datetime.fromisoformat(line["timestamp"])
        assert stamp.tzinfo is not None, line
        assert stamp.utcoffset() == offset, line
        assert line["timestamp"][10] == "T" and line["timestamp"][-6] in "+-", line
