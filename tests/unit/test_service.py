"""The agent as a systemd service: the unit verifies; memory goes back; telemetry keeps time."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, wait_for

UNIT = REPO / "systemd" / "printstation.service"


def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd"
    command = shutil.which("printstation") or str(Path(sys.executable).parent / "printstation")
    unit = tmp_path / "printstation.service"  # ExecStart pointed at this install's command
    unit.write_text(UNIT.read_text().replace("/usr/bin/printstation", command))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "User=printstation",
                 "StateDirectory=printstation", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "DevicePolicy=closed", "RuntimeDirectory=printstation"):
        assert line in text, line


def test_the_allocator_returns_large_freed_buffers_on_glibc():
    """bench/footprint.py shows the effect (flat RSS); here, that glibc takes the settings."""
    import platform

    from printstation.agent.station.memory import tune_allocator

    if platform.libc_ver()[0] != "glibc":
        pytest.fail("this test expects a glibc system, as the station PCs are")
    assert tune_allocator()


def test_telemetry_goes_out_every_interval_however_often_small_changes_wake_it(tmp_path):
    """Changes that leave telemetry as it was (a printer's error text that flickers) must
    not starve it: contract 4c, at least every 30 s (here every second)."""
    import threading

    from printstation.agent.config import Settings
    from printstation.agent.station.agent import Agent

    settings = Settings(station_id="tele", state_dir=tmp_path / "state",
                        printer_url=f"sim://?render=0&out={tmp_path / 'cards'}",
                        telemetry_interval=1.0, web_listen="", metrics_listen="")
    agent = Agent(settings)
    seen: list[dict] = []
    agent.start(embedded_sink=lambda e: seen.append(e) if e["schema"].startswith(
        "printstation.telemetry") else None)
    stop = threading.Event()

    def flicker() -> None:
        while not stop.wait(0.1):
            agent.telemetry.request()

    poker = threading.Thread(target=flicker, daemon=True)
    try:
        wait_for(lambda: seen, 10, "the first telemetry")
        first = len(seen)
        poker.start()
        wait_for(lambda: len(seen) >= first + 3, 10, "telemetry every interval")
    finally:
        stop.set()
        agent.stop()
