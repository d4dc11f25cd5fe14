"""The `printstation` command as users run it, without a broker: its parts, help, schema,
config errors, the demo on the embedded default."""

from __future__ import annotations

import base64
import json

import pytest

from printstation.agent.surfaces.cli import build_parser
from tests.support import run


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
        "printstation.agent.surfaces.books_cli": {"unload", "correct", "rolls"},
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
    assert api["channels"]["stationJobs"]["address"] == "station.{station_id}"
    assert api["info"]["version"] == "2" and "handbackQueue" in api["channels"]


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


def test_demo_chip_writes_each_cards_chip_and_spoils_the_one_whose_chip_is_dead(tmp_path):
    out = run("demo", "--chip", "--count", "3", "--jam-at", "0", "--print-time", "0.02",
              "--out", str(tmp_path))
    assert out.returncode == 0, out.stdout + out.stderr
    said = " ".join(out.stdout.split())  # rich wraps long lines
    assert "chips: 3 of 3 printed cards hold their job's chip data under the UID reported; " \
           "1 card rejected unprinted for its chip" in said
    ledger = [json.loads(x) for x in (tmp_path / "cards" / "ledger.jsonl").read_text().splitlines()]
    assert [(c["card_no"], c["outcome"]) for c in ledger] == [
        (1, "issued"), (2, "spoiled"), (3, "issued"), (4, "issued")]
    assert all(c["chip_uid"] and c["chip_digest"] for c in ledger)


def test_sample_jobs_chip_writes_jobs_with_an_apdu_script(tmp_path):
    out = run("sample-jobs", "--chip", "--count", "1", "--out", str(tmp_path), "--prefix", "C")
    assert out.returncode == 0, out.stderr
    job = json.loads((tmp_path / "C-000001.json").read_text())
    from printstation.drivers.apdu_script import apdu_script

    assert job["chip"]["profile"] == "apdu-script/1"
    assert len(apdu_script(base64.b64decode(job["chip"]["data"]))) == 40
