"""Putting the books right and the reports offices owe, against hand-computed ledgers:
blanks taken out unprinted, a corrected count, each roll's yield, the spoiled-card register,
and a journal of the schema before brought up to date."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from printstation.agent import contract
from printstation.agent.central.samples import sample_job
from printstation.agent.contract import Job
from printstation.agent.station.consumables import Consumables, Level, LoadError
from printstation.agent.station.journal import Journal, schema
from printstation.agent.station.journal.stock import CardUse, RollId
from printstation.agent.station.ledger import balance, explain
from printstation.agent.station.rolls import roll_report
from printstation.agent.surfaces.books_cli import (
    REGISTER_FIELDS,
    ROLL_FIELDS,
    format_register,
    format_rolls,
)
from printstation.agent.surfaces.csvtext import to_csv
from printstation.drivers.base import ConsumableLevel, PrinterStatus
from tests.support import wait_for

WIB = timezone(timedelta(hours=7))


@pytest.fixture
def journal(tmp_path) -> Journal:
    j = Journal(tmp_path / "state", "unit")
    yield j
    j.close()


@pytest.fixture
def stock(journal) -> Consumables:
    return Consumables(journal, ribbon_types=["YMCKO"], stocks=["ektp"], uses_film=True,
                       default_stock="ektp")


@pytest.fixture
def clock(monkeypatch) -> list[datetime]:
    """The journal's clock, set by the test (every row is dated by `contract.now`)."""
    now = [datetime(2026, 11, 3, 9, 0, tzinfo=WIB)]
    monkeypatch.setattr(contract, "now", lambda: now[0])
    return now


def card(journal: Journal, outcome: str, sides: int = 1, *, used: int | None = None,
         reason: str | None = None, job_id: str | None = None, chip: str | None = None) -> int:
    """One blank through the printer, as the printer thread records it."""
    n = sides if used is None else used
    with journal.store.tx() as db:
        return journal.cards.record(db, job_id, outcome, reason, None,
                                    CardUse("ektp", sides, n, n), chip_uid=chip)


def take(journal: Journal, job_id: str, reference: str) -> None:
    body = sample_job(job_id, two_sided=False, destination="station.unit").body
    body["reference"] = reference
    raw = json.dumps(body).encode()
    journal.jobs.take(Job.model_validate_json(raw), raw, {}, "station")


def test_each_roll_shows_its_rating_against_what_it_gave_spoiled_cards_apart(stock, journal,
                                                                              clock):
    stock.load("ribbon", type_="YMCKO", capacity=200, count=None, who="ani",
               roll=RollId("R-0001", "L-7"))
    stock.load("film", type_=None, capacity=400, count=None, who="ani")
    stock.load("cards", type_="ektp", capacity=None, count=300, who="ani")
    # Roll 1: 100 one-sided and 10 two-sided good cards (120 prints), 5 blanks spoiled with a
    # print each, then it runs out early: a new roll goes in with 75 counted on the old.
    for _ in range(100):
        card(journal, "issued")
    for _ in range(10):
        card(journal, "issued", 2)
    for _ in range(5):
        card(journal, "spoiled", reason="jam")
    stock.unload(4, "ani", "to the KIA printer")  # never through the printer: no roll
    clock[0] += timedelta(days=1)
    stock.load("ribbon", type_="YMCKO", capacity=200, count=None, who="budi",
               roll=RollId("R-0002", "L-8"))
    # Roll 2 so far: a test card and two good cards (3 prints), a spoiled blank that used
    # nothing (the printer refused it before printing).
    card(journal, "test")
    card(journal, "issued")
    card(journal, "issued")
    card(journal, "spoiled", used=0, reason="cover_open")

    rolls = roll_report(journal.cards.rolls(), {"ribbon": 197, "film": 270})
    figures = [(r["kind"], r["serial"], r["lot"], r["capacity"], r["good_cards"],
                r["good_use"], r["spoiled_cards"], r["spoiled_use"], r["used"], r["left"],
                r["yield_pct"]) for r in rolls]
    assert figures == [
        ("ribbon", "R-0001", "L-7", 200, 110, 120, 5, 5, 125, 75, 62),
        ("film", None, None, 400, 113, 123, 6, 5, 128, 270, None),
        ("ribbon", "R-0002", "L-8", 200, 3, 3, 1, 0, 3, 197, None)]
    assert [r["summary"] for r in rolls] == [
        "rated 200, gave 125 (62%), replaced with 75 left",
        "rated 400, 128 used so far, 270 left (in the printer)",
        "rated 200, 3 used so far, 197 left (in the printer)"]
    assert [(r["who"], r["finished"]) for r in rolls] == [
        ("ani", True), ("ani", False), ("budi", False)]
    text = format_rolls(rolls)
    assert "#1 ribbon YMCKO, serial R-0001, lot L-7: loaded 2026-11-03 09:00 by ani, until " \
           "2026-11-04 09:00" in text
    assert "    120 prints to 110 good cards; 5 to 5 spoiled" in text
    rows = to_csv(rolls, ROLL_FIELDS).splitlines()
    assert rows[0].startswith("id,kind,type,serial,lot,capacity,started_with,unit,")
    assert rows[1].endswith(",110,120,5,5,125,75,62,\"rated 200, gave 125 (62%), replaced "
                            "with 75 left\"")


def test_a_roll_the_printer_reports_is_recorded_and_a_persons_record_completes_it(stock,
                                                                                 journal):
    def reading(remaining: int, serial: str | None) -> PrinterStatus:
        return PrinterStatus("ready", consumables=(ConsumableLevel(
            "ribbon", "YMCKO", 250, remaining, "prints", serial=serial, lot="LOT-A"),))

    stock.observe(reading(250, "CHIP-1"))  # first seen: the agent's starting count
    stock.load("ribbon", type_="YMCKO", capacity=250, count=None, who="ani",
               roll=RollId("TYPED-1", "L-1"))  # the same roll, no card yet: completed
    card(journal, "issued")
    stock.observe(reading(249, "CHIP-1"))
    stock.observe(reading(250, "CHIP-2"))  # swapped without `printstation load`
    card(journal, "issued")
    stock.observe(reading(249, "CHIP-2"))
    rolls = journal.cards.rolls()
    assert [(r["who"], r["serial"], r["lot"], r["good_cards"], r["replaced_at"] is None)
            for r in rolls] == [("ani", "CHIP-1", "LOT-A", 1, False),
                                ("printer", "CHIP-2", "LOT-A", 1, True)]
    assert rolls[0]["left_at_replace"] == 249  # the printer's last reading of it


def test_the_printer_reporting_the_roll_a_person_just_loaded_is_one_load(stock, journal):
    """On sim:// (and on a printer that reads its roll's chip) `load ribbon` is followed by
    the printer reporting that roll: the day's loads show it once, by the person."""
    def reading(remaining: int, serial: str) -> PrinterStatus:
        return PrinterStatus("ready", consumables=(ConsumableLevel(
            "ribbon", "YMCKO", 250, remaining, "prints", serial=serial, lot="LOT-A"),))

    stock.observe(reading(120, "CHIP-1"))  # first seen; no card printed on it yet
    stock.load("ribbon", type_="YMCKO", capacity=250, count=None, who="ani")
    stock.observe(reading(250, "CHIP-2"))  # the roll ani put in, as the printer reads it
    ribbons = [(ld["who"], ld["amount"]) for ld in journal.cards.loads()
               if ld["kind"] == "ribbon"]
    assert ribbons == [("agent", 120), ("ani", 250)]
    rolls = journal.cards.rolls()
    assert [(r["who"], r["serial"], r["capacity"], r["replaced_at"] is None)
            for r in rolls] == [("ani", "CHIP-2", 250, True)]


def test_a_new_roll_read_before_its_chip_is_seen_takes_the_serial_the_printer_reads(stock,
                                                                                    journal):
    def reading(remaining: int, serial: str) -> PrinterStatus:
        return PrinterStatus("ready", consumables=(ConsumableLevel(
            "ribbon", "YMCKO", 100, remaining, "prints", serial=serial),))

    stock.observe(reading(100, "OLD"))
    card(journal, "issued")
    stock.observe(reading(99, "OLD"))
    stock.load("ribbon", type_="YMCKO", capacity=100, count=None, who="ani")
    stock.observe(reading(99, "OLD"))  # the old roll, still in the printer: not this one's
    assert journal.cards.rolls()[-1]["serial"] is None
    stock.observe(reading(100, "NEW"))  # the new one goes in: its serial, no third roll
    assert [(r["who"], r["serial"]) for r in journal.cards.rolls()] == [
        ("agent", "OLD"), ("ani", "NEW")]


def test_blanks_taken_out_unprinted_balance_the_ledger_again(stock, journal):
    stock.load("cards", type_="ektp", capacity=None, count=50, who="ani")
    card(journal, "issued")
    card(journal, "spoiled", reason="jam")
    # The printer counts 45: three blanks left the feeder without a record.
    short = Level("cards", "ektp", 50, 45, "cards", "printer", read=45, counted=48)
    b = balance(journal, short)
    assert (b["balanced"], b["unaccounted"]) == (False, 3)
    assert "3 blanks unaccounted for" in explain(b)
    assert "`printstation unload cards --count 3 --why ...`" in explain(b)
    numbers = stock.unload(3, "ani", "taken to the training room")
    assert numbers == [3, 4, 5]
    counted = journal.cards.counted_stock()["cards"].remaining
    b = balance(journal, Level("cards", "ektp", 50, 45, "cards", "printer", read=45,
                               counted=counted))
    assert (counted, b["balanced"], b["removed"]) == (45, True, 3)
    assert explain(b) == ("balanced: loaded 50 = issued 1 + spoiled 1 + test 0 + removed 3 + "
                          "in the feeder 45 (printer count)")
    events = [json.loads(body) for _, _, body in journal.outbox.unpublished(100)]
    removed = [e for e in events if e["schema"] == "printstation.card/1"
               and e["outcome"] == "removed"]
    assert [(e["card_no"], e["job_id"], e["reason"]) for e in removed] == [
        (3, None, "taken to the training room"), (4, None, "taken to the training room"),
        (5, None, "taken to the training room")]
    contract.CardEvent.model_validate(removed[0])
    assert journal.cards.ledger_days()[0]["removed"] == 3
    with pytest.raises(LoadError, match="counts 45 blanks in the feeder, fewer than 46"):
        stock.unload(46, "ani", "all of them")
    assert journal.cards.outcomes()[("removed", "")] == 3  # no operator words as a label


def test_a_ribbon_or_film_count_is_corrected_with_who_and_why(stock, journal):
    stock.load("film", type_=None, capacity=500, count=None, who="ani")
    fixed = stock.correct("film", 320, "budi", "counted the panels on the roll")
    assert (fixed.remaining, fixed.capacity) == (320, 500)
    assert [(c["kind"], c["before"], c["after"], c["who"], c["why"])
            for c in journal.cards.corrections()] == [
        ("film", 500, 320, "budi", "counted the panels on the roll")]
    assert len(journal.cards.rolls()) == 1  # the same roll
    with pytest.raises(LoadError, match="between 0 and the roll's capacity 500"):
        stock.correct("film", 501, "budi", "x")
    with pytest.raises(LoadError, match="no ribbon is recorded yet"):
        stock.correct("ribbon", 10, "budi", "x")
    with pytest.raises(LoadError, match="printstation unload cards"):
        stock.correct("cards", 10, "budi", "x")


def test_the_spoiled_register_lists_every_lost_blank_of_the_month(stock, journal, clock):
    take(journal, "JOB-OCT", "PERMOHONAN-000001")
    take(journal, "JOB-1", "PERMOHONAN-000123")
    take(journal, "JOB-2", "PERMOHONAN-000124")
    stock.load("cards", type_="ektp", capacity=None, count=100, who="ani")
    clock[0] = datetime(2026, 10, 31, 16, 0, tzinfo=WIB)
    card(journal, "spoiled", reason="jam", job_id="JOB-OCT")  # 1: October's
    clock[0] = datetime(2026, 11, 2, 8, 15, tzinfo=WIB)
    card(journal, "issued", job_id="JOB-OCT")  # 2
    card(journal, "spoiled", reason="jam", job_id="JOB-1")  # 3
    card(journal, "spoiled", reason="encode_failed", job_id="JOB-2", chip="04a1b2c3d4e5f6")  # 4
    card(journal, "issued", job_id="JOB-1")  # 5
    clock[0] = datetime(2026, 11, 20, 14, 30, tzinfo=WIB)
    stock.unload(2, "ani", "to the KIA printer")  # 6, 7
    card(journal, "spoiled", used=0, reason="test card: jam")  # 8

    cards = journal.cards.register("2026-11")
    assert [(c["card_no"], c["outcome"], c["reason"], c["job_id"], c["reference"],
             c["chip_uid"]) for c in cards] == [
        (3, "spoiled", "jam", "JOB-1", "PERMOHONAN-000123", None),
        (4, "spoiled", "encode_failed", "JOB-2", "PERMOHONAN-000124", "04a1b2c3d4e5f6"),
        (6, "removed", "to the KIA printer", None, None, None),
        (7, "removed", "to the KIA printer", None, None, None),
        (8, "spoiled", "test card: jam", None, None, None)]
    assert [c["card_no"] for c in journal.cards.register("2026-10")] == [1]
    assert journal.cards.register("2026-12") == []
    text = format_register("2026-11", cards, "bogor-kota-01")
    assert text == (
        "Spoiled-card register, station bogor-kota-01, 2026-11\n"
        "5 blanks did not become a card\n\n"
        "Failed prints: 2\n"
        "  card      3  2026-11-02 08:15  jam  job JOB-1 (PERMOHONAN-000123)\n"
        "  card      8  2026-11-20 14:30  test card: jam  job -\n\n"
        "Failed encodes: 1\n"
        "  card      4  2026-11-02 08:15  encode_failed  job JOB-2 (PERMOHONAN-000124) "
        "chip 04a1b2c3d4e5f6\n\n"
        "Taken out of the feeder unprinted: 2\n"
        "  card      6  2026-11-20 14:30  to the KIA printer  job -\n"
        "  card      7  2026-11-20 14:30  to the KIA printer  job -\n")
    rows = to_csv(cards, REGISTER_FIELDS).splitlines()
    assert rows[0] == "card_no,at,outcome,reason,job_id,reference,chip_uid,stock"
    assert rows[2] == ("4,2026-11-02T08:15:00+07:00,spoiled,encode_failed,JOB-2,"
                       "PERMOHONAN-000124,04a1b2c3d4e5f6,ektp")
    spoiled = [json.loads(b) for _, _, b in journal.outbox.unpublished(100)]
    chip = [e for e in spoiled if e.get("card_no") == 4 and e["schema"].endswith("card/1")]
    assert chip[0]["chip_uid"] == "04a1b2c3d4e5f6"


def test_rolls_keep_their_figures_when_their_cards_are_folded_by_retention(stock, journal,
                                                                            clock):
    clock[0] = datetime(2025, 1, 10, 9, 0, tzinfo=WIB)
    stock.load("ribbon", type_="YMCKO", capacity=200, count=None, who="ani")
    stock.load("cards", type_="ektp", capacity=None, count=20, who="ani")
    for _ in range(4):
        card(journal, "issued", 2)
    card(journal, "spoiled", reason="jam")
    before = [(r["good_cards"], r["good_use"], r["spoiled_cards"], r["spoiled_use"])
              for r in journal.cards.rolls()]
    clock[0] = datetime(2026, 11, 3, 9, 0, tzinfo=WIB)
    assert journal.retention.prune(job_days=400, event_days=14)["ledger"] > 0
    after = [(r["good_cards"], r["good_use"], r["spoiled_cards"], r["spoiled_use"])
             for r in journal.cards.rolls()]
    assert before == after == [(4, 8, 1, 1)]


def test_a_schema_3_journal_gets_its_rolls_from_its_loads(tmp_path, clock):
    journal = Journal(tmp_path, "s1")
    stock = Consumables(journal, ribbon_types=["YMCKO"], stocks=["ektp"], uses_film=False,
                        default_stock="ektp")
    stock.load("ribbon", type_="YMCKO", capacity=100, count=None, who="ani")
    stock.load("cards", type_="ektp", capacity=None, count=10, who="ani")
    card(journal, "issued")
    clock[0] += timedelta(hours=1)
    stock.load("ribbon", type_="YMCKO", capacity=300, count=None, who="budi")
    clock[0] += timedelta(hours=1)
    card(journal, "issued", 2)
    journal.close()
    # What an agent of schema 3 left: no rolls, no chip or roll columns on the cards.
    v3 = ("card_no INTEGER PRIMARY KEY, job_id TEXT, outcome TEXT NOT NULL, reason TEXT, "
          "counter INTEGER, at TEXT NOT NULL, stock TEXT, sides INTEGER, ribbon_use INTEGER, "
          "film_use INTEGER")
    names = ", ".join(c.split()[0] for c in v3.split(", "))
    db = sqlite3.connect(tmp_path / "journal.sqlite3")
    db.executescript(f"DROP TABLE rolls; DROP TABLE corrections; CREATE TABLE v3 ({v3}); "
                     f"INSERT INTO v3 SELECT {names} FROM cards; DROP TABLE cards; "
                     "ALTER TABLE v3 RENAME TO cards; "
                     "UPDATE meta SET value='3' WHERE key='schema_version';")
    db.close()
    journal = Journal(tmp_path, "s1")
    assert journal.store.get_meta("schema_version") == str(schema.SCHEMA_VERSION) == "6"
    rolls = journal.cards.rolls()
    assert [(r["who"], r["capacity"], r["started_with"], r["good_cards"], r["good_use"],
             r["replaced_at"] is None) for r in rolls] == [
        ("ani", None, 100, 1, 1, False), ("budi", 300, 300, 1, 2, True)]
    card(journal, "spoiled", reason="encode_failed", chip="04aa")
    assert journal.cards.register(contract.now().strftime("%Y-%m"))[0]["chip_uid"] == "04aa"
    journal.close()
    Journal(tmp_path, "s1").close()  # opened again: nothing rebuilt twice
    db = sqlite3.connect(tmp_path / "journal.sqlite3")
    assert db.execute("SELECT COUNT(*) FROM rolls").fetchone()[0] == 2
    db.close()


def test_a_schema_1_journal_gets_its_rolls_from_its_loads_too(tmp_path, clock):
    """Schema 1 kept a job's message in its jobs row; moving it out must not mark the
    journal up to date before its rolls are built from its loads."""
    journal = Journal(tmp_path, "s1")
    stock = Consumables(journal, ribbon_types=["YMCKO"], stocks=["ektp"], uses_film=False,
                        default_stock="ektp")
    stock.load("ribbon", type_="YMCKO", capacity=100, count=None, who="ani")
    stock.load("cards", type_="ektp", capacity=None, count=10, who="ani")
    card(journal, "issued")
    journal.close()
    v1 = ("card_no INTEGER PRIMARY KEY, job_id TEXT, outcome TEXT NOT NULL, reason TEXT, "
          "counter INTEGER, at TEXT NOT NULL, stock TEXT, sides INTEGER, ribbon_use INTEGER, "
          "film_use INTEGER")
    names = ", ".join(c.split()[0] for c in v1.split(", "))
    db = sqlite3.connect(tmp_path / "journal.sqlite3")
    db.executescript(f"DROP TABLE rolls; DROP TABLE corrections; CREATE TABLE v1 ({v1}); "
                     f"INSERT INTO v1 SELECT {names} FROM cards; DROP TABLE cards; "
                     "ALTER TABLE v1 RENAME TO cards; "
                     "ALTER TABLE jobs ADD COLUMN body BLOB; "
                     "ALTER TABLE jobs ADD COLUMN headers TEXT; "
                     "UPDATE meta SET value='1' WHERE key='schema_version';")
    db.close()
    journal = Journal(tmp_path, "s1")
    assert journal.store.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
    assert [(r["who"], r["good_cards"], r["good_use"]) for r in journal.cards.rolls()] == [
        ("ani", 1, 1)]
    journal.close()


def test_the_printer_thread_tells_a_simulated_printer_what_an_operator_recorded(
        tmp_path, journal, stock):
    import threading

    from printstation.agent.station.printing import PrinterWorker
    from printstation.drivers.base import Identity, PrinterDriver, StockChange
    from printstation.simulator.driver import SimDriver

    class Watched(SimDriver):
        threads: list[str] = []

        def stock_changed(self, change: StockChange) -> None:
            self.threads.append(threading.current_thread().name)
            super().stock_changed(change)

    class SeesForItself(PrinterDriver):
        """A third-party driver written before the hook existed."""

        name = "plain"

        @classmethod
        def from_url(cls, url, *, state_dir):
            return cls()

        def identity(self):
            return Identity("plain", None, None, None)

        def status(self):
            return PrinterStatus("ready")

        def print_card(self, card):
            raise AssertionError("nothing prints here")

    driver = Watched.from_url("sim://?cards=10&render=0", state_dir=tmp_path)
    worker = PrinterWorker(journal, driver, consumables=stock, max_attempts=3,
                           paused=lambda: True, on_change=lambda: None)
    worker.start()
    try:
        wait_for(lambda: journal.cards.counted_stock().get("cards"), 10, "the feeder read")
        loaded = stock.load("cards", type_="ektp", capacity=None, count=5, who="ani")
        told = worker.stock_changed(stock.stock_change("cards", loaded, added=5))
        assert told is not None and told.result(timeout=10) is True
        assert driver.printer.cards_in_feeder == 15 and Watched.threads == ["printer"]
        # Taken out before it was recorded (the feeder already holds the count): not twice.
        driver.printer.cards_in_feeder -= 3
        stock.unload(3, "ani", "to the KIA printer")
        left = journal.cards.counted_stock()["cards"]
        worker.stock_changed(stock.stock_change("cards", left, removed=3)).result(10)
        assert driver.printer.cards_in_feeder == left.remaining == 12
        worker.stock_changed(StockChange("ribbon", "loaded", 150, type="YMCKO",
                                         capacity=200, lot="L-9")).result(10)
        ribbon = driver.status().consumables[0]
        assert (ribbon.remaining, ribbon.capacity, ribbon.serial, ribbon.lot) == (
            150, 200, "SIM-R-0002", "L-9")
    finally:
        worker.stop()
    plain = PrinterWorker(journal, SeesForItself(), consumables=stock, max_attempts=3,
                          paused=lambda: True, on_change=lambda: None)
    assert plain.stock_changed(StockChange("cards", "loaded", 5)) is None  # nothing to wait for


def test_typed_words_in_a_csv_never_run_as_a_spreadsheet_formula():
    """A removal's reason or a serial is typed by a person; the office opens the CSV in a
    spreadsheet, which would run `=...` as a formula."""
    from printstation.agent.surfaces.csvtext import to_csv as csv_text

    rows = [{"card_no": 7, "reason": '=HYPERLINK("http://x","see")', "serial": "@R-1",
             "change": -3}, {"card_no": 8, "reason": "jam", "serial": "-", "change": 2}]
    text = csv_text(rows, ("card_no", "reason", "serial", "change")).splitlines()
    assert text[1:] == ["7,\"'=HYPERLINK(\"\"http://x\"\",\"\"see\"\")\",'@R-1,-3",
                        "8,jam,'-,2"]


def test_blanks_taken_out_while_a_card_prints_are_taken_out_of_the_simulated_feeder(
        tmp_path, journal, stock):
    """`unload cards --count 1` during a card: by the time the printer thread tells the
    simulator, the card drew a blank, and the feeder must not look already unloaded."""
    from printstation.agent.station.printing import PrinterWorker
    from printstation.simulator.driver import SimDriver

    driver = SimDriver.from_url("sim://?cards=10&render=0", state_dir=tmp_path)
    stock.load("cards", type_="ektp", capacity=None, count=10, who="ani")
    counted = stock.journal.cards.counted_stock()["cards"]
    assert stock.unload(1, "ani", "damaged in the box") == [1]
    change = stock.stock_change("cards", journal.cards.counted_stock()["cards"], removed=1)
    assert (counted.remaining, change.expected) == (10, 9)
    driver.printer.cards_in_feeder -= 1  # the card in the printer drew its blank ...
    card(journal, "issued")  # ... and came out, recorded before the printer thread is free
    worker = PrinterWorker(journal, driver, consumables=stock, max_attempts=3,
                           paused=lambda: True, on_change=lambda: None)
    worker.start()
    try:
        assert worker.stock_changed(change).result(timeout=10) is True
    finally:
        worker.stop()
    assert driver.printer.cards_in_feeder == journal.cards.counted_stock()["cards"].remaining \
        == 8
