"""The operator page's token: who can read it, its life with the agent, `printstation web`."""

from __future__ import annotations

import ctypes
import grp
import os
import stat
import subprocess
import sys
from pathlib import Path

from test_web import _get

from printstation.agent.surfaces.cli import main as cli_main
from printstation.agent.surfaces.web import token_path

CLI = [sys.executable, "-m", "printstation.agent"]


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


def _post_form(url: str, path: str, form: dict):
    import http.client
    from urllib.parse import urlencode, urlsplit

    conn = http.client.HTTPConnection(urlsplit(url).netloc, timeout=10)
    conn.request("POST", "/" + path, body=urlencode(form),
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    answer = conn.getresponse()
    answer.read()
    conn.close()
    return answer


def test_web_opens_a_one_time_link_that_never_shows_the_token(make_station, station_id,
                                                               monkeypatch, capsys, tmp_path):
    """A browser's command line is visible to every user (`ps`): it gets a code that
    logs in once, within a minute, never the token."""
    from test_web import _get

    station = make_station(station_id)
    url = station.agent.url("web")
    flags = ["--state-dir", str(station.agent.settings.state_dir)]
    secret = token_path(station.agent.settings).read_text().strip()

    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda address: opened.append(address) or True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    capsys.readouterr()
    assert cli_main(["web", *flags]) == 0
    assert cli_main(["web", "--print-url", *flags]) == 0
    printed = capsys.readouterr().out.splitlines()[-1]
    # The browser is given a page of the user's own: its command line shows no code.
    page = Path(opened[0].removeprefix("file://"))
    assert page.parent == tmp_path / "printstation" and secret not in opened[0]
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    assert stat.S_IMODE(page.parent.stat().st_mode) == 0o700
    code = page.read_text().split('name="code" value="')[1].split('"')[0]
    assert f'action="{url}login"' in page.read_text()
    assert printed.startswith(f"{url}?login=") and secret not in printed
    login = _post_form(url, "login", {"code": code})
    assert login.status == 200 and f"printstation_token={secret}" in login.getheader("Set-Cookie")
    assert _post_form(url, "login", {"code": code}).status == 403  # used
    path = printed.removeprefix(url.rstrip("/"))
    assert _get(url, path).status == 303
    assert _get(url, path).status == 403  # used
    who = station.agent.journal.store.db.execute(
        "SELECT action FROM actions WHERE action='web-login'").fetchall()
    assert len(who) == 2  # each link recorded with the user who asked for it


def test_a_login_link_expires(make_station, station_id, monkeypatch):
    from test_web import _get

    from printstation.agent.surfaces import web

    station = make_station(station_id)
    url = station.agent.url("web")
    monkeypatch.setattr(web, "LOGIN_SECONDS", -1.0)  # already past its minute
    link = station.agent.servers[0].login_url()
    assert _get(url, link.removeprefix(url.rstrip("/"))).status == 403


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
    # The control socket as the agent leaves it: 0660, its owner and group not this user's.
    import socket as sockets

    path = tmp_path / "control.sock"
    listener = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    try:
        path.chmod(0o660)
        if os.geteuid() == 0:
            os.chown(path, 65534, 65534)  # nobody, nogroup
        else:
            path.chmod(0o000)  # as good as another user's, for one who cannot chown
        env = {"PRINTSTATION_CONTROL_SOCKET": str(path),
               "PRINTSTATION_WEB_LISTEN": "127.0.0.1:8470"}
        out = _web(env=env, preexec_fn=_as_a_plain_user)
    finally:
        listener.close()
    assert out.returncode == 2, out.stderr
    assert out.stderr == f"printstation: permission denied on {path}: join the agent's group\n"
    assert out.stdout == ""
