"""The operator page in a real headless browser, and the metrics Prometheus scrapes."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from printstation.agent.central.samples import sample_job
from printstation.agent.surfaces.cli import main as cli_main
from printstation.agent.surfaces.web import token_path
from printstation.drivers.base import FaultCode
from tests.support import REPO, http_get, wait_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
INSTALL = ("the browser test needs Debian's chromium and chromium-driver: "
           "apt-get install -y chromium chromium-driver (make test does it)")


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail(INSTALL, pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def web_url(station, monkeypatch, capsys) -> str:
    """What `printstation web` hands the browser: a login page of the operator's own."""
    import webbrowser

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda address: opened.append(address) or True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(station.cards_dir.parent))
    assert cli_main(["web", "--state-dir", str(station.agent.settings.state_dir),
                     "--station-id", station.agent.settings.station_id]) == 0
    return opened[0]


def token(station) -> str:
    return token_path(station.agent.settings).read_text().strip()


def session(station, holder: str) -> str:
    """The cookie of a page logged in through a one-time link issued to `holder`."""
    url = station.agent.url("web")
    code = station.agent.servers[0].login_url(holder).rpartition("?login=")[2]
    return http_get(url, f"/?login={code}").getheader("Set-Cookie").split(";")[0]


def test_the_operator_page_shows_a_fault_and_pauses_the_agent(browser, make_station, station_id,
                                                              monkeypatch, capsys, tmp_path):
    from selenium.webdriver.common.by import By

    station = make_station(station_id)
    url = station.agent.url("web")
    assert url and url.startswith("http://127.0.0.1:")
    browser.get(url)  # without the token: refused, saying how to open it
    assert "printstation web" in browser.find_element(By.TAG_NAME, "body").text
    assert not browser.find_elements(By.ID, "banner")

    login = web_url(station, monkeypatch, capsys)
    assert login.startswith(f"file://{tmp_path}/") and token(station) not in login
    browser.get(login)  # as `printstation web` opens it: a page of the user's own
    wait_for(lambda: browser.current_url == url, 20, "the page, logged in")
    banner = lambda: browser.find_element(By.ID, "banner").text  # noqa: E731
    wait_for(lambda: banner().startswith("Ready"), 20, "the page to say Ready")
    assert "Ribbon (YMCKO)" in browser.find_element(By.ID, "consumables").text

    station.printer.inject(FaultCode.RIBBON_OUT)
    wait_for(lambda: "Ribbon out: load a new YMCKO ribbon" in banner(), 20, "ribbon out")
    assert banner().startswith("Not printing")
    wait_for(lambda: "Ribbon out" in browser.find_element(By.ID, "alerts").text, 20, "alert")
    station.printer.clear(FaultCode.RIBBON_OUT)
    wait_for(lambda: banner().startswith("Ready"), 20, "the fault to clear on the page")

    # `printstation web` logged the page in as the user who ran it: its name is fixed.
    me = pwd.getpwuid(os.getuid()).pw_name
    assert not browser.find_element(By.ID, "operator").is_displayed()
    assert f"Signed in as {me}" in browser.find_element(By.ID, "who").text
    browser.find_element(By.ID, "pause").click()
    wait_for(station.agent.station.paused, 20, "the agent to be paused")
    wait_for(lambda: banner().startswith("Paused"), 20, "the page to say Paused")
    actions = station.agent.journal.store.db.execute(
        "SELECT who, action FROM actions ORDER BY id DESC LIMIT 1").fetchone()
    assert tuple(actions) == (f"web:{me}", "pause")
    wait_for(lambda: browser.find_element(By.ID, "resume").is_displayed(), 20, "Resume shown")
    browser.find_element(By.ID, "resume").click()
    wait_for(lambda: not station.agent.station.paused(), 20, "the agent to resume")


def test_the_page_and_its_api_need_the_token(make_station, station_id):
    station = make_station(station_id)
    url, secret = station.agent.url("web"), token(station)
    for path in ("/", "/index.html", "/api/state", "/?token=wrong", "/api/state?token=" + secret):
        refused = http_get(url, path)
        assert refused.status == 403, path
        assert b"printstation web" in refused.body and refused.body.count(b"\n") <= 1, path
    assert http_get(url, "/api/state", {"X-Printstation-Token": "wrong"}).status == 403
    assert http_get(url, "/api/state", {"Cookie": "printstation_token=wrong"}).status == 403

    code = station.agent.servers[0].login_url("siti").rpartition("?login=")[2]
    login = http_get(url, f"/?login={code}")
    assert login.status == 303 and login.getheader("Location") == "/"
    cookie = login.getheader("Set-Cookie")
    session = cookie.split(";")[0]
    assert re.fullmatch(r"printstation_session=[\w-]{40,}; HttpOnly; SameSite=Strict; Path=/",
                        cookie) and secret not in cookie
    again = http_get(url, f"/?login={code}")  # a login link works once
    assert again.status == 403 and again.getheader("Set-Cookie") is None
    assert http_get(url, f"/?token={secret}").status == 403  # the token never goes in an address
    assert http_get(url, "/", {"Cookie": f"printstation_token={secret}"}).status == 403
    page = http_get(url, "/", {"Cookie": f"other=1; {session}"})
    assert page.status == 200 and b'id="banner"' in page.body
    assert "frame-ancestors 'none'" in page.getheader("Content-Security-Policy")
    for headers, operator in (({"Cookie": session}, "siti"), ({"X-Printstation-Token": secret},
                                                             None)):
        state = http_get(url, "/api/state", headers)
        assert state.status == 200 and json.loads(state.body)["station_id"] == station_id
        assert json.loads(state.body)["operator"] == operator
    rebound = http_get(url, "/api/state", {"X-Printstation-Token": secret, "Host": "evil.example"})
    assert rebound.status == 403


def _post(url: str, body: dict, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url + "api/action", data=json.dumps(body).encode(),
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_actions_need_the_token_the_page_header_and_a_loopback_host(make_station, station_id):
    station = make_station(station_id)
    url = station.agent.url("web")
    page = {"Content-Type": "application/json", "X-Printstation-Action": "1"}
    logged_in = {**page, "Cookie": session(station, "siti")}
    forged = _post(url, {"cmd": "pause"}, {"Content-Type": "text/plain",  # a cross-site form
                                           "Cookie": logged_in["Cookie"]})
    assert forged[0] == 403 and not station.agent.station.paused()
    rebound = _post(url, {"cmd": "pause"}, {**logged_in, "Host": "evil.example:80"})
    assert rebound[0] == 403 and not station.agent.station.paused()
    for anyone in (page, {**page, "X-Printstation-Token": "guess"},  # another user of the PC
                   {**page, "Cookie": "printstation_session="},
                   {**page, "Cookie": f"printstation_token={token(station)}"}):
        refused = _post(url, {"cmd": "pause", "why": "mischief"}, anyone)
        assert refused[0] == 403 and "printstation web" in refused[1]["error"]
        assert not station.agent.station.paused()
    bad = _post(url, {"cmd": "load", "kind": "ribbon", "type": "XYZ", "capacity": 5}, logged_in)
    assert bad[0] == 400 and "cannot use a XYZ ribbon" in bad[1]["error"]
    ok = _post(url, {"cmd": "pause", "why": "lunch", "operator": "mallory"}, logged_in)
    assert ok == (200, {"ok": True}) and station.agent.station.paused()
    script = _post(url, {"cmd": "resume", "why": "back", "operator": "budi"},
                   {**page, "X-Printstation-Token": token(station)})
    assert script == (200, {"ok": True}) and not station.agent.station.paused()
    # A session acts as the user who asked for its link, whatever name is sent; only a
    # script holding the token, whose user nobody knows, names itself, recorded as typed:
    # a group member holding the token cannot be recorded as another user's session.
    who = station.agent.journal.store.db.execute(
        "SELECT who, action FROM actions WHERE action IN ('pause', 'resume') ORDER BY id"
    ).fetchall()
    assert [tuple(r) for r in who] == [("web:siti", "pause"),
                                         ("web (typed: budi)", "resume")]


def _metrics(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url + "metrics", timeout=10) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_and_health(make_station, submitter, events, station_id):
    station = make_station(station_id, sim="print_time=0.05&render=0&jam_at=1&clear_after=0.2")
    job_id = submitter.submit_job(sample_job(f"MET-{station_id}").body, station=station_id)
    events.wait_final([job_id])
    url = station.agent.url("metrics")
    m = wait_for(lambda: (lambda m: m if m.get(("printstation_cards_total", (
        ("outcome", "issued"), ("reason", "")))) == 1 else None)(_metrics(url)), 20,
                 "the issued card in the metrics")
    assert m[("printstation_cards_total", (("outcome", "spoiled"), ("reason", "jam")))] == 1
    assert m[("printstation_jobs_ended_total", (("status", "printed"),))] == 1
    assert m[("printstation_consumable_remaining", (("kind", "ribbon"), ("source", "printer"),
                                                    ("type", "YMCKO"), ("unit", "prints")))] == 998
    assert m[("printstation_state", (("state", "ready"),))] == 1
    assert m[("printstation_broker_connected", (("connection", "publisher"),))] == 1
    assert ("printstation_outbox_backlog", ()) in m
    with urllib.request.urlopen(url + "healthz", timeout=10) as r:
        assert json.loads(r.read())["healthy"] is True
    port = urlsplit(url).port
    for path in ("/metrics", "/healthz"):  # a web page rebinding its name to 127.0.0.1
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", ""):
            assert http_get(url, path, {"Host": host}).status == 403, (path, host)
        for host in (f"localhost:{port}", "127.0.0.1"):
            assert http_get(url, path, {"Host": host}).status == 200, (path, host)
    # Every metric the example alert rules and dashboard use is one the agent exports.
    with urllib.request.urlopen(url + "metrics", timeout=10) as r:
        exported = {f.name for f in text_string_to_metric_families(r.read().decode())}
    exported |= {name for name, _ in m}
    monitoring = REPO / "monitoring"
    for path in monitoring.iterdir():
        used = set(re.findall(r"printstation_[a-z_]+", path.read_text()))
        assert used and used <= exported, (path.name, used - exported)
