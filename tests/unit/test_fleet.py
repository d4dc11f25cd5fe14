"""`printstation fleet`: stations' telemetry through the broker, first to run out first."""

from __future__ import annotations

from printstation.agent.central.fleet import Fleet


def test_alerts_between_telemetry_update_a_station_row():
    fleet = Fleet("bo-*")
    t = {"schema": "printstation.telemetry/1", "station_id": "bo-1", "state": "ready",
         "printer": {"faults": []}, "consumables": [], "cards_left": None,
         "counters": {"printed_today": 0}, "alerts": [], "queued_jobs": 0}
    assert fleet.ingest(t, now=0.0) and not fleet.ingest({**t, "station_id": "jk-1"}, now=0.0)
    fleet.ingest({"schema": "printstation.alert/1", "station_id": "bo-1",
                  "condition": "ribbon_low", "severity": "warning", "cleared": False}, now=1.0)
    assert fleet.rows(now=2.0)[0]["open_alerts"] == 1
    fleet.ingest({"schema": "printstation.alert/1", "station_id": "bo-1",
                  "condition": "ribbon_low", "severity": "warning", "cleared": True}, now=3.0)
    assert fleet.rows(now=4.0)[0]["open_alerts"] == 0
    assert fleet.rows(now=200.0)[0]["state"] == "silent"
