"""A driver from another package is found by its URL scheme and used without touching the agent."""

from __future__ import annotations

from printstation.agent.central.samples import sample_job
from tests.support import PLUGINS


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
