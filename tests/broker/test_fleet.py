"""`printstation fleet`: stations' telemetry through the broker, first to run out first."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid


def test_fleet_lists_stations_sorted_by_what_runs_out_first(make_station, broker_url):
    tag = uuid.uuid4().hex[:8]
    fleet = subprocess.Popen([sys.executable, "-m", "printstation.agent", "fleet",
                              "--broker-url", broker_url, "--stations", f"fl{tag}-*", "--json",
                              "--duration", "6"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert fleet.stderr is not None
    assert "listening" in fleet.stderr.readline()  # bound: events from now on reach it
    plenty = make_station(f"fl{tag}-plenty")
    short = make_station(f"fl{tag}-short", sim="print_time=0.05&render=0&ribbon=40")
    make_station(f"other{tag}")  # not matched by the pattern
    for station in (plenty, short):
        station.agent.telemetry.now()
    out, err = fleet.communicate(timeout=60)
    assert fleet.returncode == 0, err
    rows = json.loads(out)
    assert [r["station_id"] for r in rows] == [f"fl{tag}-short", f"fl{tag}-plenty"]
    assert rows[0]["first_to_run_out"] == "ribbon" and rows[0]["cards_left"] == 20
    assert rows[0]["ribbon"] == "40/40" and rows[1]["state"] == "ready"
