"""The broker password is the service's alone: a password file or the systemd credential,
against the real broker, and never in a log line (the unit tier checks `config`)."""

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

from printstation.agent.central.samples import sample_job
from tests.support import (
    CLI,
    control_answers,
    password_file,
    run,
    unusual_password,
    wait_for,
)
from tests.support.broker import BROKER_HOST, BROKER_PORT, rabbitmqctl


@pytest.fixture
def broker_user(vhost: str) -> Iterator[tuple[str, str]]:
    """A broker user of this test's own with every right in the test vhost; deleted after."""
    user, password = f"pw-{uuid.uuid4().hex[:10]}", unusual_password()
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
    pw = password_file(tmp_path / "broker-password", password)
    station = make_station(station_id, broker_url=_url(user, vhost), broker_password_file=pw)
    assert station.agent.fatal is None
    assert len(_connections(user, vhost)) == 2  # the consumer and the publisher, as `user`
    job_id = submitter.submit_job(sample_job(f"PW-{station_id}").body, station=station_id)
    assert events.wait_final([job_id])[job_id]["status"] == "printed"
    assert password not in repr(station.agent.settings)


def test_a_wrong_password_is_refused_by_the_broker_and_never_logged(
        tmp_path, make_station, broker_user, vhost, station_id, capsys):
    user, _ = broker_user
    wrong = unusual_password()
    pw = password_file(tmp_path / "broker-password", wrong)
    station = make_station(station_id, broker_url=_url(user, vhost), broker_password_file=pw,
                           start=False)
    seen: list[str] = []

    def lost() -> bool:
        seen.append(capsys.readouterr().err)
        return "broker_login_refused" in "".join(seen)

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
    password_file(creds / "broker-password", password, mode=0o400)
    cfg = tmp_path / "printstation.toml"
    base = _station_toml(tmp_path, station_id, _url(user, vhost))
    cfg.write_text(base)
    cfg.chmod(0o640)
    service = Service(tmp_path, cfg, {"CREDENTIALS_DIRECTORY": str(creds)})
    try:
        wait_for(lambda: len(_connections(user, vhost)) == 2, 30,
                 "the agent's two connections as its own broker user")
        # SIGHUP with a password file the group can read: refused, the agent runs on.
        other = password_file(tmp_path / "broker-password", password, mode=0o640)
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


def test_a_refused_login_raises_an_alert_a_person_acts_on_and_clears_once_fixed(
        tmp_path, broker_user, vhost, station_id):
    """A wrong password is no outage that passes: the agent logs the broker's reason (not
    an empty `AMQPConnectionError: `), retries on a slower backoff, and raises a critical
    alert the station shows; a corrected password file is read at the next try."""
    user, password = broker_user
    wrong = unusual_password()
    pw = password_file(tmp_path / "broker-password", wrong)
    cfg = tmp_path / "printstation.toml"
    cfg.write_text(_station_toml(tmp_path, station_id, _url(user, vhost))
                   + f'broker_password_file = "{pw}"\nreconnect_max_delay = 1.0\n'
                   'web_listen = ""\nmetrics_listen = ""\n')
    cfg.chmod(0o600)
    service = Service(tmp_path, cfg, {})

    def alert() -> list[str]:
        out = run("status", "--config", str(cfg))
        assert "Traceback" not in out.stderr
        return [x for x in out.stdout.splitlines() if x.startswith("ALERT critical: Not connected")]

    try:
        shown = wait_for(alert, 30, "the refused login's alert in `printstation status`")
        assert f"refused the login as user {user!r} (wrong password or no such user): " \
               "ACCESS_REFUSED" in shown[0]
        assert "A person must act: check the password in broker_password_file" in shown[0]
        refused = service.lines("broker_login_refused")
        assert refused and all("ACCESS_REFUSED" in x["error"] for x in refused)
        assert refused[0]["level"] == "error" and refused[0]["retry_in"] >= 1.0  # not 0.5
        password_file(pw, password)  # the administrator corrects the file; no restart
        wait_for(lambda: len(_connections(user, vhost)) == 2, 30,
                 "the agent's two connections once the password is right")
        wait_for(lambda: not alert(), 30, "the alert to clear once connected")
    finally:
        code = service.stop()
    logs = service.text()
    assert code == 0, logs
    assert "AMQPConnectionError: " not in logs and not service.lines("broker_lost")
    for secret in (wrong, password):
        assert secret not in logs and quote(secret, safe="") not in logs
