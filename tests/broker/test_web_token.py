"""The operator page's token: who can read it, its life with the agent, `printstation web`."""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
from pathlib import Path

from printstation.agent.surfaces.cli import main as cli_main
from printstation.agent.surfaces.web import token_path
from tests.support import http_get


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
    assert http_get(url, "/api/state", {"X-Printstation-Token": old}).status == 403
    assert http_get(url, "/api/state", {"X-Printstation-Token": new}).status == 200


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
    from tests.support import http_get

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
    cookie = login.getheader("Set-Cookie")
    assert login.status == 200 and cookie.startswith("printstation_session=")
    assert secret not in cookie  # a session of the user who asked, not the token itself
    session = cookie.split(";")[0]
    state = json.loads(http_get(url, "/api/state", {"Cookie": session}).body)
    assert state["operator"] == pwd.getpwuid(os.getuid()).pw_name
    assert _post_form(url, "login", {"code": code}).status == 403  # used
    path = printed.removeprefix(url.rstrip("/"))
    assert http_get(url, path).status == 303
    assert http_get(url, path).status == 403  # used
    who = station.agent.journal.store.db.execute(
        "SELECT action FROM actions WHERE action='web-login'").fetchall()
    assert len(who) == 2  # each link recorded with the user who asked for it


def test_a_login_link_expires(make_station, station_id, monkeypatch):
    from printstation.agent.surfaces import web
    from tests.support import http_get

    station = make_station(station_id)
    url = station.agent.url("web")
    monkeypatch.setattr(web, "LOGIN_SECONDS", -1.0)  # already past its minute
    link = station.agent.servers[0].login_url("siti")
    assert http_get(url, link.removeprefix(url.rstrip("/"))).status == 403


