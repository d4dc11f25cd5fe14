"""The broker password is the service's alone: a password file or the systemd credential,
against the real broker, and never in the output of `printstation config` or in a log line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import BROKER_HOST, BROKER_PORT, control_answers, rabbitmqctl, wait_for
from test_cli import CLI, run

from printstation.agent.central.samples import sample_job


def _secret() -> str:
    """A password no other text in a test holds, with characters a URL must quote."""
    return f"pw:{uuid.uuid4().hex}@/%#?"


def _password_file(path: Path, password: str, mode: int = 0o600) -> Path:
    path.write_text(password + "\n")
    path.chmod(mode)
    return path


@pytest.fixture
def broker_user(vhost: str) -> Iterator[tuple[str, str]]:
    """A broker user of this test's own with every right in the test vhost; deleted after."""
    user, password = f"pw-{uuid.uuid4().hex[:10]}", _secret()
    rabbitmqctl("add_user", user, password)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield user, password
    finally:
        rabbitmqctl("delete_user", user)


def _url(user: str, vhost: str, password: str | None = None) -> str:
    login = user if password is None else f"{user}:{quote(password, safe='')}"
    return f"amqp://{login}@{BROKER_HOST}:{BROKER_PORT}/{quote(vhost, safe='')}"


def _connections(user: str, vhost: str) -> list[str]:
    """The agent connections (consumer, publisher) `user` has open in `vhost`."""
    out = rabbitmqctl("list_connections", "-q", "user", "vhost", "client_properties")
    return [line for line in out.splitlines()
            if line.split("\t")[:2] == [user, vhost] and "printstation-" in line]


# ------------------------------------------------------------------------- in process


def test_an_agent_logs_in_with_the_password_only_its_password_file_holds(
        tmp_path, make_station, broker_user, vhost, station_id, submitter, events):
    user, password = broker_user
    pw = _password_file(tmp_path / "broker-password", password)
    station = make_station(station_id, broker_url=_url(user, vhost), broker_password_file=pw)
    assert station.agent.fatal is None
    assert len(_connections(user, vhost)) == 2  # the consumer and the publisher, as `user`
    job_id = submitter.submit_job(sample_job(f"PW-{station_id}").body, station=station_id)
    assert events.wait_final([job_id])[job_id]["status"] == "printed"
    assert password not in repr(station.agent.settings)


def test_a_wrong_password_is_refused_by_the_broker_and_never_logged(
        tmp_path, make_station, broker_user, vhost, station_id, capsys):
    user, _ = broker_user
    wrong = _secret()
    pw = _password_file(tmp_path / "broker-password", wrong)
    station = make_station(station_id, broker_url=_url(user, vhost), broker_password_file=pw,
                           start=False)
    seen: list[str] = []

    def lost() -> bool:
        seen.append(capsys.readouterr().err)
        return "broker_lost" in "".join(seen)

    station.agent.start()
    try:
        wait_for(lost, 20, "the broker to refuse the login")
    finally:
        station.agent.stop()
    seen.append(capsys.readouterr().err)
    logged = "".join(seen)
    assert "ACCESS_REFUSED" in logged
    assert wrong not in logged and quote(wrong, safe="") not in logged
    assert not _connections(user, vhost)


# ------------------------------------------------------------------ printstation config


def test_config_masks_every_password_and_warns_of_one_in_a_readable_file(tmp_path):
    password, printer_password = _secret(), uuid.uuid4().hex
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
    password = _secret()
    pw = _password_file(tmp_path / "broker-password", password)
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    _password_file(creds / "broker-password", password, mode=0o400)
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
    password = _secret()
    pw = _password_file(tmp_path / "broker-password", password, mode=0o640)
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


# ----------------------------------------------------------------- printstation run


class Service:
    """`printstation run` as systemd starts it, its JSON log lines in a file."""

    def __init__(self, root: Path, config: Path, env: dict[str, str]):
        self.log_path = root / "agent.log"
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen([*CLI, "run", "--config", str(config)], stdout=log,
                                         stderr=subprocess.STDOUT, env={**os.environ, **env})

    def text(self) -> str:
        return self.log_path.read_text()

    def lines(self, event: str) -> list[dict]:
        return [json.loads(x) for x in self.text().splitlines() if f'"{event}"' in x]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def _station_toml(tmp_path: Path, station_id: str, broker_url: str) -> str:
    return (f'station_id = "{station_id}"\nbroker_url = "{broker_url}"\n'
            f'printer_url = "sim://?render=0&out={tmp_path / "cards"}"\n'
            f'state_dir = "{tmp_path / "state"}"\nverify_signatures = false\n')


def test_the_service_logs_in_with_the_systemd_credential_and_a_reload_keeps_it(
        tmp_path, broker_user, vhost, station_id):
    user, password = broker_user
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    _password_file(creds / "broker-password", password, mode=0o400)
    cfg = tmp_path / "printstation.toml"
    base = _station_toml(tmp_path, station_id, _url(user, vhost))
    cfg.write_text(base)
    cfg.chmod(0o640)
    service = Service(tmp_path, cfg, {"CREDENTIALS_DIRECTORY": str(creds)})
    try:
        wait_for(lambda: len(_connections(user, vhost)) == 2, 30,
                 "the agent's two connections as its own broker user")
        # SIGHUP with a password file the group can read: refused, the agent runs on.
        other = _password_file(tmp_path / "broker-password", password, mode=0o640)
        cfg.write_text(base + f'broker_password_file = "{other}"\n')
        service.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: service.lines("config_reload_rejected"), 20, "the refusal")
        assert service.lines("config_reload_rejected")[0]["error"] == (
            f"config key broker_password_file: {other} is readable by group or others "
            "(mode 0640); chmod 600 it")
        # A good one is taken as a change that needs a restart.
        other.chmod(0o600)
        service.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: service.lines("config_reloaded"), 20, "the reload")
        assert service.lines("config_reloaded")[0]["need_restart"] == ["broker_password_file"]
        assert control_answers(tmp_path / "state")
        assert len(_connections(user, vhost)) == 2
    finally:
        code = service.stop()
    logs = service.text()
    assert code == 0, logs
    assert password not in logs and quote(password, safe="") not in logs
    assert not service.lines("broker_password_in_readable_config")


def test_the_service_warns_once_of_a_password_in_a_config_file_the_group_can_read(
        tmp_path, broker_user, vhost, station_id):
    user, password = broker_user
    cfg = tmp_path / "printstation.toml"
    cfg.write_text(_station_toml(tmp_path, station_id, _url(user, vhost, password)))
    cfg.chmod(0o640)
    service = Service(tmp_path, cfg, {})
    try:
        wait_for(lambda: len(_connections(user, vhost)) == 2, 30,
                 "the agent's two connections as its own broker user")
    finally:
        code = service.stop()
    logs = service.text()
    assert code == 0, logs
    warnings = service.lines("broker_password_in_readable_config")
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"
    assert warnings[0]["config_file"] == str(cfg)
    assert "put the password in broker_password_file" in warnings[0]["detail"]
    assert password not in logs and quote(password, safe="") not in logs


def test_the_unit_passes_the_credential_the_agent_reads():
    from printstation.agent.config import BROKER_PASSWORD_CREDENTIAL

    unit = Path(__file__).parent.parent / "systemd" / "printstation.service"
    lines = [x for x in unit.read_text().splitlines() if x.startswith("LoadCredential=")]
    assert lines == [f"LoadCredential={BROKER_PASSWORD_CREDENTIAL}:"
                     "/etc/printstation/broker-password"]
