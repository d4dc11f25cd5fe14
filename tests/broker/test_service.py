"""The agent as a systemd service: READY, STATUS and WATCHDOG; a hung printer thread stops the
pings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import wait_for


class NotifySocket:
    """What systemd does for a Type=notify service: a datagram socket named in NOTIFY_SOCKET."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def pump(self) -> list[str]:
        while True:
            try:
                self.messages.extend(self.sock.recv(4096).decode().splitlines())
            except TimeoutError:
                return self.messages

    def count(self, line: str) -> int:
        return sum(1 for m in self.pump() if m == line)


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.sock.close()


def _run_agent(tmp_path, broker_url, station_id, notify, **env):
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'station_id = "{station_id}"\nbroker_url = "{broker_url}"\n'
                   f'printer_url = "sim://?render=0&out={tmp_path / "cards"}"\n'
                   f'state_dir = "{tmp_path / "state"}"\nverify_signatures = false\n')
    environ = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1500000",
               **env}
    return subprocess.Popen([sys.executable, "-m", "printstation.agent", "run", "--config",
                             str(cfg)], env=environ, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_ready_status_and_watchdog_pings(tmp_path, broker_url, station_id, notify):
    agent = _run_agent(tmp_path, broker_url, station_id, notify)
    try:
        wait_for(lambda: notify.count("READY=1") == 1, 30, "READY=1")
        wait_for(lambda: notify.count("WATCHDOG=1") >= 3, 30, "three watchdog pings")
        statuses = [m for m in notify.pump() if m.startswith("STATUS=")]
        assert any(s.startswith("STATUS=ready") for s in statuses), statuses
        agent.terminate()
        assert agent.wait(30) == 0
        assert "STOPPING=1" in notify.pump()
    finally:
        agent.kill()


def test_a_hung_printer_thread_stops_the_watchdog_pings(tmp_path, broker_url, station_id,
                                                        notify):
    agent = _run_agent(tmp_path, broker_url, station_id, notify,
                       PRINTSTATION_FAILPOINTS="printer_hang=1")
    try:
        wait_for(lambda: notify.count("READY=1") == 1, 30, "READY=1")
        why = wait_for(lambda: [m for m in notify.pump() if m.startswith("STATUS=not healthy")],
                       30, "the agent to withhold its watchdog pings")[0]
        assert "the printer thread has not moved" in why
        # Three more ping intervals (0.75 s each) pass without a ping: systemd would
        # restart the service now.
        assert _quiet_for(notify, 2.5), "the agent kept pinging with a hung printer thread"
    finally:
        agent.kill()
        agent.wait(10)


def _quiet_for(notify: NotifySocket, seconds: float) -> bool:
    """True after `seconds` with no WATCHDOG=1 arriving (reads with a deadline, no sleep)."""
    import time

    deadline = time.monotonic() + seconds
    before = notify.count("WATCHDOG=1")
    while time.monotonic() < deadline:
        notify.pump()
    return notify.count("WATCHDOG=1") == before
