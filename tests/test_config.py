"""Configuration: defaults, then TOML, then environment, then flags; one clear message if bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from printstation.agent.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("PRINTSTATION_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "printstation.toml"
    path.write_text(text)
    return path


def test_defaults_work_with_no_configuration():
    s = load_settings()
    assert s.printer_url == "sim://" and s.broker_url.startswith("amqp://")
    assert s.station_id and s.verify_signatures


def test_the_example_config_is_valid(monkeypatch, tmp_path):
    example = Path(__file__).parent.parent / "printstation.example.toml"
    s = load_settings(example)
    assert s.station_id == "bogor-kota-01"


def test_precedence_file_then_environment_then_flags(tmp_path, monkeypatch):
    cfg = write(tmp_path, 'station_id = "from-file"\nprinter_url = "sim://?cards=5"\n'
                          'pools = ["a"]\n[thresholds.ribbon]\nwarning = 50\ncritical = 5\n')
    s = load_settings(cfg)
    assert (s.station_id, s.pools, s.thresholds["ribbon"].warning) == ("from-file", ["a"], 50)
    monkeypatch.setenv("PRINTSTATION_STATION_ID", "from-env")
    monkeypatch.setenv("PRINTSTATION_POOLS", "b,c")
    s = load_settings(cfg)
    assert (s.station_id, s.pools, s.printer_url) == ("from-env", ["b", "c"], "sim://?cards=5")
    s = load_settings(cfg, station_id="from-flag")
    assert s.station_id == "from-flag"


@pytest.mark.parametrize(("text", "needle"), [
    ('station_id = "Bad Id"', "config key station_id: String should match pattern"),
    ('broker_url = "http://x"', "config key broker_url: must start with amqp:// or amqps://"),
    ('pools = ["OK", "x"]', "config key pools: pool 'OK' is not"),
    ('printer_url = "usb"', "config key printer_url: must be a URL"),
    ('statoin_id = "typo"', "config key statoin_id: unknown key"),
    ("[thresholds.toner]\nwarning = 1\ncritical = 0", "unknown consumable 'toner'"),
    ("[thresholds.film]\nwarning = 1\ncritical = 5", "critical level is above the warning"),
    ("delivery_limit = 0", "config key delivery_limit"),
    ("station_id = ", "not valid TOML"),
])
def test_a_bad_config_names_the_key_and_the_problem(tmp_path, text, needle):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert needle in str(info.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_a_bad_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("PRINTSTATION_DELIVERY_LIMIT", "many")
    with pytest.raises(ConfigError, match="config key delivery_limit"):
        load_settings()
