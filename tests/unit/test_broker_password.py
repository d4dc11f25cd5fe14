"""The broker password is the service's alone: `printstation config` and `run` refuse a
password file others can read, and never print a password (the broker tier logs in)."""

from __future__ import annotations

import json
import os
import uuid
from urllib.parse import quote

import pytest

from tests.support import REPO, password_file, run, unusual_password

# ------------------------------------------------------------------ printstation config


def test_config_masks_every_password_and_warns_of_one_in_a_readable_file(tmp_path):
    password, printer_password = unusual_password(), uuid.uuid4().hex
    cfg = tmp_path / "printstation.toml"
    cfg.write_text(f'broker_url = "amqps://bogor-kota-01:{quote(password, safe="")}'
                   f'@broker.example/%2F"\n'
                   f'printer_url = "evolis+tcp://admin:{printer_password}@10.0.0.5:9100"\n')
    cfg.chmod(0o640)
    out = run("config", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    for secret in (password, quote(password, safe=""), printer_password):
        assert secret not in out.stdout + out.stderr
    shown = json.loads(out.stdout)
    assert shown["broker_url"] == "amqps://bogor-kota-01:***@broker.example/%2F"
    assert shown["printer_url"] == "evolis+tcp://admin:***@10.0.0.5:9100"
    assert out.stderr.splitlines() == [
        f"printstation: warning: broker_url in {cfg} carries the broker password, and the "
        "file is readable by group or others (mode 0640): keep only the user in broker_url "
        "and put the password in broker_password_file (mode 0600)"]
    cfg.chmod(0o600)
    out = run("config", "--config", str(cfg))
    assert out.returncode == 0 and out.stderr == ""


def test_config_names_the_password_file_and_never_prints_it(tmp_path, monkeypatch):
    password = unusual_password()
    pw = password_file(tmp_path / "broker-password", password)
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    password_file(creds / "broker-password", password, mode=0o400)
    cfg = tmp_path / "printstation.toml"
    cfg.write_text('broker_url = "amqps://bogor-kota-01@broker.example/%2F"\n'
                   f'broker_password_file = "{pw}"\n')
    cfg.chmod(0o640)
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(creds)}
    out = run("config", "--config", str(cfg), env=env)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no password in the file the group reads: nothing to warn of
    assert password not in out.stdout and quote(password, safe="") not in out.stdout
    shown = json.loads(out.stdout)
    assert shown["broker_password_file"] == str(pw)
    assert shown["broker_url"] == "amqps://bogor-kota-01@broker.example/%2F"
    # Outside the service (no credential, no file): noted, and the check still passes.
    cfg.write_text('broker_url = "amqps://bogor-kota-01@broker.example/%2F"\n')
    out = run("config", "--config", str(cfg))
    assert out.returncode == 0 and password not in out.stdout + out.stderr
    assert out.stderr.splitlines() == [
        "printstation: note: config key broker_url: names the user 'bogor-kota-01' but no "
        "password; set broker_password_file, or give the service the credential "
        "broker-password (LoadCredential=)"]


@pytest.mark.parametrize("command", ["config", "run"])
def test_a_password_file_the_group_can_read_is_refused_in_one_line(tmp_path, command):
    password = unusual_password()
    pw = password_file(tmp_path / "broker-password", password, mode=0o640)
    cfg = tmp_path / "printstation.toml"
    cfg.write_text('broker_url = "amqps://bogor-kota-01@broker.example/%2F"\n'
                   f'broker_password_file = "{pw}"\nstate_dir = "{tmp_path / "state"}"\n')
    out = run(command, "--config", str(cfg), timeout=60)
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        f"printstation: config key broker_password_file: {pw} is readable by group or "
        "others (mode 0640); chmod 600 it"]


def test_the_service_will_not_start_without_a_password_for_its_user(tmp_path):
    cfg = tmp_path / "printstation.toml"
    cfg.write_text('broker_url = "amqps://bogor-kota-01@broker.example/%2F"\n'
                   f'state_dir = "{tmp_path / "state"}"\n')
    out = run("run", "--config", str(cfg), timeout=60)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "printstation: config key broker_url: names the user 'bogor-kota-01' but no "
        "password; set broker_password_file, or give the service the credential "
        "broker-password (LoadCredential=)"]
    assert not (tmp_path / "state").exists()  # stopped before the agent touched anything


def test_the_unit_passes_the_credential_the_agent_reads():
    from printstation.agent.config import BROKER_PASSWORD_CREDENTIAL

    unit = REPO / "systemd" / "printstation.service"
    lines = [x for x in unit.read_text().splitlines() if x.startswith("LoadCredential=")]
    assert lines == [f"LoadCredential={BROKER_PASSWORD_CREDENTIAL}:"
                     "/etc/printstation/broker-password"]
