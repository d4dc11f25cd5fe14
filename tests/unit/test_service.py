"""The agent as a systemd service: the unit and its per-printer template verify; memory goes
back; telemetry keeps time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from printstation.agent.config import Settings
from tests.support import REPO, run, wait_for

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


# --------------------------------------------------------- several printers on one PC

TEMPLATE = REPO / "systemd" / "printstation@.service"
INSTANCES = REPO / "systemd" / "instances"
#: The lines an instance's unit has of its own; every other line is the plain unit's.
PER_INSTANCE = {
    "Description=printstation ID-card print-station agent":
        "Description=printstation ID-card print-station agent for printer %i",
    "ExecStart=/usr/bin/printstation run --config /etc/printstation/printstation.toml":
        "ExecStart=/usr/bin/printstation run --config /etc/printstation/%i.toml",
    "StateDirectory=printstation": "StateDirectory=printstation/%i",
    "RuntimeDirectory=printstation": "RuntimeDirectory=printstation/%i",
    "LoadCredential=broker-password:/etc/printstation/broker-password":
        "LoadCredential=broker-password:/etc/printstation/%i.broker-password",
}


def _settings_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_the_instance_template_verifies_for_an_instance_and_is_the_plain_unit_per_printer(
        tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd"
    command = shutil.which("printstation") or str(Path(sys.executable).parent / "printstation")
    # systemd-analyze finds the template beside the instance named, and resolves %i in it.
    (tmp_path / TEMPLATE.name).write_text(
        TEMPLATE.read_text().replace("/usr/bin/printstation", command))
    result = subprocess.run([analyze, "verify", str(tmp_path / "printstation@fargo-1.service")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    # Hardened as the plain unit is, line for line: only the per-printer lines differ.
    plain = [PER_INSTANCE.get(line, line) for line in _settings_lines(UNIT)]
    assert plain == _settings_lines(TEMPLATE)


def test_the_example_instances_check_and_own_what_their_unit_gives_them():
    """Each example passes `printstation config`; the two share the pool and nothing that
    one agent owns: station, printer, state folder, control socket, ports, broker user."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PRINTSTATION_WEB_LISTEN", "PRINTSTATION_METRICS_LISTEN")}
    seen = {}
    for name in ("fargo-1", "fargo-2"):
        out = run("config", "--config", str(INSTANCES / f"{name}.toml"), env=env)
        assert out.returncode == 0, out.stderr
        config = json.loads(out.stdout)
        # The folders the template's StateDirectory= and RuntimeDirectory= give instance NAME.
        assert config["state_dir"] == f"/var/lib/printstation/{name}"
        assert Path(config["control_socket"]).parent == Path(f"/run/printstation/{name}")
        seen[name] = config
    one, two = seen.values()
    assert one["pools"] == two["pools"] != []
    for key in ("station_id", "broker_url", "printer_url", "state_dir", "control_socket",
                "web_listen", "metrics_listen"):
        assert one[key] != two[key], key
    defaults = Settings(station_id="x")
    for config in (one, two):  # a plain unit's agent on the same PC clashes with neither
        assert config["web_listen"] != defaults.web_listen
        assert config["metrics_listen"] != defaults.metrics_listen


def test_under_an_instance_unit_the_state_folder_and_socket_default_to_its_own(monkeypatch):
    """systemd sets $STATE_DIRECTORY and $RUNTIME_DIRECTORY per instance; the agent takes
    them when its file names no folder. The file names them anyway, for the operators'
    commands, which run outside the unit."""
    monkeypatch.delenv("PRINTSTATION_STATE_DIR", raising=False)
    monkeypatch.delenv("PRINTSTATION_CONTROL_SOCKET", raising=False)
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/printstation/fargo-2")
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/printstation/fargo-2")
    settings = Settings(station_id="x")
    assert settings.state_dir == Path("/var/lib/printstation/fargo-2")
    assert settings.socket_path() == Path("/run/printstation/fargo-2/control.sock")
    named = Settings(station_id="x", state_dir="/srv/a", control_socket="/srv/a.sock")
    assert (named.state_dir, named.socket_path()) == (Path("/srv/a"), Path("/srv/a.sock"))
    monkeypatch.delenv("RUNTIME_DIRECTORY")
    assert Settings(station_id="x").socket_path() == Path(
        "/var/lib/printstation/fargo-2/control.sock")
