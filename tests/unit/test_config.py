"""Configuration: defaults, then TOML, then environment, then flags; one clear message if bad."""

from __future__ import annotations

import errno
import json
import os
import re
import struct
from pathlib import Path

import pika
import pytest

from printstation.agent.config import (
    ConfigError,
    exposed_password_warning,
    load_settings,
    mask_secrets,
    mask_url,
)
from tests.support import REPO

#: Settings are read with none of the shell's PRINTSTATION_ variables (conftest.py).
pytestmark = pytest.mark.usefixtures("clean_env")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "printstation.toml"
    path.write_text(text)
    return path


def test_defaults_work_with_no_configuration():
    s = load_settings()
    assert s.printer_url == "sim://" and s.broker_url.startswith("amqp://")
    assert s.station_id and s.verify_signatures


def test_the_example_config_is_valid(monkeypatch, tmp_path):
    example = REPO / "printstation.example.toml"
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
    ('statoin_id = "typo"', "config key statoin_id: unknown key; did you mean station_id"),
    ("[thresholds.toner]\nwarning = 1\ncritical = 0",
     "config key thresholds.toner: unknown key; valid: ribbon, film, cards"),
    ("[thresholds.film]\nwarning = 1\ncritical = 5", "critical level is above the warning"),
    ("delivery_limit = 0", "config key delivery_limit"),
    ("max_held_jobs = 0", "config key max_held_jobs: Input should be greater than or equal to 1"),
    ('max_held_jobs = "many"', "config key max_held_jobs"),
    ("station_id = ", "not valid TOML"),
])
def test_a_bad_config_names_the_key_and_the_problem(tmp_path, text, needle):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert needle in str(info.value)


def test_a_typo_in_a_table_name_is_an_unknown_key_naming_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "[thresholds.ribon]\nwarning = 100\ncritical = 20\n"))
    assert str(info.value) == "config key thresholds.ribon: unknown key; valid: ribbon, film, cards"
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, '[names]\njob_exchang = "x"\n'))
    assert str(info.value).startswith("config key names.job_exchang: unknown key; valid: "
                                      "job_exchange, event_exchange, ")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "[thresholdz.ribbon]\nwarning = 1\ncritical = 0\n"))
    assert str(info.value) == "config key thresholdz: unknown key; did you mean thresholds?"
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "zzz = 1\n"))
    assert str(info.value) == ("config key zzz: unknown key; printstation.example.toml lists "
                               "every key")


def test_every_problem_is_listed_one_line_each(tmp_path):
    cfg = write(tmp_path, 'station_id = "Bad Id"\ncleaning_interval = -1\nbogus = 1\n'
                          "[thresholds.film]\nwarnin = 5\ncritical = 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert info.value.problems == [
        "config key station_id: String should match pattern '^[a-z0-9_\\-]{1,64}$'",
        "config key thresholds.film.warning: missing: this table needs it",
        "config key thresholds.film.warnin: unknown key; valid: warning, critical",
        "config key cleaning_interval: Input should be greater than or equal to 0",
        "config key bogus: unknown key; printstation.example.toml lists every key",
    ]
    lines = str(info.value).splitlines()
    assert lines[0] == "5 problems in the configuration:"
    assert lines[1:] == [f"  {p}" for p in info.value.problems]
    assert "more" not in str(info.value)


def test_the_command_prints_every_problem_and_exits_2(tmp_path):
    from tests.support import run

    cfg = write(tmp_path, 'station_id = "Bad Id"\n[thresholds.ribon]\nwarning = 1\ncritical = 0\n')
    out = run("config", "--config", str(cfg))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        "printstation: 2 problems in the configuration:",
        "  config key station_id: String should match pattern '^[a-z0-9_\\-]{1,64}$'",
        "  config key thresholds.ribon: unknown key; valid: ribbon, film, cards"]


def test_a_consumable_left_out_of_thresholds_keeps_its_default_levels(tmp_path):
    s = load_settings(write(tmp_path, "[thresholds.ribbon]\nwarning = 7\ncritical = 2\n"))
    assert {k: (t.warning, t.critical) for k, t in s.thresholds.items()} == {
        "ribbon": (7, 2), "film": (100, 20), "cards": (50, 10)}


@pytest.mark.parametrize("command", [["run"], ["config"], ["status"], ["stock"]])
def test_listen_flags_override_the_file_and_the_environment(tmp_path, monkeypatch, command):
    from printstation.agent.surfaces.cli import build_parser
    from printstation.agent.surfaces.cliargs import load

    cfg = write(tmp_path, 'web_listen = "127.0.0.1:1001"\nmetrics_listen = "127.0.0.1:1002"\n')
    monkeypatch.setenv("PRINTSTATION_WEB_LISTEN", "127.0.0.1:2001")
    parse = build_parser().parse_args
    s = load(parse([*command, "--config", str(cfg)]))
    assert (s.web_listen, s.metrics_listen) == ("127.0.0.1:2001", "127.0.0.1:1002")
    s = load(parse([*command, "--config", str(cfg), "--web-listen", "127.0.0.1:3001",
                    "--metrics-listen", ""]))
    assert (s.web_listen, s.metrics_listen) == ("127.0.0.1:3001", "")
    with pytest.raises(ConfigError, match="config key metrics_listen: must be HOST:PORT"):
        load(parse([*command, "--metrics-listen", "9470"]))


def test_max_held_jobs_is_50_unless_set(tmp_path):
    assert load_settings(write(tmp_path, "")).max_held_jobs == 50
    assert load_settings(write(tmp_path, "max_held_jobs = 200")).max_held_jobs == 200


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_a_bad_environment_variable_is_named(monkeypatch):
    monkeypatch.setenv("PRINTSTATION_DELIVERY_LIMIT", "many")
    with pytest.raises(ConfigError, match="config key delivery_limit"):
        load_settings()


# ----------------------------------------------------------------------- broker password

#: Characters a URL must quote, so a password that reaches the broker whole was quoted right.
PASSWORD = "pa:ss@w/rd%41 #?x"
STATION_URL = "amqps://bogor-kota-01@broker.example/%2F"


def password_file(tmp_path: Path, text: str = PASSWORD + "\n", mode: int = 0o600,
                  name: str = "broker-password") -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return path


def login(url: str) -> tuple[str, str]:
    """The user and password pika will log in with."""
    credentials = pika.URLParameters(url).credentials
    return credentials.username, credentials.password


def test_the_password_file_replaces_the_urls_password_and_keeps_the_user(tmp_path):
    pw = password_file(tmp_path, PASSWORD + "\nsecond line\n")
    s = load_settings(broker_url="amqps://bogor-kota-01:old@broker.example/%2F",
                      broker_password_file=pw)
    assert login(s.broker_connection_url()) == ("bogor-kota-01", PASSWORD)
    assert s.broker_url == "amqps://bogor-kota-01:old@broker.example/%2F"  # as configured
    s = load_settings(broker_url=STATION_URL, broker_password_file=password_file(
        tmp_path, "secret\r\n", name="crlf"))
    assert login(s.broker_connection_url()) == ("bogor-kota-01", "secret")


def test_without_a_password_file_the_url_is_used_as_it_is():
    url = "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert load_settings(broker_url=url).broker_connection_url() == url


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_a_password_file_group_or_others_can_read_is_refused(tmp_path, mode):
    pw = password_file(tmp_path, mode=mode)
    with pytest.raises(ConfigError) as info:
        load_settings(broker_url=STATION_URL, broker_password_file=pw)
    assert str(info.value) == (f"config key broker_password_file: {pw} is readable by group "
                               f"or others (mode {mode:04o}); chmod 600 it")


@pytest.mark.parametrize(("text", "problem"), [
    (None, "not found; write the broker password there, mode 0600"),
    ("", "is empty; write the broker password on its first line"),
    ("\nthe second line\n", "is empty; write the broker password on its first line"),
    (b"\xff\xfe", "is not UTF-8 text"),
])
def test_a_missing_empty_or_unreadable_password_file_is_refused(tmp_path, text, problem):
    pw = tmp_path / "broker-password"
    if isinstance(text, bytes):
        pw.write_bytes(text)
        pw.chmod(0o600)
    elif text is not None:
        password_file(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(broker_url=STATION_URL, broker_password_file=pw)
    assert str(info.value) == f"config key broker_password_file: {pw} {problem}"


def test_a_folder_as_password_file_is_refused(tmp_path):
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(ConfigError, match=r"is not a file$"):
        load_settings(broker_url=STATION_URL, broker_password_file=tmp_path / "dir")


@pytest.mark.parametrize("url", ["amqps://broker.example/%2F", "amqps://:x@broker.example/"])
def test_a_password_file_with_no_user_in_the_url_is_refused(tmp_path, url):
    pw = password_file(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_settings(broker_url=url, broker_password_file=pw)
    assert str(info.value) == (f"config key broker_url: has no user for the password in {pw}; "
                               "write it as amqps://USER@HOST/VHOST")


def test_a_password_file_in_the_toml_and_the_environment(tmp_path, monkeypatch):
    pw = password_file(tmp_path)
    cfg = write(tmp_path, f'broker_url = "{STATION_URL}"\nbroker_password_file = "{pw}"\n')
    assert login(load_settings(cfg).broker_connection_url())[1] == PASSWORD
    other = password_file(tmp_path, "from-env\n", name="other")
    monkeypatch.setenv("PRINTSTATION_BROKER_PASSWORD_FILE", str(other))
    assert login(load_settings(cfg).broker_connection_url())[1] == "from-env"


def test_the_systemd_credential_is_the_password_when_no_file_is_set(tmp_path, monkeypatch):
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    credential = password_file(creds, "from-systemd\n", mode=0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    s = load_settings(broker_url=STATION_URL)
    assert login(s.broker_connection_url()) == ("bogor-kota-01", "from-systemd")
    s = load_settings(broker_url=STATION_URL, broker_password_file=password_file(tmp_path))
    assert login(s.broker_connection_url())[1] == PASSWORD  # the key, when set, wins
    credential.chmod(0o440)  # the group check applies to the credential all the same
    with pytest.raises(ConfigError, match=r"readable by group or others \(mode 0440\)"):
        load_settings(broker_url=STATION_URL)
    with pytest.raises(ConfigError, match="has no user for the password"):
        credential.chmod(0o400)
        load_settings(broker_url="amqps://broker.example/%2F")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "none-here"))
    with pytest.raises(ConfigError, match="names the user 'bogor-kota-01' but no password"):
        load_settings(broker_url=STATION_URL).broker_connection_url()


def _set_acl(path: Path, *entries: tuple[int, int, int]) -> None:
    """Write a POSIX access ACL as Linux stores it (version 2, then tag, perm, id)."""
    undefined = 0xFFFFFFFF
    raw = struct.pack("<I", 2) + b"".join(
        struct.pack("<HHI", tag, perm, undefined if ident is None else ident)
        for tag, perm, ident in entries)
    try:
        os.setxattr(path, "system.posix_acl_access", raw)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            pytest.skip(f"no POSIX ACLs on the file system of {path}")
        raise


USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def test_systemds_acl_on_a_credential_is_not_taken_for_group_access(tmp_path, monkeypatch):
    # systemd writes a credential 0400 and lets the service's user read it with an ACL
    # entry; stat then shows the ACL's mask in the group bits: 0440.
    creds = tmp_path / "credentials"
    creds.mkdir(mode=0o700)
    credential = password_file(creds, "from-systemd\n", mode=0o400)
    _set_acl(credential, (USER_OBJ, 4, None), (USER, 4, 65534), (GROUP_OBJ, 0, None),
             (MASK, 4, None), (OTHER, 0, None))
    assert credential.stat().st_mode & 0o777 == 0o440
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert login(load_settings(broker_url=STATION_URL).broker_connection_url())[1] == \
        "from-systemd"
    # An ACL that does let a group read is refused, naming the entry.
    _set_acl(credential, (USER_OBJ, 4, None), (GROUP_OBJ, 0, None), (GROUP, 4, 0),
             (MASK, 4, None), (OTHER, 0, None))
    with pytest.raises(ConfigError) as info:
        load_settings(broker_url=STATION_URL)
    assert str(info.value) == (f"config key broker_password_file: {credential} is readable by "
                               "group or others through its ACL (group:root:r); setfacl -b it "
                               "and chmod 600 it")


def test_what_only_a_connection_needs_is_refused_only_when_connecting(tmp_path, monkeypatch):
    # Operators load the station's configuration to find the control socket; they can
    # neither read the service's password file nor get its systemd credential.
    pw = password_file(tmp_path)
    real_read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == pw:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    s = load_settings(broker_url=STATION_URL, broker_password_file=pw)
    assert s.socket_path()
    unreadable = re.escape(f"broker_password_file: {pw} cannot be read by user")
    with pytest.raises(ConfigError, match=unreadable):
        s.broker_connection_url()
    s = load_settings(broker_url=STATION_URL)
    with pytest.raises(ConfigError, match="names the user 'bogor-kota-01' but no password; "
                                          "set broker_password_file"):
        s.broker_connection_url()


def test_the_password_is_in_no_repr_dump_or_message(tmp_path):
    pw = password_file(tmp_path)
    s = load_settings(broker_url="amqps://bogor-kota-01:in-the-url@broker.example/%2F",
                      broker_password_file=pw)
    for text in (repr(s), str(s), repr(s.model_copy())):
        assert PASSWORD not in text and "in-the-url" not in text, text
    # The dump is the configuration as given (`printstation config` masks it); the file's
    # password is never in it.
    assert PASSWORD not in json.dumps(s.model_dump(mode="json"))
    assert "broker_url='amqps://bogor-kota-01:***@broker.example/%2F'" in repr(s)
    pw.chmod(0o640)
    with pytest.raises(ConfigError) as info:
        load_settings(broker_url=STATION_URL, broker_password_file=pw)
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(("url", "masked"), [
    ("amqp://guest:guest@127.0.0.1:5672/%2F", "amqp://guest:***@127.0.0.1:5672/%2F"),
    ("amqps://u:p%40ss@broker/%2F?heartbeat=5", "amqps://u:***@broker/%2F?heartbeat=5"),
    ("amqps://u:p@ss@broker/v", "amqps://u:***@broker/v"),  # unquoted @: urlsplit's reading
    ("amqps://u:@broker/v", "amqps://u:***@broker/v"),
    ("amqps://bogor-kota-01@broker/%2F", "amqps://bogor-kota-01@broker/%2F"),
    ("amqp://127.0.0.1:5672/%2F", "amqp://127.0.0.1:5672/%2F"),
    ("amqp://h/v?next=http://a@b", "amqp://h/v?next=http://a@b"),
    ("evolis+tcp://admin:1234@10.0.0.5:9100", "evolis+tcp://admin:***@10.0.0.5:9100"),
    ("/etc/printstation/broker-password", "/etc/printstation/broker-password"),
    ("sim://", "sim://"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_mask_secrets_masks_every_url_in_a_dump():
    dump = {"a": "amqp://u:one@h/", "b": ["x", "amqp://u:two@h/"], "c": {"d": "amqp://u:3@h"},
            "e": 5, "f": None}
    masked = json.dumps(mask_secrets(dump))
    assert "one" not in masked and "two" not in masked and ":3@" not in masked
    assert mask_secrets(dump)["e"] == 5 and mask_secrets(dump)["b"][0] == "x"


def test_a_password_in_a_config_file_others_can_read_is_warned_about(tmp_path, monkeypatch):
    cfg = write(tmp_path, 'broker_url = "amqps://bogor-kota-01:in-the-url@broker.example/%2F"\n')
    cfg.chmod(0o640)
    warning = exposed_password_warning(load_settings(cfg), cfg)
    assert warning == (f"broker_url in {cfg} carries the broker password, and the file is "
                       "readable by group or others (mode 0640): keep only the user in "
                       "broker_url and put the password in broker_password_file (mode 0600)")
    cfg.chmod(0o600)
    assert exposed_password_warning(load_settings(cfg), cfg) is None
    cfg.chmod(0o640)
    assert exposed_password_warning(load_settings(cfg), None) is None
    monkeypatch.setenv("PRINTSTATION_BROKER_URL", "amqps://other:x@broker.example/%2F")
    assert exposed_password_warning(load_settings(cfg), cfg) is None  # not from the file
    monkeypatch.delenv("PRINTSTATION_BROKER_URL")
    cfg.write_text(f'broker_url = "{STATION_URL}"\n'
                   f'broker_password_file = "{password_file(tmp_path)}"\n')
    assert exposed_password_warning(load_settings(cfg), cfg) is None


def test_operator_commands_find_the_stations_config_without_being_told(tmp_path, monkeypatch):
    """--config, else $PRINTSTATION_CONFIG, else the installed file when there is one: an
    operator types `printstation status` and reaches the agent the service runs."""
    import subprocess
    import sys

    from printstation.agent.surfaces import cliargs

    installed = tmp_path / "etc.toml"
    monkeypatch.setattr(cliargs, "STATION_CONFIG", installed)
    monkeypatch.delenv("PRINTSTATION_CONFIG", raising=False)
    assert cliargs.config_file(None) is None  # nothing installed: defaults
    installed.write_text('station_id = "installed"\n')
    assert cliargs.config_file(None) == installed
    named = tmp_path / "named.toml"
    named.write_text(f'station_id = "named"\nstate_dir = "{tmp_path / "state"}"\n')
    monkeypatch.setenv("PRINTSTATION_CONFIG", str(named))
    assert cliargs.config_file(None) == named
    assert cliargs.config_file(installed) == installed
    out = subprocess.run([sys.executable, "-m", "printstation.agent.surfaces.cli", "config"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert '"station_id": "named"' in out.stdout
