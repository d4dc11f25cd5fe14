"""A driver from another package is found by its URL scheme and used without touching the agent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from printstation.agent.central.samples import sample_job

PLUGINS = Path(__file__).parent / "plugins"


def test_probe_finds_a_driver_registered_by_another_package():
    env = {**os.environ, "PYTHONPATH": str(PLUGINS)}
    out = subprocess.run([sys.executable, "-m", "printstation.agent", "probe",
                          "testprinter://desk-3"], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Plug-in Test Printer" in out.stdout and "desk-3" in out.stdout


def test_the_agent_prints_through_a_plugged_in_driver(monkeypatch, make_station, submitter,
                                                    events, station_id):
    monkeypatch.syspath_prepend(str(PLUGINS))
    import printstation_testdriver

    station = make_station(station_id, printer_url=f"testprinter://{station_id}")
    assert type(station.agent.driver).__name__ == "TestPrinterDriver"
    job = sample_job(f"PLUG-{station_id}", two_sided=False).body
    submitter.submit_job(job, station=station_id)
    final = events.wait_final([job["job_id"]])[job["job_id"]]
    assert final["status"] == "printed"
    assert printstation_testdriver.PRINTED[station_id] == [job["job_id"]]
