"""When the consumables run out: a pace only from steady printing, and the time said as an
operator reads it. Every figure here is worked out by hand in its comment."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from printstation.agent.station.forecast import forecast, print_rate
from printstation.agent.surfaces.stock_cli import clock

WIB = timezone(timedelta(hours=7))
WITA = timezone(timedelta(hours=8))
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=WIB)
USE = {"ribbon": 2.0, "film": 2.0, "cards": 1.0}


def every(start: datetime, minutes: float, count: int) -> list[datetime]:
    return [start + timedelta(minutes=minutes * i) for i in range(count)]


def test_a_burst_of_a_few_cards_forecasts_no_time():
    # Four cards 20 s apart, the last just now: the old pace was 3 intervals in 1 minute,
    # 180 cards an hour, and 50 cards of ribbon "ran out" at 09:16.
    burst = every(NOW - timedelta(minutes=1), 1 / 3, 4)
    fc = forecast({"ribbon": 101, "film": 150, "cards": 80}, USE, burst, NOW)
    assert fc.rate_per_hour is None and fc.runs_out_at is None
    assert (fc.cards_left, fc.first_to_run_out) == (50, "ribbon")  # the count still stands


def test_many_cards_in_a_short_time_are_not_yet_a_pace():
    # Twelve cards 30 s apart: enough cards, but 5.5 minutes of printing.
    batch = every(NOW - timedelta(minutes=5.5), 0.5, 12)
    assert print_rate(batch, NOW) is None
    # 44 minutes after the first the batch is a pace: 11 intervals over 44 min, 15 an hour.
    assert print_rate(batch, batch[0] + timedelta(minutes=44)) == pytest.approx(15.0)


def test_the_pace_counts_the_pauses_and_a_station_that_stops_slows_down():
    # 11 cards one every 6 minutes: 10 in the hour since the first, 10 an hour.
    times = every(NOW - timedelta(hours=1), 6, 11)
    assert print_rate(times, NOW) == pytest.approx(10.0)
    # Nothing printed for the next hour: 10 cards over 2 hours, 5 an hour.
    assert print_rate(times, NOW + timedelta(hours=1)) == pytest.approx(5.0)
    fc = forecast({"ribbon": 101, "film": 150, "cards": 80}, USE, times, NOW)
    assert fc.runs_out_at == NOW + timedelta(hours=5)  # 50 cards at 10 an hour


def test_a_long_stop_starts_the_pace_again():
    # Five cards at 07:00-07:04, nothing until 10:00 (three hours), then 10 cards every
    # 4 minutes to 10:36. At 10:40: 9 intervals over the 40 minutes since 10:00, 13.5 an
    # hour (counted from 07:00 it would be 14 over 3 h 40 min, 3.8 an hour).
    morning = every(NOW.replace(hour=7), 1, 5)
    later = every(NOW.replace(hour=10), 4, 10)
    now = NOW.replace(hour=10, minute=40)
    assert print_rate(morning + later, now) == pytest.approx(13.5)
    # Before enough cards of the new run the pace is unknown, not the morning's.
    assert print_rate(morning + later[:5], NOW.replace(hour=10, minute=17)) is None


def test_cards_older_than_the_window_do_not_count():
    old = every(NOW - timedelta(hours=20), 3, 30)
    assert print_rate(old, NOW) is None


@pytest.mark.parametrize(("at", "now", "said"), [
    ("2026-11-24T14:30:00+07:00", "2026-11-24T09:00:00+07:00", "14:30 today"),
    ("2026-11-25T09:10:00+07:00", "2026-11-24T09:00:00+07:00", "09:10 tomorrow"),
    ("2026-11-25T00:10:00+07:00", "2026-11-24T23:50:00+07:00", "00:10 tomorrow"),
    ("2026-11-30T10:05:00+07:00", "2026-11-24T09:00:00+07:00", "10:05 Mon 30 Nov"),
    ("2027-01-05T08:00:00+07:00", "2026-12-30T09:00:00+07:00", "08:00 Tue 5 Jan 2027"),
    ("2026-11-23T16:00:00+07:00", "2026-11-24T09:00:00+07:00", "16:00 yesterday"),
    # A station in Makassar (UTC+8) seen from Jakarta (UTC+7): said in Jakarta's time.
    ("2026-11-25T00:30:00+08:00", "2026-11-24T09:00:00+07:00", "23:30 today"),
])
def test_a_run_out_time_is_said_as_a_day_and_a_time_of_day(at, now, said):
    assert clock(at, now=now) == said


def test_clock_reads_this_pcs_clock_when_not_told_the_time():
    soon = datetime.now().astimezone() + timedelta(minutes=1)
    assert clock(soon.isoformat()) in (f"{soon:%H:%M} today", f"{soon:%H:%M} tomorrow")


def test_watch_says_the_run_out_time_the_same_way():
    from printstation.agent.central.cli import format_event

    soon = datetime.now().astimezone() + timedelta(minutes=1)
    line = format_event({"schema": "printstation.telemetry/2", "at": NOW.isoformat(),
                         "station_id": "s1", "seq": 7, "state": "ready", "consumables": [],
                         "cards_left": 50, "first_to_run_out": "ribbon",
                         "runs_out_at": soon.isoformat(), "queued_jobs": 0})
    assert f"50 cards left (ribbon first, ~{clock(soon.isoformat())})" in line
    assert soon.isoformat()[:16] not in line
    line = format_event({"schema": "printstation.telemetry/2", "at": NOW.isoformat(),
                         "station_id": "s1", "seq": 8, "state": "ready", "consumables": [],
                         "cards_left": 50, "first_to_run_out": "ribbon", "runs_out_at": None,
                         "queued_jobs": 0})
    assert "50 cards left (ribbon first; not enough printing yet to forecast when)" in line


def test_consumables_that_allow_as_many_cards_run_out_together():
    """A new ribbon, film roll and box of blanks all allow 498 cards: none runs out first."""
    tied = forecast({"ribbon": 996, "film": 996, "cards": 498}, USE, [], NOW)
    assert (tied.cards_left, tied.run_out_together) == (498, ("ribbon", "film", "cards"))
    alone = forecast({"ribbon": 990, "film": 996, "cards": 498}, USE, [], NOW)
    assert (alone.first_to_run_out, alone.run_out_together) == ("ribbon", ("ribbon",))
