"""The consumables model without a broker: counting, reconciling, forecasting, alerting."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from printstation.agent.config import Threshold
from printstation.agent.station.alerts import AlertBook
from printstation.agent.station.conditions import consumable_conditions
from printstation.agent.station.consumables import Consumables, Level, LoadError, reconcile
from printstation.agent.station.forecast import forecast, print_rate, use_per_card
from printstation.agent.station.journal import Journal
from printstation.agent.station.journal.stock import CardUse, Counted
from printstation.agent.station.ledger import CSV_FIELDS, balance, explain
from printstation.agent.surfaces.csvtext import to_csv
from printstation.drivers.base import ConsumableLevel, PrinterStatus

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=timezone(timedelta(hours=7)))


@pytest.fixture
def journal(tmp_path) -> Journal:
    j = Journal(tmp_path / "state", "unit")
    yield j
    j.close()


@pytest.fixture
def stock(journal) -> Consumables:
    return Consumables(journal, ribbon_types=["YMCKO", "YMCKK"], stocks=["ektp", "kia"],
                       uses_film=True, default_stock="ektp")


def test_forecast_against_a_hand_computed_case():
    # 11 cards one every 6 minutes: 10 intervals in 1 hour -> 10 cards per hour.
    times = [NOW - timedelta(minutes=6 * i) for i in range(11)]
    fc = forecast({"ribbon": 101, "film": 150, "cards": 80},
                  {"ribbon": 2.0, "film": 2.0, "cards": 1.0}, times, NOW)
    assert fc.rate_per_hour == pytest.approx(10.0)
    assert fc.outlook["ribbon"].cards_left == 50  # 101 prints / 2 per card, rounded down
    assert fc.outlook["film"].cards_left == 75
    assert fc.outlook["cards"].cards_left == 80
    assert (fc.first_to_run_out, fc.cards_left) == ("ribbon", 50)
    assert fc.runs_out_at == NOW + timedelta(hours=5)  # 50 cards at 10 per hour
    assert fc.outlook["cards"].runs_out_at == NOW + timedelta(hours=8)


def test_forecast_without_a_pace_gives_cards_but_no_time():
    fc = forecast({"ribbon": 10, "film": None, "cards": 3}, {"ribbon": 1, "film": 1, "cards": 1},
                  [NOW], NOW)
    assert (fc.cards_left, fc.first_to_run_out, fc.runs_out_at) == (3, "cards", None)
    assert fc.outlook["film"].cards_left is None
    old = [NOW - timedelta(hours=9), NOW - timedelta(hours=10)]
    assert print_rate(old, NOW) is None  # yesterday's pace is not today's


def test_use_per_card_averages_recent_cards_and_falls_back():
    recent = [{"ribbon_use": 2, "film_use": 2}, {"ribbon_use": 1, "film_use": 1}]
    assert use_per_card(recent, {"ribbon": 2, "film": 2}) == {"cards": 1.0, "ribbon": 1.5,
                                                              "film": 1.5}
    assert use_per_card([], {"ribbon": 2, "film": 2})["ribbon"] == 2


def test_card_use_follows_the_ribbon_type(stock):
    ymcko = PrinterStatus("ready", consumables=(ConsumableLevel("ribbon", "YMCKO", 250, 250,
                                                                "prints"),))
    ymckk = PrinterStatus("ready", consumables=(ConsumableLevel("ribbon", "YMCKK", 250, 250,
                                                                "prints"),))
    assert stock.card_use(ymcko, "ektp", 2) == CardUse("ektp", 2, ribbon=2, film=2)
    assert stock.card_use(ymckk, "ektp", 2) == CardUse("ektp", 2, ribbon=1, film=2)


def test_a_two_sided_card_is_short_with_stock_for_one_side(stock):
    status = PrinterStatus("ready", consumables=(
        ConsumableLevel("ribbon", "YMCKO", 250, 1, "prints"),
        ConsumableLevel("film", "retransfer", 500, 400, "panels"),
        ConsumableLevel("cards", "ektp", 100, 50, "cards")))
    why = stock.shortage(status, stock.card_use(status, "ektp", 2))
    assert why and why.startswith("ribbon short: 1 print left, the next 2-sided card needs 2")
    assert stock.shortage(status, stock.card_use(status, "ektp", 1)) is None


def test_reconcile_prefers_the_printer_and_reports_a_disagreement():
    counted = Counted("ribbon", "YMCKO", 250, 180, "prints", "2026-11-24T08:00:00+07:00")
    same = reconcile("ribbon", ConsumableLevel("ribbon", "YMCKO", 250, 179, "prints"), counted)
    assert (same.remaining, same.source, same.disagreement) == (179, "printer", None)
    off = reconcile("ribbon", ConsumableLevel("ribbon", "YMCKK", 250, 120, "prints"), counted)
    assert off.remaining == 120 and off.counted == 180
    assert "the printer reads 120 prints left, the agent counted 180" in off.disagreement
    assert "type YMCKK" in off.disagreement
    only_counted = reconcile("film", None, Counted("film", "retransfer", 500, 90, "panels", ""))
    assert (only_counted.remaining, only_counted.source) == (90, "agent")
    assert reconcile("film", None, None).remaining is None


def test_loads_of_the_wrong_kind_are_refused_with_the_reason(stock, journal):
    with pytest.raises(LoadError, match="cannot use a YMC ribbon; it takes YMCKO, YMCKK"):
        stock.load("ribbon", type_="YMC", capacity=250, count=None, who="op")
    with pytest.raises(LoadError, match="no job at this station asks for 'paper' blanks"):
        stock.load("cards", type_="paper", capacity=None, count=100, who="op")
    with pytest.raises(LoadError, match="capacity"):
        stock.load("film", type_=None, capacity=None, count=None, who="op")
    stock.load("cards", type_="ektp", capacity=None, count=100, who="op")
    stock.load("cards", type_="ektp", capacity=None, count=50, who="op")
    assert journal.cards.counted_stock()["cards"].remaining == 150  # blanks are added
    with pytest.raises(LoadError, match="the feeder still holds 150 ektp blanks"):
        stock.load("cards", type_="kia", capacity=None, count=100, who="op")
    stock.load("ribbon", type_="ymcko", capacity=250, count=None, who="op")
    stock.load("ribbon", type_="YMCKO", capacity=250, count=40, who="op")
    assert journal.cards.counted_stock()["ribbon"].remaining == 40  # a roll replaces the last


def test_each_card_is_counted_off_in_its_own_transaction(stock, journal):
    stock.load("ribbon", type_="YMCKO", capacity=250, count=None, who="op")
    stock.load("film", type_=None, capacity=500, count=None, who="op")
    stock.load("cards", type_="ektp", capacity=None, count=100, who="op")
    journal.cards.spoiled(None, 1, "jam", CardUse("ektp", 2, 0, 0))
    counted = journal.cards.counted_stock()
    assert (counted["cards"].remaining, counted["ribbon"].remaining) == (99, 250)
    days = journal.cards.ledger_days()
    assert [(d["stock"], d["loaded"], d["spoiled"]) for d in days] == [("ektp", 100, 1)]
    cards = Level("cards", "ektp", 100, 99, "cards", "agent", counted=99)
    assert balance(journal, cards)["balanced"]
    short = Level("cards", "ektp", 100, 98, "cards", "printer", read=98, counted=99)
    b = balance(journal, short)
    assert not b["balanced"] and b["unaccounted"] == 1
    assert "1 blank unaccounted for" in explain(b)
    assert to_csv(days, CSV_FIELDS).splitlines()[0] == (
        "day,stock,loaded,issued,spoiled,test,removed,ribbon_used,film_used")


THRESHOLDS = {"ribbon": Threshold(warning=100, critical=20)}


def _ribbon_conditions(book: AlertBook, prints_left: int):
    level = Level("ribbon", "YMCKO", 1000, prints_left, "prints", "printer", read=prints_left)
    fc = forecast({"ribbon": prints_left}, {"ribbon": 1.0}, [], NOW)
    return consumable_conditions([level], fc, THRESHOLDS, book.active)


def test_alerts_are_raised_and_cleared_once_across_a_threshold_crossed_many_times(journal):
    book = AlertBook(journal)
    emitted = []
    for left in [150, 101, 99, 101, 100, 102, 99, 103, 98, 104, 97, 105]:
        emitted += book.update(_ribbon_conditions(book, left))
    assert [(e["condition"], e["severity"], e["cleared"]) for e in emitted] == [
        ("ribbon_low", "warning", False)]
    for left in [21, 19, 22, 18, 21]:  # escalates once, never steps down while hovering
        emitted += book.update(_ribbon_conditions(book, left))
    assert [(e["severity"], e["cleared"]) for e in emitted[1:]] == [("critical", False)]
    restarted = AlertBook(journal)  # a restart neither repeats nor forgets
    assert restarted.update(_ribbon_conditions(restarted, 19)) == []
    cleared = restarted.update(_ribbon_conditions(restarted, 250))  # a new ribbon
    assert [(e["condition"], e["cleared"]) for e in cleared] == [("ribbon_low", True)]
    assert restarted.update(_ribbon_conditions(restarted, 250)) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=40))
def test_alerts_alternate_raise_and_clear_whatever_the_levels(tmp_path_factory, levels):
    journal = Journal(tmp_path_factory.mktemp("alerts"), "prop")
    book = AlertBook(journal)
    events = []
    for left in levels:
        events += book.update(_ribbon_conditions(book, left))
    journal.close()
    for name in {e["condition"] for e in events}:
        raised = None  # a clear follows a raise; a raise repeats only to change severity
        for e in (e for e in events if e["condition"] == name):
            if e["cleared"]:
                assert raised is not None, events
                raised = None
            else:
                assert e["severity"] != raised, events
                raised = e["severity"]
