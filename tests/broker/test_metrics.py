"""What Prometheus scrapes from a real agent: valid for promtool, gauges that go down,
counters that never do (across a restart too), and no label an operator wrote."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from printstation.agent.central.samples import sample_job
from printstation.agent.station.journal.tally import KNOWN_REASONS
from tests.support import wait_for

OPERATOR = "Siti Rahayu"
INSTALL = ("this test needs promtool: apt-get install -y --no-install-recommends prometheus "
           "(make system-deps does it)")


def _scrape(station) -> str:
    with urllib.request.urlopen(station.agent.url("metrics") + "metrics", timeout=10) as r:
        return r.read().decode()


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _types(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def test_metrics_pass_promtool_and_counters_never_go_down(make_station, submitter, events,
                                                         station_id, tmp_path):
    if not shutil.which("promtool"):
        pytest.fail(INSTALL, pytrace=False)
    state = tmp_path / "state"
    station = make_station(station_id, state_dir=state,
                           sim="print_time=0.05&render=0&jam_at=1&clear_after=0.2")
    view = station.agent.view
    assert view.act({"cmd": "pause", "why": "loading"}, OPERATOR)["ok"]
    jobs = [submitter.submit_job(sample_job(f"MET-{station_id}-{i}").body, station=station_id)
            for i in range(3)]
    queued = ("printstation_jobs", (("state", "queued"),))
    printed = ("printstation_jobs_ended_total", (("status", "printed"),))
    wait_for(lambda: _samples(_scrape(station)).get(queued) == 3, 20, "3 jobs queued")
    assert view.act({"cmd": "resume", "why": "loaded"}, OPERATOR)["ok"]
    events.wait_final(jobs)
    m = wait_for(lambda: (lambda m: m if m.get(printed) == 3 else None)(
        _samples(_scrape(station))), 20, "3 printed jobs in the metrics")
    assert m[queued] == 0  # a gauge: it went down from 3
    # An operator's test card: the ledger names who printed it, the metrics never do.
    assert view.act({"cmd": "test-print", "why": f"new ribbon, {OPERATOR}"}, OPERATOR)["ok"]
    test_card = ("printstation_cards_total", (("outcome", "test"), ("reason", "")))
    wait_for(lambda: _samples(_scrape(station)).get(test_card) == 1, 20, "the test card")

    text = _scrape(station)
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                             capture_output=True, timeout=60)
    assert checked.returncode == 0 and not (checked.stdout + checked.stderr).strip(), \
        checked.stdout + checked.stderr
    types = _types(text)
    assert types["printstation_jobs"] == "gauge"
    assert types["printstation_jobs_ended"] == "counter"
    assert types["printstation_cards"] == "counter"
    assert OPERATOR not in text and "Siti" not in text
    samples = _samples(text)
    reasons = {dict(labels)["reason"] for name, labels in samples
               if name == "printstation_cards_total"}
    assert reasons <= KNOWN_REASONS | {""} and "jam" in reasons, reasons
    assert samples[("printstation_cards_total", (("outcome", "spoiled"), ("reason", "jam")))] == 1
    counters = {k: v for k, v in samples.items() if k[0].endswith("_total")}

    # The same station started again: every counter where it was, none reset.
    station.agent.stop()
    again = make_station(station_id, state_dir=state)
    after = _samples(_scrape(again))
    assert {k: after.get(k) for k in counters} == counters
