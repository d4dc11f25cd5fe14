"""The operator page's token: who can read it, its life with the agent, `printstation web`."""

from __future__ import annotations

import ctypes
import grp
import os
import stat
import subprocess
import sys

from test_web import _get

from printstation.agent.cli import main as cli_main
from printstation.agent.web import page_url, token_path

CLI = [sys.executable, "-m", "printstation.agent.cli"]


def _other_group() -> str:
    """A group to give the token to: not our own when we may choose (as root)."""
    if os.geteuid() == 0:
        return next(g.gr_name for g in grp.getgrall() if g.gr_gid != os.getegid())
    return grp.getgrgid(os.getegid()).gr_name


def test_the_token_file_is_for_the_agents_group_only_and_lives_with_the_agent(
        make_station, station_id, tmp_path):
    group = _other_group()
    state = tmp_path / "state"
    first = make_station(station_id, state_dir=state, control_group=group)
    path = token_path(first.agent.settings)
    assert path == first.agent.settings.socket_path().parent / "web-token"
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640 and info.st_gid == grp.getgrnam(group).gr_gid
    old = path.read_text().strip()
    assert len(old) >= 43  # secrets.token_urlsafe(32)
    first.agent.stop()
    assert not path.exists()

    again = make_station(station_id, state_dir=state)  # restarted, now without a group
    new = path.read_text().strip()
    assert new != old and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if "web-token" in p.name] == ["web-token"]
    url = again.agent.url("web")
    assert _get(url, "/api/state", {"X-Printstation-Token": old}).status == 403
    assert _get(url, "/api/state", {"X-Printstation-Token": new}).status == 200


def test_web_prints_or_opens_the_address_with_the_token(make_station, station_id, monkeypatch,
                                                       capsys):
    station = make_station(station_id)
    bound = station.agent.url("web").removeprefix("http://").rstrip("/")
    monkeypatch.setenv("PRINTSTATION_WEB_LISTEN", bound)
    flags = ["--state-dir", str(station.agent.settings.state_dir)]
    secret = token_path(station.agent.settings).read_text().strip()
    capsys.readouterr()
    assert cli_main(["web", "--print-url", *flags]) == 0
    assert capsys.readouterr().out == f"http://{bound}/?token={secret}\n"

    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    assert cli_main(["web", *flags]) == 0
    assert opened == [f"http://{bound}/?token={secret}"]
    assert secret not in capsys.readouterr().out


def test_page_url_names_this_pc():
    assert page_url("127.0.0.1:8470", "T") == "http://127.0.0.1:8470/?token=T"
    assert page_url("0.0.0.0:8470", "T") == "http://127.0.0.1:8470/?token=T"
    assert page_url("[::]:8470", "T") == "http://[::1]:8470/?token=T"
    assert page_url("[::1]:8470", "T") == "http://[::1]:8470/?token=T"
    assert page_url("localhost:9000", "T") == "http://localhost:9000/?token=T"


def _web(*args: str, env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "web", "--print-url", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **env}, **kw)


def test_web_without_a_running_agent_exits_2_with_one_line(tmp_path):
    out = _web("--state-dir", str(tmp_path), env={"PRINTSTATION_WEB_LISTEN": "127.0.0.1:8470"})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("printstation: the agent is not running")
    assert len(out.stderr.strip().splitlines()) == 1
    off = _web("--state-dir", str(tmp_path), env={"PRINTSTATION_WEB_LISTEN": ""})
    assert off.returncode == 2 and "switched off" in off.stderr


def _as_a_plain_user() -> None:
    """In the child, before exec: lose root's power to read any file (the capabilities
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH leave the bounding set, so the new program
    never has them); a user who is not root has neither anyway."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_web_for_a_user_outside_the_agents_group_exits_2_saying_so(tmp_path):
    # The token as the agent leaves it: 0640, its owner and group not this user's.
    token = tmp_path / "web-token"
    token.write_text("secret\n")
    token.chmod(0o640)
    if os.geteuid() == 0:
        os.chown(token, 65534, 65534)  # nobody, nogroup
    else:
        token.chmod(0o000)  # as good as another user's, for one who cannot chown
    env = {"PRINTSTATION_CONTROL_SOCKET": str(tmp_path / "control.sock"),
           "PRINTSTATION_WEB_LISTEN": "127.0.0.1:8470"}
    out = _web(env=env, preexec_fn=_as_a_plain_user)
    assert out.returncode == 2, out.stderr
    assert out.stderr == f"printstation: permission denied on {token}: join the agent's group\n"
    assert "secret" not in out.stdout


def test_web_refuses_a_port_chosen_at_start(tmp_path):
    (tmp_path / "web-token").write_text("T\n")
    out = _web("--state-dir", str(tmp_path), env={"PRINTSTATION_WEB_LISTEN": "127.0.0.1:0"})
    assert out.returncode == 2 and "port 0" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
