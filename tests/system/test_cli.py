"""The `printstation` command as a real deployment runs it: the demo through the broker,
and `run`, `submit` and `watch` as separate processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from printstation.agent.central.tools import EventTap
from tests.support import CLI, run, wait_for


def test_demo_through_the_broker(tmp_path, broker_url):
    out = run("demo", "--count", "2", "--print-time", "0.05", "--jam-at", "0",
              "--broker", broker_url, "--out", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all cards printed" in out.stdout


def test_run_submit_and_watch_as_a_real_deployment(tmp_path, broker_url, station_id):
    keys = tmp_path / "keys"
    assert run("keys", "generate", "--id", "central", "--out", str(keys)).returncode == 0
    assert oct((keys / "central.key").stat().st_mode)[-3:] == "600"
    jobs = tmp_path / "jobs"
    out = run("sample-jobs", "--count", "2", "--out", str(jobs), "--prefix", station_id)
    assert out.returncode == 0, out.stderr
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'station_id = "{station_id}"\nbroker_url = "{broker_url}"\n'
                   f'printer_url = "sim://?print_time=0.05&render=0&out={tmp_path / "cards"}"\n'
                   f'state_dir = "{tmp_path / "state"}"\n'
                   f'[trusted_keys]\ncentral = "{keys / "central.pub"}"\n')
    log = (tmp_path / "agent.log").open("w")
    agent = subprocess.Popen([*CLI, "run", "--config", str(cfg)], stdout=log,
                             stderr=subprocess.STDOUT, env={**os.environ})
    try:
        with EventTap(broker_url, binding=f"status.{station_id}.*") as tap:
            # The agent declares its queue on start; submit once it exists.
            def submitted() -> bool:
                out = run("submit", *map(str, sorted(jobs.iterdir())), "--key",
                          str(keys / "central.key"), "--station", station_id,
                          "--broker-url", broker_url)
                return out.returncode == 0
            wait_for(submitted, 30, "the station queue to exist")
            printed: set[str] = set()
            deadline = time.monotonic() + 60
            while len(printed) < 2 and time.monotonic() < deadline:
                for e in tap.events(1):
                    if e["status"] == "printed":
                        printed.add(e["job_id"])
            assert len(printed) == 2
        watch = run("watch", "--broker-url", broker_url, "--station", station_id,
                    "--timeout", "0.5")
        assert watch.returncode == 0
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(30)
        log.close()
    logs = (tmp_path / "agent.log").read_text()
    assert code == 0, logs
    for line in logs.splitlines():
        json.loads(line)  # every log line is JSON
    assert "agent_stopped" in logs
