"""The operator page looked at, in each state an operator meets, in headless Chromium, with
`printstation-sim` as the printer: ready, paused with cards waiting, a fault, printing, a
card to check after a real cable pull (with its picture), and a critical alert. Each state
is checked for what it must say and for being readable (contrast, nothing cut off, no raw
codes), and saved as a screenshot under the run's temporary folder (the path is printed)."""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

import pytest

from printstation.agent.central.samples import sample_job
from printstation.agent.surfaces.control_socket import call
from printstation.agent.surfaces.thumbnail import front_thumbnail
from tests.broker.test_web import browser, web_url  # noqa: F401  (the browser fixture)
from tests.support import http_get, wait_for

#: Text contrast of every visible text on the page, from its computed colours (WCAG 2).
CONTRAST_JS = """
function lum(c) {
  const [r, g, b] = c.slice(0, 3).map(v => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
function rgba(s) {
  const m = s.match(/[\\d.]+/g).map(Number);
  return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1];
}
function background(e) {
  for (; e; e = e.parentElement) {
    const c = rgba(getComputedStyle(e).backgroundColor);
    if (c[3] > 0) return c;
  }
  return [255, 255, 255, 1];
}
function ratio(e) {
  const a = lum(rgba(getComputedStyle(e).color)), b = lum(background(e));
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}
if (arguments[0]) return ratio(document.getElementById(arguments[0]));
const low = [];
for (const e of document.querySelectorAll("body *")) {
  if (!e.offsetParent) continue;
  if (![...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
  const r = ratio(e);
  if (r < 4.5) low.push(e.tagName + "#" + e.id + "." + e.className + " '" +
                        e.textContent.trim().slice(0, 30) + "' " + r.toFixed(2));
}
return low;
"""

#: Form fields, labels, hints and buttons whose text does not fit their box.
CLIPPED_JS = """
const out = [], canvas = document.createElement("canvas").getContext("2d");
for (const e of document.querySelectorAll("input, select, button, label, .hint, h2, h3")) {
  if (!e.offsetParent) continue;
  if (e.scrollWidth > e.clientWidth + 1) out.push(e.id || e.textContent.trim().slice(0, 30));
  if (e.placeholder) {
    const s = getComputedStyle(e);
    canvas.font = s.fontSize + " " + s.fontFamily;
    const room = e.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
    if (canvas.measureText(e.placeholder).width > room) out.push("placeholder of " + e.id);
  }
}
return out;
"""


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("PRINTSTATION_SCREENSHOTS") or
                  tmp_path_factory.getbasetemp() / "operator-page")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _readable(driver) -> None:
    """Every visible text at 4.5:1 or more, no field or hint cut off, no raw codes."""
    from selenium.webdriver.common.by import By

    assert driver.execute_script(CONTRAST_JS, None) == []
    assert driver.execute_script(CLIPPED_JS) == []
    text = driver.find_element(By.TAG_NAME, "body").text
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", text), re.findall(r"\b[a-z]+_[a-z_]+\b", text)


def test_the_operator_page_in_each_state(browser, sim_process, make_station, submitter,  # noqa: F811
                                         station_id, monkeypatch, capsys, screenshots,
                                         tmp_path):
    from selenium.webdriver.common.by import By

    sim = sim_process("print_time=1.5", "render=0", "counter=41")
    station = make_station(station_id, printer_url=sim.tcp_url + "?timeout=2")
    state_dir = station.agent.settings.state_dir
    # An Evolis reads its ribbon only: the operator records the film and the blanks.
    call(state_dir, {"cmd": "load", "kind": "film", "capacity": 1000})
    call(state_dir, {"cmd": "load", "kind": "cards", "type": "ektp", "count": 500})
    me = pwd.getpwuid(os.getuid()).pw_name

    def text(element_id: str) -> str:
        return browser.find_element(By.ID, element_id).text

    def shown(element_id: str) -> bool:
        return browser.find_element(By.ID, element_id).is_displayed()

    def shot(name: str) -> None:
        _readable(browser)
        path = screenshots / f"{name}.png"
        browser.save_screenshot(str(path))
        with capsys.disabled():
            print(f"\nscreenshot: {path}")

    browser.set_window_size(1280, 1600)
    browser.get(web_url(station, monkeypatch, capsys))

    # Ready: green, nothing waiting, the three consumables tied (500 cards each).
    wait_for(lambda: text("banner") == "Ready\nWaiting for jobs.", 20, "Ready")
    wait_for(lambda: text("alerts") == "none", 20, "no alerts once film and blanks are loaded")
    assert browser.find_element(By.ID, "banner").get_attribute("class") == "ready"
    assert text("alerts-title") == "Open alerts (0)"
    assert text("forecast") == ("Can print 500 more cards; the ribbon, the film and the blanks "
                                "run out together.")
    assert text("who") == f"Signed in as {me} (your actions are recorded under this name)"
    assert not shown("operator") and shown("pause") and not shown("resume")
    assert browser.execute_script(CONTRAST_JS, "broker") >= 4.5  # "connected to ..."
    assert text("current") == "No card in the printer."
    shot("ready")

    # Paused, cards waiting: the next card first, the count in the title, Resume only.
    browser.find_element(By.ID, "pause").click()
    wait_for(lambda: shown("resume") and not shown("pause"), 20, "only Resume")
    bodies = [sample_job(f"PAGE-{station_id}-{i}", two_sided=False,
                         reference=f"PERMOHONAN-00010{i}").body for i in range(4)]
    for body in bodies:
        submitter.submit_job(body, station=station_id)
    wait_for(lambda: text("waiting-title") == "Waiting to print (4)", 20, "four waiting")
    rows = browser.find_elements(By.CSS_SELECTOR, "#waiting tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == \
        [b["job_id"] for b in bodies]
    assert rows[0].find_elements(By.TAG_NAME, "td")[0].text == "1"
    wait_for(lambda: text("banner") == "Paused\nThe 4 waiting cards will print once you press "
             "Resume.", 20, "the paused banner")
    shot("paused")

    # A fault: in words, saying the waiting cards print once it is cleared.
    sim.control(cmd="inject", fault="cover_open")
    wait_for(lambda: text("banner").startswith("Not printing"), 20, "the fault")
    assert text("banner") == ("Not printing\nCover open: close the printer cover. The 4 "
                              "waiting cards will print once this is cleared and you press "
                              "Resume.")
    assert "needs attention — cover open" in text("printer")
    wait_for(lambda: "Critical" in text("alerts") and "since" in text("alerts"), 20, "alert")
    assert text("alerts-title") == "Open alerts (1)"
    shot("fault")
    sim.control(cmd="clear")
    wait_for(lambda: text("banner").startswith("Paused"), 20, "the fault cleared")

    # Printing: the printer is "printing", never "ready" beside the card in it.
    browser.find_element(By.ID, "resume").click()
    first = bodies[0]["job_id"]
    wait_for(lambda: text("banner").startswith("Printing"), 20, "Printing")
    wait_for(lambda: text("current") == f"Card in the printer: {first} (PERMOHONAN-000100)",
             20, "the card in the printer")
    assert text("printer").endswith(": printing a card") and "ready" not in text("printer")
    assert text("banner") == f"Printing\nCard in the printer: {first}; 3 more waiting."
    # The card in the printer is not "waiting": the next one is on top.
    assert text("waiting-title") == "Waiting to print (3)"
    row = browser.find_element(By.CSS_SELECTOR, "#waiting tr").find_elements(By.TAG_NAME, "td")
    assert (row[0].text, row[1].text, row[3].text) == ("1", bodies[1]["job_id"], "waiting")
    assert shown("pause") and not shown("resume")
    shot("printing")

    # A card cut off by a cable pull: the page shows it to check, with its front.
    wait_for(lambda: sim.control(cmd="status")["printing"], 30, "a card being printed")
    sim.control(cmd="unplug", seconds=1)
    check = wait_for(lambda: station.agent.journal.jobs.needing_check(), 30, "needs_check")[0]
    job_id = check["job_id"]
    wait_for(lambda: not station.agent.journal.jobs.any_queued()
             and station.agent.printer.snapshot.current_job is None, 60, "the others printed")
    now = wait_for(lambda: sim.control(cmd="status")["counter"], 20, "the counter")
    before = check["counter_before"]
    assert before is not None and now > before
    wait_for(lambda: shown("checks") and f"{before} when its blank was drawn, {now} now"
             in text("checks"), 20, "the check with the counter")
    assert text("checks-title") == "1 card to check: did it come out?"
    assert f"Card for reference {check['reference']} — job {job_id}" in text("checks")
    assert "the link to the printer broke while the card was inside" in text("checks")
    assert "If a card with this photo and name is in the output hopper, it printed" \
        in text("checks")
    picture = browser.find_element(By.CSS_SELECTOR, "#checks img")
    wait_for(lambda: browser.execute_script("return arguments[0].naturalWidth", picture) == 480,
             20, "the card's front")
    # The pulled cable's alert clears at the agent's next look at the printer.
    wait_for(lambda: text("banner").startswith("Ready, but 1 card needs your check"), 20,
             "the banner to name only the check")
    assert browser.find_element(By.ID, "banner").get_attribute("class") == "attention"
    shot("needs_check")

    # The picture: this job's front, for the logged-in page only, never cached.
    url = station.agent.url("web")
    cookie = f"printstation_session={browser.get_cookie('printstation_session')['value']}"
    served = http_get(url, f"/api/thumbnail?job={job_id}", {"Cookie": cookie})
    assert served.status == 200 and served.getheader("Content-Type") == "image/png"
    assert served.getheader("Cache-Control") == "no-store"
    assert served.body == front_thumbnail(station.agent.journal.jobs.get(job_id).body)
    assert http_get(url, f"/api/thumbnail?job={job_id}").status == 403
    # Never on disk: not in the agent's folders, nor in the browser's profile and cache.
    piece = served.body[200:264]
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and piece in p.read_bytes()]
    other = bodies[3]["job_id"] if bodies[3]["job_id"] != job_id else bodies[2]["job_id"]
    assert http_get(url, f"/api/thumbnail?job={other}", {"Cookie": cookie}).status == 404

    # Deciding it: recorded as the logged-in user; the check and its alert go.
    browser.find_element(By.CSS_SELECTOR, "#checks button.primary").click()
    prompt = wait_for(lambda: _alert(browser), 10, "the why prompt")
    prompt.send_keys("found it in the output hopper")
    prompt.accept()
    wait_for(lambda: station.agent.journal.jobs.known(job_id) == "printed", 20, "resolved")
    who = station.agent.journal.store.db.execute(
        "SELECT who FROM actions WHERE action='resolve-printed'").fetchone()[0]
    assert who == f"web:{me}"
    wait_for(lambda: not shown("checks"), 20, "the check gone")

    # A critical alert while ready: never beside a green "Ready".
    sim.control(cmd="load", ribbon=15)
    wait_for(lambda: text("banner").startswith("Ready, but 1 critical alert needs you"), 20,
             "the critical alert in the banner")
    assert browser.find_element(By.ID, "banner").get_attribute("class") == "attention"
    assert "Ribbon low" in text("banner") and "Critical" in text("alerts")
    assert "the ribbon runs out first" in text("forecast")
    shot("critical_alert")
    browser.set_window_size(800, 1800)  # a small screen: one column, nothing cut off
    shot("critical_alert_narrow")


def _alert(driver):
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return driver.switch_to.alert
    except NoAlertPresentException:
        return None
