"""The `printstation` command as users run it: help, schema, keys, demo, run, submit, watch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import wait_for

from printstation.agent.central.tools import EventTap
from printstation.agent.surfaces.cli import build_parser

CLI = [sys.executable, "-m", "printstation.agent"]


def run(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)


def _subcommands() -> list[list[str]]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return [[name] for name in action.choices] + [["keys", "generate"]]


def test_each_part_contributes_its_own_subcommands():
    """The command is composed from the parts' add_parsers: each part brings its commands,
    and none is lost or added twice when the parts are put together."""
    import argparse
    import importlib

    from printstation.agent.surfaces.cli import COMMAND_GROUPS

    expected = {
        "printstation.agent.surfaces.service_cli": {"run", "config", "demo", "probe"},
        "printstation.agent.surfaces.operator_cli": {
            "status", "pause", "resume", "jobs", "cancel", "resolve", "hand-back",
            "test-print", "web"},
        "printstation.agent.surfaces.stock_cli": {"load", "stock", "clean", "ledger"},
        "printstation.agent.broker.cli": {"broker-permissions", "declare-shared"},
        "printstation.agent.central.cli": {
            "keys", "sample-jobs", "submit", "control", "watch", "fleet", "schema"},
    }
    assert set(COMMAND_GROUPS) == set(expected)
    for group, names in expected.items():
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(group).add_parsers(sub)
        assert set(sub.choices) == names, group
        for name, parser in sub.choices.items():  # a command runs, or has actions that do
            assert callable(parser.get_default("func")) or parser._subparsers, name
    whole = {n for s in _subcommands() for n in s[:1]}
    assert whole == set().union(*expected.values())


@pytest.mark.parametrize("words", _subcommands(), ids=" ".join)
def test_every_subcommand_has_useful_help(words):
    out = run(*words, "--help")
    assert out.returncode == 0 and "usage: printstation" in out.stdout
    assert len(out.stdout.splitlines()) >= 4


def test_schema_writes_json_schemas_and_asyncapi(tmp_path):
    out = run("schema", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "asyncapi.json" in names and "printstation.job-v2.schema.json" in names
    assert "printstation.control-v2.schema.json" in names
    assert len(names) == 7
    job = json.loads((tmp_path / "printstation.job-v2.schema.json").read_text())
    assert set(job["required"]) >= {"schema", "job_id", "destination", "created_at",
                                    "card_stock", "sides"}
    assert "chip" in job["properties"]
    control = json.loads((tmp_path / "printstation.control-v2.schema.json").read_text())
    assert set(control["required"]) >= {"schema", "command_id", "issued_at", "station_id"}
    api = json.loads((tmp_path / "asyncapi.json").read_text())
    assert "station.{station_id}" in api["channels"]
    assert api["info"]["version"] == "2" and "handback.pool.{pool}" in api["channels"]


def test_bad_config_exits_2_naming_the_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('station_id = "Not Valid"\n')
    out = run("config", "--config", str(cfg))
    assert out.returncode == 2
    assert out.stderr.strip().startswith("printstation: config key station_id:")
    assert len(out.stderr.strip().splitlines()) == 1


def test_demo_prints_sample_cards_without_a_broker(tmp_path):
    out = run("demo", "--count", "3", "--print-time", "0.05", "--out", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all cards printed" in out.stdout
    ledger = [json.loads(x) for x in (tmp_path / "cards" / "ledger.jsonl").read_text().splitlines()]
    assert sum(1 for c in ledger if c["outcome"] == "issued") == 3
    assert len(list((tmp_path / "cards").glob("card-*.png"))) == 3


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
