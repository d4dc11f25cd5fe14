"""The operator's surfaces in Bahasa Indonesia: what `status`, `jobs` and the actions print,
the needs_check sentences, and the page as the agent serves it (its `lang`, its inlined
words, no fixed English left in its HTML). English is checked in test_operator_cli.py."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from printstation.agent import i18n
from printstation.agent.config import Settings
from printstation.agent.station.needscheck import counter_words, report_words
from printstation.agent.surfaces import web
from printstation.agent.surfaces.operator_cli import answer_words, format_jobs, format_status


@pytest.fixture
def indonesian():
    """The process speaks Indonesian for the test, then what it spoke before."""
    saved = i18n._active, i18n._language
    i18n.use("id")
    yield
    i18n._active, i18n._language = saved


def _status() -> dict:
    return {"telemetry": {
        "state": "blocked", "blocked_reason": None, "queued_jobs": 3, "taking_jobs": False,
        "printer": {"model": "Primacy", "serial": "S1", "state": "fault",
                    "faults": ["cover_open"]},
        "consumables": [], "alerts": [
            {"condition": "needs_check_J-1", "severity": "warning", "message": "panjang"},
            {"condition": "ribbon_low", "severity": "critical", "message": "Pita hampir habis"}]},
        "needs_check": [{
            "job_id": "J-1", "reference": None, "since": "2026-03-02T03:14:09+00:00",
            "attempt": 1, "counter_before": 41, "counter_now": None, "drawn_since": None,
            "printer_said": "sambungan ke printer terputus", "advice": "x " * 90}]}


def test_status_in_indonesian(indonesian):
    lines = format_status(_status())
    assert lines[:3] == ["keadaan   tidak dapat mencetak",
                         "printer   Primacy S1: perlu ditangani, penutup terbuka",
                         "antrean   3 pekerjaan cetak; menerima pekerjaan cetak: tidak"]
    text = "\n".join(lines)
    assert "PERINGATAN kritis: Pita hampir habis" in text and "panjang" not in text
    block = text[text.index("PERLU DIPERIKSA"):]
    assert block.startswith("PERLU DIPERIKSA: pekerjaan cetak J-1\n"
                            "    nomor referensi tidak ada; belum pasti sejak")
    assert ("penghitung kartu printer: 41 saat blangkonya diambil, tidak diketahui sekarang"
            in " ".join(block.split()))
    assert "putuskan: printstation resolve J-1 --printed (atau --not-printed)" in block
    assert max(len(line) for line in block.splitlines()) <= 80


def test_jobs_show_each_state_in_words_in_columns(indonesian):
    answer = {"jobs": [
        {"updated_at": "2026-03-02T03:14:09+00:00", "job_id": "J-1", "state": "handing_back",
         "reason_code": None, "reference": "PERMOHONAN-1"},
        {"updated_at": "2026-03-02T03:15:00+00:00", "job_id": "J-2", "state": "failed",
         "reason_code": "attempts_exhausted", "reference": None}]}
    lines = format_jobs(answer)
    assert re.search(r" J-1 +akan dikembalikan ke pusat +PERMOHONAN-1$", lines[0]), lines
    assert re.search(r" J-2 +gagal +attempts_exhausted$", lines[1]), lines
    # The reason code stays as it is (technicians look it up); the columns line up.
    assert lines[0].index("akan") == lines[1].index("gagal")
    assert format_jobs({"jobs": []}) == ["belum ada pekerjaan cetak"]


def test_actions_answer_in_indonesian(indonesian):
    assert answer_words("resolve", {"job_id": "J-1"}, {"result": "printed"}) == (
        "pekerjaan cetak J-1: dicatat sebagai dicetak; sistem pusat diberi tahu bahwa kartu "
        "sudah dicetak")
    assert answer_words("pause", {}, {}).startswith("dijeda: ")
    assert "`printstation resume`" in answer_words("pause", {}, {})
    assert answer_words("clean", {}, {}) == "clean: selesai"


def test_a_check_is_described_in_the_agents_language(indonesian):
    assert counter_words(41, 45).startswith(
        "Penghitung kartu printer berubah dari 41 menjadi 45: sejak itu printer menghitung "
        "4 kartu")
    said = report_words({"how": "agent_stopped", "state": "fault", "faults": ["jam"],
                         "counter": 42})
    assert said == ("agen berhenti saat kartu ada di dalam printer; saat agen dijalankan lagi, "
                    "printer dalam keadaan gangguan, kartu macet, penghitung kartunya 42")


# ------------------------------------------------------------------------------ the page

def _words(page: bytes) -> dict:
    found = re.search(rb'<script id="words" type="application/json">(.*?)</script>', page,
                      re.S)
    assert found, "the page has no inlined words"
    return json.loads(found.group(1))


def test_the_page_is_served_in_the_agents_language():
    indonesian = web.page("id")
    assert indonesian.startswith(b'<!doctype html>\n<html lang="id">')
    words = _words(indonesian)
    assert words["catalogue"]["language"] == "id"
    assert words["catalogue"]["messages"]["Pause"] == "Jeda"
    assert words["catalogue"]["plurals"]["{n} card is waiting."] == ["{n} kartu menunggu."]
    assert words["labels"]["statuses"]["needs_check"] == "perlu diperiksa"
    assert words["labels"]["faults"]["cover_open"] == "penutup terbuka"
    assert words["labels"]["consumables"]["cards"] == "blangko"
    english = web.page("en")
    assert english.startswith(b'<!doctype html>\n<html lang="en">')
    assert _words(english)["catalogue"]["messages"] == {}
    assert _words(english)["labels"]["statuses"]["needs_check"] == "needs check"


@pytest.mark.parametrize(("setting", "locale", "language"), [
    ("id", "en_US.UTF-8", "id"), ("en", "id_ID.UTF-8", "en"), (None, "id_ID.UTF-8", "id"),
    (None, "C.UTF-8", "en")])
def test_the_pages_language_is_the_setting_else_the_agents_locale(monkeypatch, setting,
                                                                 locale, language):
    for variable in i18n.LOCALE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LANG", locale)
    assert web.page_language(Settings(station_id="s1", language=setting)) == language


def test_inlined_words_cannot_end_their_script_element():
    raw = web._inline_json({"m": "</script><script>alert(1)</script> & <!--"})
    assert b"<" not in raw and b">" not in raw and b"&" not in raw
    assert json.loads(raw) == {"m": "</script><script>alert(1)</script> & <!--"}


class _Visible(HTMLParser):
    """The text of an HTML page outside <script>, <style> and <title>."""

    def __init__(self) -> None:
        super().__init__()
        self.skip = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("script", "style", "title")

    def handle_endtag(self, tag):
        self.skip -= tag in ("script", "style", "title")

    def handle_data(self, data):
        if not self.skip and data.strip():
            self.text.append(data.strip())


def test_the_pages_html_holds_no_words_of_its_own():
    """Every word is set by the script from a marked message, so none escapes translation."""
    parser = _Visible()
    parser.feed(web.page("id").decode())
    assert sorted(set(parser.text)) == ["#", "printstation", "…"]


def test_the_refusal_is_in_the_pages_language():
    assert web.refused_page("id") == (
        b'<!doctype html><html lang="id"><title>printstation</title><p>Buka halaman ini dengan '
        b"<code>printstation web</code> di PC stasiun.</p>\n")
    assert b"Open this page with <code>printstation web</code>" in web.refused_page("en")
