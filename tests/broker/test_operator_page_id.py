"""The operator page and the operators' commands in Bahasa Indonesia, as an office runs
them: `printstation run` with `language = "id"` in its configuration (no Indonesian locale),
`printstation-sim` as the printer, the page in headless Chromium opened with
`printstation web --print-url`, and `status`, `jobs` and `resolve` run as commands. Each
state is checked for being readable (Indonesian is longer: nothing cut off) and saved as a
screenshot `id-*.png` beside the English ones; and an English page shows no Indonesian."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from printstation.agent import i18n
from printstation.agent.central.samples import sample_job
from printstation.agent.i18n import maintain
from printstation.agent.surfaces.control_socket import call
from tests.broker.test_operator_page import _readable, screenshots  # noqa: F401  (fixture)
from tests.broker.test_web import browser, web_url  # noqa: F401  (the browser fixture)
from tests.support import CLI, control_answers, run, wait_for
from tests.support.broker import submit_when_queued

#: What decides a process's language besides its configuration: none of it may say "id"
#: here, so that only `language = "id"` in the file makes the agent and the CLI Indonesian.
LANGUAGE_VARIABLES = (*i18n.LOCALE_VARIABLES, "PRINTSTATION_LANGUAGE")


def _environ(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LANGUAGE_VARIABLES}
    return {**env, "LANG": "C.UTF-8", **values}


@pytest.fixture
def indonesian_agent(tmp_path: Path, broker_url: str, station_id: str, sim_process):
    """`printstation run` with `language = "id"`, on `printstation-sim` over TCP."""
    sim = sim_process("print_time=1.5", "render=0", "counter=41")
    state = tmp_path / "state"
    cfg = tmp_path / "station.toml"
    cfg.write_text(f'station_id = "{station_id}"\nbroker_url = "{broker_url}"\n'
                   f'printer_url = "{sim.tcp_url}?timeout=2"\nstate_dir = "{state}"\n'
                   'verify_signatures = false\nlanguage = "id"\n')
    log = (tmp_path / "agent.log").open("w")
    agent = subprocess.Popen([*CLI, "run", "--config", str(cfg)], env=_environ(),
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: control_answers(state) or agent.poll() is not None, 30,
                 "the agent's control socket")
        assert agent.poll() is None, (tmp_path / "agent.log").read_text()
        yield sim, cfg, state
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        log.close()


def _cli(*args: str, **env: str) -> str:
    out = run(*args, env=_environ(**env))
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    return out.stdout


def test_the_page_and_the_commands_in_indonesian(indonesian_agent, browser,  # noqa: F811
                                                 submitter, station_id, screenshots,  # noqa: F811
                                                 capsys):
    from selenium.webdriver.common.by import By

    sim, cfg, state = indonesian_agent
    call(state, {"cmd": "load", "kind": "film", "capacity": 1000})
    call(state, {"cmd": "load", "kind": "cards", "type": "ektp", "count": 500})

    def text(element_id: str) -> str:
        return browser.find_element(By.ID, element_id).text

    def shown(element_id: str) -> bool:
        return browser.find_element(By.ID, element_id).is_displayed()

    def shot(name: str) -> None:
        _readable(browser)
        path = screenshots / f"id-{name}.png"
        browser.save_screenshot(str(path))
        with capsys.disabled():
            print(f"\nscreenshot: {path}")

    # As an operator opens it: `printstation web` (here its link form) from the same config.
    login = _cli("web", "--print-url", "--config", str(cfg)).strip()
    browser.set_window_size(1280, 1600)
    browser.get(login)

    # Ready: the page's own words, the words for codes and <html lang> are Indonesian.
    wait_for(lambda: text("banner") == "Siap\nMenunggu pekerjaan cetak.", 20, "Siap")
    wait_for(lambda: text("alerts") == "tidak ada", 20, "no alerts once film and blanks load")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "id"
    assert text("forecast") == ("Masih dapat mencetak 500 kartu lagi; pita, film dan blangko "
                                "akan habis bersamaan.")
    assert text("alerts-title") == "Peringatan aktif (0)"
    assert text("current") == "Tidak ada kartu di printer."
    assert text("broker") == "terhubung ke sistem pusat"
    assert text("who").startswith("Masuk sebagai ")
    assert [b.text for b in browser.find_elements(By.CSS_SELECTOR, "main button")
            if b.is_displayed()] == ["Jeda", "Uji cetak", "Pembersihan selesai",
                                     "Catat pemasangan"]
    assert [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#load-kind option")] == \
        ["pita", "film", "blangko"]
    assert text("consumables").startswith("Pita (YMCKO): ")
    assert "(dibaca dari printer)" in text("consumables")
    assert "Jenis: jenis pita (YMCKO)" in text("load-form")
    shot("ready")

    # Paused with cards waiting.
    browser.find_element(By.ID, "pause").click()
    wait_for(lambda: shown("resume") and not shown("pause"), 20, "only Lanjutkan")
    assert text("message") == "Dijeda: pencetakan berhenti setelah kartu yang ada di printer."
    bodies = [sample_job(f"ID-{station_id}-{i}", two_sided=False,
                         reference=f"PERMOHONAN-00020{i}").body for i in range(2)]
    for body in bodies:
        submit_when_queued(submitter, body, station_id)
    wait_for(lambda: text("waiting-title") == "Menunggu dicetak (2)", 20, "two waiting")
    rows = browser.find_elements(By.CSS_SELECTOR, "#waiting tr")
    assert [r.find_elements(By.TAG_NAME, "td")[3].text for r in rows] == ["menunggu"] * 2
    assert rows[0].find_element(By.TAG_NAME, "button").text == "Batalkan"
    wait_for(lambda: text("banner") == "Dijeda\n2 kartu yang menunggu akan dicetak setelah "
             "Anda menekan Lanjutkan.", 20, "the paused banner")
    shot("paused")

    # A fault: its name from labels, the waiting cards said to print once it is cleared.
    sim.control(cmd="inject", fault="cover_open")
    wait_for(lambda: text("banner").startswith("Tidak dapat mencetak\n"), 20, "the fault")
    assert text("banner").endswith("2 kartu yang menunggu akan dicetak setelah masalah ini "
                                   "diatasi dan Anda menekan Lanjutkan.")
    assert "perlu ditangani — penutup terbuka" in text("printer")
    wait_for(lambda: "Kritis" in text("alerts") and "sejak" in text("alerts"), 20, "alert")
    shot("fault")
    sim.control(cmd="clear")
    wait_for(lambda: text("banner").startswith("Dijeda"), 20, "the fault cleared")

    # Printing, then a cable pull mid-card: a check, described in the agent's language.
    browser.find_element(By.ID, "resume").click()
    first = bodies[0]["job_id"]
    wait_for(lambda: text("banner") == f"Sedang mencetak\nKartu di printer: {first}; 1 lagi "
             "menunggu.", 20, "Sedang mencetak")
    assert text("printer").endswith(": sedang mencetak kartu")
    shot("printing")
    wait_for(lambda: sim.control(cmd="status")["printing"], 30, "a card being printed")
    sim.control(cmd="unplug", seconds=1)

    def settled_check() -> dict | None:
        answer = call(state, {"cmd": "jobs", "limit": 10})
        busy = any(j["state"] in ("queued", "printing") for j in answer["jobs"])
        checks = answer.get("needs_check") or []
        # The agent reads the counter at its next poll after the last card: wait for it.
        counter = sim.control(cmd="status")["counter"]
        return checks[0] if checks and not busy and checks[0]["counter_now"] == counter \
            else None

    check = wait_for(settled_check, 60, "the check, and the other card printed")
    job_id, before, now = check["job_id"], check["counter_before"], check["counter_now"]
    wait_for(lambda: shown("checks") and f"{before} saat blangkonya diambil, {now} sekarang"
             in text("checks"), 20, "the check on the page")
    assert text("checks-title") == "1 kartu perlu diperiksa: apakah sudah keluar?"
    assert (f"Kartu untuk nomor referensi {check['reference']} — pekerjaan cetak {job_id}"
            in text("checks"))
    assert "sambungan ke printer terputus saat kartu ada di dalamnya" in text("checks")
    assert "Jika kartu dengan foto dan nama ini ada di tempat kartu keluar" in text("checks")
    assert [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#checks button")] == \
        ["Sudah keluar (dicetak)", "Tidak keluar"]
    # The pulled cable's alert clears at the agent's next look at the printer.
    wait_for(lambda: text("banner").startswith("Siap, tetapi 1 kartu perlu Anda periksa\n"),
             20, "the banner to name only the check")
    picture = browser.find_element(By.CSS_SELECTOR, "#checks img")
    assert picture.get_attribute("alt") == "Bagian depan kartu yang dicari"
    wait_for(lambda: browser.execute_script("return arguments[0].naturalWidth", picture) == 480,
             20, "the card's front")
    shot("needs_check")
    browser.set_window_size(800, 2000)  # a small screen: one column, nothing cut off
    shot("needs_check_narrow")
    browser.set_window_size(1280, 1600)

    # The agent's alert for the check is in its language too.
    alerts = call(state, {"cmd": "status"})["telemetry"]["alerts"]
    [alert] = [a for a in alerts if a["condition"] == f"needs_check_{job_id}"]
    assert alert["message"].startswith(f"Pekerjaan cetak {job_id} (nomor referensi "
                                       f"{check['reference']}) perlu diperiksa: ")

    # The commands, as the operator types them with the same configuration.
    status = _cli("status", "--config", str(cfg))
    assert status.splitlines()[0] == "keadaan   siap"
    assert "antrean   0 pekerjaan cetak; menerima pekerjaan cetak: ya" in status
    assert f"PERLU DIPERIKSA: pekerjaan cetak {job_id}" in status
    assert (f"penghitung kartu printer: {before} saat blangkonya diambil, {now} sekarang"
            in " ".join(status.split()))
    jobs = _cli("jobs", "--config", str(cfg))
    printed = [line for line in jobs.splitlines() if bodies[1]["job_id"] in line]
    assert re.search(r" dicetak +PERMOHONAN-000201$", printed[0]), jobs
    block = jobs[jobs.index("PERLU DIPERIKSA"):]
    assert f"putuskan: printstation resolve {job_id} --printed" in block
    assert max(len(line) for line in block.splitlines()) <= 80, block
    # The same command in English where the environment says so (it overrides the file).
    english = _cli("status", "--config", str(cfg), PRINTSTATION_LANGUAGE="en")
    assert english.splitlines()[0] == "state     ready"
    assert f"NEEDS A CHECK: job {job_id}" in english
    resolved = _cli("resolve", job_id, "--printed", "--why", "ada di tempat kartu keluar",
                    "--config", str(cfg))
    assert resolved.strip() == (f"pekerjaan cetak {job_id}: dicatat sebagai dicetak; sistem "
                                "pusat diberi tahu bahwa kartu sudah dicetak")
    wait_for(lambda: not shown("checks"), 20, "the check gone from the page")
    wait_for(lambda: "dicetak (diputuskan oleh operator)" in text("recent"), 20, "recent")
    assert json.loads(_cli("jobs", "--json", "--config", str(cfg)))["needs_check"] == []
    shot("resolved")


def _indonesian_only_words() -> set[str]:
    """Words of the Indonesian catalogue that no English message uses ("kartu", "pita"...;
    not "printer", "film" or "status")."""
    def words(text: str) -> set[str]:
        return {w.lower() for w in re.findall(r"[A-Za-z]{4,}", re.sub(r"\{[^}]*\}", "", text))}

    english: set[str] = set()
    indonesian: set[str] = set()
    for message in maintain.read(maintain.po_path("id"), "id"):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        texts = message.string if isinstance(message.string, tuple) else (message.string,)
        english |= set().union(*map(words, ids))
        indonesian |= set().union(*map(words, texts))
    return indonesian - english


def test_an_english_page_shows_no_indonesian(browser, make_station, station_id,  # noqa: F811
                                             monkeypatch, capsys):
    from selenium.webdriver.common.by import By

    only = _indonesian_only_words()
    assert {"kartu", "pita", "blangko", "siap", "jeda"} <= only
    station = make_station(station_id, language="en")
    browser.get(web_url(station, monkeypatch, capsys))
    wait_for(lambda: browser.find_element(By.ID, "banner").text.startswith("Ready"), 20,
             "the page to say Ready")
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    body = browser.find_element(By.TAG_NAME, "body").text
    shown = {w.lower() for w in re.findall(r"[A-Za-z]{4,}", body)}
    assert "Pause" in body and "Consumables" in body
    assert not shown & only, shown & only
