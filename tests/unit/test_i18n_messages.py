"""The operator's messages in both languages, without a process: the run-out time, `stock`
with and without a pace, the ledger's check and table, the rolls and the register, load
refusals, an alert's advice, why the station is blocked and the control socket's errors.
(tests/broker/test_language.py runs the same through `printstation run` and the CLI.)"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from printstation.agent import i18n
from printstation.agent.config import Threshold
from printstation.agent.station import state
from printstation.agent.station.conditions import consumable_conditions, printer_conditions
from printstation.agent.station.consumables import Consumables, Level, LoadError
from printstation.agent.station.forecast import forecast
from printstation.agent.station.journal import Journal
from printstation.agent.station.ledger import explain
from printstation.agent.station.rolls import roll_report
from printstation.agent.surfaces.books_cli import format_register, format_rolls
from printstation.agent.surfaces.control_socket import ControlError, LocalControlServer, call
from printstation.agent.surfaces.stock_cli import clock, format_ledger, format_stock
from printstation.drivers.base import FaultCode, PrinterStatus

WIB = timezone(timedelta(hours=7))
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=WIB)


@pytest.fixture
def speak():
    """`speak("id")`: this process speaks Indonesian for the test (English again after)."""
    saved = i18n._active, i18n._language
    yield i18n.use
    i18n._active, i18n._language = saved


@pytest.fixture
def stock(tmp_path):
    journal = Journal(tmp_path / "state", "unit")
    yield Consumables(journal, ribbon_types=["YMCKO", "YMCKK"], stocks=["ektp", "kia"],
                      uses_film=True, default_stock="ektp")
    journal.close()


# ------------------------------------------------------------------------ when it runs out

@pytest.mark.parametrize(("at", "said"), [
    ("2026-11-24T14:30:00+07:00", "14:30 hari ini"),
    ("2026-11-25T09:10:00+07:00", "09:10 besok"),
    ("2026-11-23T16:00:00+07:00", "16:00 kemarin"),
    ("2026-11-30T10:05:00+07:00", "10:05 Sen, 30 Nov"),
    ("2026-12-17T08:00:00+07:00", "08:00 Kam, 17 Des"),
    ("2027-05-05T08:00:00+07:00", "08:00 Rab, 5 Mei 2027"),
])
def test_a_run_out_time_in_indonesian(speak, at, said):
    speak("id")
    assert clock(at, now=NOW.isoformat()) == said


def _answer(runs_out_at: str | None, rate: float | None) -> dict:
    """A `stock` answer as the agent gives it: ribbon first, 50 cards left."""
    return {"consumables": [
        {"kind": "ribbon", "type": "YMCKO", "remaining": 101, "capacity": 200,
         "unit": "prints", "source": "printer", "cards_left": 50, "runs_out_at": runs_out_at,
         "disagreement": None},
        {"kind": "cards", "type": "ektp", "remaining": 1, "capacity": None, "unit": "cards",
         "source": "agent", "cards_left": 1, "runs_out_at": None, "disagreement": None}],
        "cards_left": 50, "first_to_run_out": "ribbon", "runs_out_at": runs_out_at,
        "print_rate_per_hour": rate,
        "blanks": {"stock": "ektp", "loaded": 10, "issued": 6, "spoiled": 1, "test": 1,
                   "removed": 1, "in_feeder": 1},
        "maintenance": {"cards_since_cleaning": 1, "cleaning_interval": 500,
                        "cleaning_due": True, "last_cleaned": None}}


@pytest.mark.parametrize(("language", "expected"), [
    ("en", ["ribbon  YMCKO      101/200 prints (printer) ~50 cards",
            "blanks  ektp       1 blanks (agent) ~1 card",
            "can print 50 more cards; the ribbon runs out first; not enough printing yet to "
            "forecast when",
            "blanks  loaded 10, issued 6, spoiled 1, test 1, removed 1, in the feeder 1",
            "cleaning 1 card since the last (every 500) - cleaning due"]),
    ("id", ["pita    YMCKO      101/200 cetakan (printer) ~50 kartu",
            "blangko ektp       1 blangko (agen) ~1 kartu",
            "dapat mencetak 50 kartu lagi; pita habis lebih dulu; belum cukup banyak kartu "
            "dicetak untuk memperkirakan kapan",
            "blangko diisi 10, dicetak 6, rusak 1, uji cetak 1, dikeluarkan 1, di tempat "
            "blangko 1",
            "pembersihan 1 kartu sejak pembersihan terakhir (setiap 500) - saatnya "
            "pembersihan"]),
])
def test_stock_without_a_pace_says_so_where_the_time_would_be(speak, language, expected):
    speak(language)
    assert format_stock(_answer(None, None)).splitlines() == expected


@pytest.mark.parametrize(("language", "line"), [
    ("en", "can print 500 more cards; the ribbon, the film and the blanks run out together; "
           "not enough printing yet to forecast when"),
    ("id", "dapat mencetak 500 kartu lagi; pita, film dan blangko akan habis bersamaan; "
           "belum cukup banyak kartu dicetak untuk memperkirakan kapan"),
])
def test_stock_names_no_first_when_all_run_out_together(speak, language, line):
    """A new ribbon, film roll and box of blanks: none of them runs out first."""
    speak(language)
    tied = {**_answer(None, None), "cards_left": 500,
            "run_out_together": ["ribbon", "film", "cards"]}
    assert line in format_stock(tied).splitlines()


@pytest.mark.parametrize(("language", "line"), [
    ("en", "can print 50 more cards; the ribbon runs out first at about {when} (at 10 "
           "cards/hour)"),
    ("id", "dapat mencetak 50 kartu lagi; pita habis lebih dulu sekitar {when} (dengan laju "
           "10 kartu/jam)"),
])
def test_stock_with_a_pace_says_when(speak, language, line):
    speak(language)
    soon = (datetime.now().astimezone() + timedelta(minutes=1)).isoformat()
    text = format_stock(_answer(soon, 10.0))
    assert line.format(when=clock(soon)) in text.splitlines()
    assert f"~{clock(soon)}" in text.splitlines()[0]


# ------------------------------------------------------------------------------- the books

def _balance(unaccounted: int, source: str = "printer") -> dict:
    return {"loaded": 50, "issued": 40, "spoiled": 2, "test": 1, "removed": 1,
            "in_feeder": 6 - unaccounted, "in_feeder_source": source,
            "unaccounted": unaccounted, "balanced": unaccounted == 0}


def test_the_ledgers_check_in_indonesian(speak):
    speak("id")
    assert explain(_balance(0, "agent")) == (
        "seimbang: diisi 50 = dicetak 40 + rusak 2 + uji cetak 1 + dikeluarkan 1 + di tempat "
        "blangko 6 (hitungan agen)")
    assert explain(_balance(3)) == (
        "TIDAK seimbang: 3 blangko tidak tercatat: terambil tanpa tercatat di catatan "
        "blangko, atau dikeluarkan dari tempat blangko (setelah ditemukan, catat blangko yang "
        "dikeluarkan dengan `printstation unload cards --count 3 --why ...`); diisi 50 vs "
        "dicetak 40 + rusak 2 + uji cetak 1 + dikeluarkan 1 + di tempat blangko 3 (hitungan "
        "printer)")
    assert explain(_balance(-1)).startswith(
        "TIDAK seimbang: 1 blangko lebih banyak dari yang diisi: dimasukkan ke tempat blangko "
        "tanpa `printstation load cards`; diisi 50 vs")


def test_the_ledger_tables_columns_widen_for_their_headings(speak):
    day = {"day": "2026-11-24", "stock": "ektp", "loaded": 500, "issued": 120, "spoiled": 3,
           "test": 1, "removed": 20, "ribbon_used": 240, "film_used": 240}
    assert format_ledger([day]) == (
        "day        stock     loaded  issued spoiled  test removed  ribbon   film\n"
        "2026-11-24 ektp         500     120       3     1      20     240    240\n")
    speak("id")
    assert format_ledger([day]) == (
        "tanggal    jenis      diisi dicetak   rusak   uji dikeluarkan    pita   film\n"
        "2026-11-24 ektp         500     120       3     1          20     240    240\n")


def test_rolls_and_the_register_in_indonesian(speak):
    speak("id")
    roll = {"id": 1, "kind": "ribbon", "type": "YMCKO", "serial": "R-77", "lot": None,
            "capacity": 200, "started_with": 200, "loaded_at": "2026-11-02T08:15:00+07:00",
            "who": "ani", "replaced_at": "2026-11-20T14:30:00+07:00", "left_at_replace": 75,
            "good_cards": 110, "good_use": 120, "spoiled_cards": 5, "spoiled_use": 5}
    [report] = roll_report([roll], {})
    assert format_rolls([report]) == (
        "#1 pita YMCKO, serial R-77, lot -: dipasang 2026-11-02 08:15 oleh ani, sampai "
        "2026-11-20 14:30\n"
        "    kapasitas 200, menghasilkan 125 (62%), diganti saat sisa 75\n"
        "    120 cetakan untuk 110 kartu baik; 5 untuk 5 kartu rusak\n")
    assert format_rolls([]) == ("belum ada pita atau gulungan film yang tercatat "
                                "(`printstation load ribbon`)\n")
    cards = [{"card_no": 3, "at": "2026-11-02T08:15:00+07:00", "outcome": "spoiled",
              "reason": "jam", "job_id": "JOB-1", "reference": "PERMOHONAN-000123",
              "chip_uid": None},
             {"card_no": 4, "at": "2026-11-02T08:16:00+07:00", "outcome": "spoiled",
              "reason": "encode_failed", "job_id": "JOB-2", "reference": None,
              "chip_uid": "04a1b2"}]
    assert format_register("2026-11", cards, "bogor-kota-01") == (
        "Daftar kartu rusak, stasiun bogor-kota-01, 2026-11\n"
        "2 blangko tidak menjadi kartu\n\n"
        "Gagal cetak: 1\n"
        "  kartu      3  2026-11-02 08:15  jam  pekerjaan JOB-1 (PERMOHONAN-000123)\n\n"
        "Gagal menulis chip: 1\n"
        "  kartu      4  2026-11-02 08:16  encode_failed  pekerjaan JOB-2 chip 04a1b2\n\n"
        "Dikeluarkan dari tempat blangko tanpa dicetak: 0\n")


# ---------------------------------------------------------------- refusals and the advice

def test_load_refusals_in_indonesian(speak, stock):
    speak("id")
    with pytest.raises(LoadError, match=r"^printer ini tidak dapat memakai pita XYZ; printer "
                                        r"ini memakai YMCKO, YMCKK$"):
        stock.load("ribbon", type_="XYZ", capacity=100, count=None, who="ani")
    with pytest.raises(LoadError, match=r"^sebutkan jenis pita \(--type\)"):
        stock.load("ribbon", type_=None, capacity=100, count=None, who="ani")
    with pytest.raises(LoadError, match=r"^sebutkan kapasitas gulungan film dalam panel "):
        stock.load("film", type_=None, capacity=None, count=None, who="ani")
    with pytest.raises(LoadError, match=r"^tidak ada pekerjaan cetak di stasiun ini yang "
                                        r"memakai blangko 'sim'; stasiun ini mencetak ektp, "
                                        r"kia$"):
        stock.load("cards", type_="sim", capacity=None, count=10, who="ani")
    with pytest.raises(LoadError, match=r"^agen menghitung 0 blangko di tempat blangko, kurang "
                                        r"dari 2; catat dulu"):
        stock.unload(2, "ani", "x")
    stock.load("cards", type_="ektp", capacity=None, count=10, who="ani")
    with pytest.raises(LoadError, match=r"^tempat blangko masih berisi 10 blangko ektp; "
                                        r"keluarkan dan catat dengan `printstation unload "
                                        r"cards --count 10 --why \.\.\.` sebelum mengisi kia$"):
        stock.load("cards", type_="kia", capacity=None, count=10, who="ani")


def test_a_refusal_in_english_names_the_ribbon_it_wants(stock):
    with pytest.raises(LoadError, match=r"^say the ribbon's type \(--type\); this printer "
                                        r"takes YMCKO, YMCKK$"):
        stock.load("ribbon", type_="", capacity=100, count=None, who="ani")


@pytest.mark.parametrize(("language", "messages"), [
    ("en", {"ribbon_out": "Ribbon out (0 prints left, about 0 cards): load a new ribbon, then "
                          "record it with `printstation load ribbon`",
            "film_unknown": "Film level unknown: the printer does not read it; load a new "
                            "film roll, then record it with `printstation load film`",
            "cards_low": "Blanks low: 1 blank left, about 1 card"}),
    ("id", {"ribbon_out": "Pita habis (sisa 0 cetakan, cukup untuk sekitar 0 kartu): pasang "
                          "pita baru, lalu catat dengan `printstation load ribbon`",
            "film_unknown": "Film: sisanya tidak diketahui karena printer tidak membacanya; "
                            "pasang gulungan film baru, lalu catat dengan `printstation load "
                            "film`",
            "cards_low": "Blangko hampir habis: sisa 1 blangko, cukup untuk sekitar 1 kartu"}),
])
def test_an_alerts_advice_in_the_agents_language(speak, language, messages):
    speak(language)
    levels = [Level("ribbon", "YMCKO", 200, 0, "prints", "printer"),
              Level("film", None, None, None, "panels", "agent"),
              Level("cards", "ektp", None, 1, "cards", "agent")]
    fc = forecast({"ribbon": 0, "cards": 1}, {"ribbon": 1.0, "cards": 1.0}, [], NOW)
    found = consumable_conditions(levels, fc, {"cards": Threshold(warning=10, critical=0)}, {})
    said = {c.name: c.message for c in found}
    assert {name: said[name] for name in messages} == messages


def test_a_printer_fault_and_why_the_station_is_blocked_in_indonesian(speak):
    speak("id")
    jam = PrinterStatus(state="fault", faults=[FaultCode.JAM])
    [alert] = printer_conditions(jam, None)
    assert alert.message == "Kartu macet: buka printer, keluarkan kartunya, lalu tutup kembali"
    advice = state.fault_advice(FaultCode.FEEDER_EMPTY, feeder_stock="ektp")
    assert advice == ("Tempat blangko kosong: isi blangko ektp, lalu catat dengan "
                      "`printstation load cards`")
    ready = PrinterStatus(state="ready")
    common = {"stopping": False, "journal": None, "printer_error": None, "advice": [],
              "held_for_stock": None, "short_for_a_card": None, "current_job": None}
    paused = state.station_state(status=ready, paused=True, **common)
    assert paused.not_taking_because == "dijeda oleh operator"
    offline = state.station_state(status=PrinterStatus(state="offline"), paused=False,
                                  **common)
    assert (offline.blocked_reason, offline.not_taking_because) == (
        "printer tidak terhubung", "printer tidak terhubung")
    cable = state.station_state(status=PrinterStatus(state="offline"), paused=False,
                                **{**common, "printer_error": "no reply from /dev/ttyUSB0"})
    assert cable.not_taking_because == "printer tidak terhubung: no reply from /dev/ttyUSB0"


# --------------------------------------------------------------------- the control socket

def test_the_control_sockets_errors_in_indonesian(speak, tmp_path):
    speak("id")
    missing = tmp_path / "nowhere" / "control.sock"
    with pytest.raises(ControlError, match=r"^agen tidak berjalan \(tidak ada soket kontrol "
                                           rf"di {missing}\)$"):
        call(missing, {"cmd": "status"})
    server = LocalControlServer(tmp_path / "control.sock", {"status": lambda r, who: {}})
    server.start()
    try:
        with pytest.raises(ControlError, match=r"^perintah 'bogus' tidak dikenal; yang "
                                               r"dikenal: status$"):
            call(tmp_path / "control.sock", {"cmd": "bogus"})
        assert server.answer(b"not json\n", "ani") == {"ok": False,
                                                       "error": "permintaan bukan JSON"}
    finally:
        server.stop()


@pytest.mark.parametrize(("language", "request_", "said"), [
    ("en", ("unload", {"count": -1, "why": "x"}), "unload: count must be 0 or more"),
    ("id", ("unload", {"count": -1, "why": "x"}), "unload: count harus 0 atau lebih"),
    ("id", ("unload", {"count": 2, "why": "   "}), "unload: why tidak boleh kosong"),
    ("id", ("jobs", {"limit": 5000}), "jobs: limit harus 1000 atau kurang"),
    ("en", ("load", {"kind": "cards", "count": 10**20}), "load: count must be 100000 or less"),
    ("en", ("unload", {"count": 10**9, "why": "typo"}), "unload: count must be 100000 or less"),
    ("en", ("ledger", {"day": "bad"}), "ledger: give a day as YYYY-MM-DD, e.g. 2026-11-24"),
    ("en", ("ledger", {"day": "2026-13-45"}),
     "ledger: give a day as YYYY-MM-DD, e.g. 2026-11-24"),
    ("id", ("load", {"kind": "ribbon", "serial": "a$b"}),
     "load: serial hanya boleh berisi huruf, angka, spasi dan . / # : -"),
])
def test_a_request_an_operator_typed_wrong_is_refused_in_the_agents_language(
        speak, language, request_, said):
    """Refused before any command acts (no station needed): one line, no regex, no English
    of the validation library's in Indonesian."""
    from printstation.agent.station.actions import Commands, ControlError

    speak(language)
    name, request = request_
    with pytest.raises(ControlError) as refused:
        Commands(None).run(name, request, "siti")  # type: ignore[arg-type]
    assert str(refused.value) == said
