"""How many cards each consumable still allows, which ends first, and when, at today's pace.

Pure functions of the levels, what recent cards used and when they came out, so the figures
can be checked against a hand-computed case.

The pace is the station's throughput, not the printer's speed: the cards that came out over
the time since the first of them, pauses between batches included. Until enough cards came
out over long enough (MIN_CARDS over MIN_SPAN) there is no pace and no time is forecast:
three cards a minute apart are the printer's speed, and a forecast from them would put the
ribbon's end hours or days too early.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from printstation.agent.i18n import N_, _

#: Cards older than this do not count towards the print rate: yesterday's pace says little
#: about this afternoon's.
RATE_WINDOW = timedelta(hours=8)
#: Recent cards that set the average use per card.
USE_SAMPLE = 50
#: The fewest cards, and the shortest time from the first of them to now, that make a pace.
MIN_CARDS = 10
MIN_SPAN = timedelta(minutes=30)
#: A stop this long (a night, a day off) ends a run of printing: the pace counts from the
#: first card after it.
BREAK = timedelta(hours=2)
#: What the surfaces say in place of a time while there is no pace (in English; shown as
#: `_(NO_PACE)`).
NO_PACE = N_("not enough printing yet to forecast when")
# TRANSLATORS: a weekday, short, in a date such as "Mon 30 Nov"
WEEKDAYS = (N_("Mon"), N_("Tue"), N_("Wed"), N_("Thu"), N_("Fri"), N_("Sat"), N_("Sun"))
# TRANSLATORS: a month, short, in a date such as "Mon 30 Nov"
MONTHS = (N_("Jan"), N_("Feb"), N_("Mar"), N_("Apr"), N_("May"), N_("Jun"), N_("Jul"),
          N_("Aug"), N_("Sep"), N_("Oct"), N_("Nov"), N_("Dec"))


@dataclass(frozen=True)
class Outlook:
    kind: str
    cards_left: int | None
    runs_out_at: datetime | None


@dataclass(frozen=True)
class Forecast:
    outlook: dict[str, Outlook]
    cards_left: int | None
    first_to_run_out: str | None
    rate_per_hour: float | None
    runs_out_at: datetime | None
    #: Every consumable that allows as few cards as the first: more than one when they are
    #: tied (a new ribbon, film and box of blanks), when no single one "runs out first".
    run_out_together: tuple[str, ...] = ()


def use_per_card(recent: list[dict], fallback: dict[str, float]) -> dict[str, float]:
    """Average ribbon prints and film panels per card over recent good cards.

    `recent` rows hold `ribbon_use` and `film_use`; with none recorded yet, `fallback`
    (what a two-sided card would take) stands in. A blank is always one blank.
    """
    rows = [r for r in recent[:USE_SAMPLE] if r.get("ribbon_use") is not None]
    use = {"cards": 1.0}
    for kind in ("ribbon", "film"):
        if rows:
            use[kind] = sum(r.get(f"{kind}_use") or 0 for r in rows) / len(rows)
        else:
            use[kind] = fallback.get(kind, 0.0)
    return use


def print_rate(card_times: list[datetime], now: datetime) -> float | None:
    """Cards per hour at the station's pace, or None until there is one.

    The cards of the current run (within RATE_WINDOW, after the last BREAK) over the time
    from the first of them to now, so a station that stops printing slows its forecast
    down; None with fewer than MIN_CARDS or less than MIN_SPAN of printing.
    """
    times = sorted(t for t in card_times if now - t <= RATE_WINDOW)
    for i in range(len(times) - 1, 0, -1):
        if times[i] - times[i - 1] >= BREAK:
            times = times[i:]
            break
    if len(times) < MIN_CARDS or now - times[0] < MIN_SPAN:
        return None
    return (len(times) - 1) / ((now - times[0]).total_seconds() / 3600)


def when_said(at: datetime, now: datetime) -> str:
    """A time ahead as an operator reads it, in `now`'s time zone: `14:30 today`,
    `09:10 tomorrow`, `10:05 Mon 30 Nov` (with the year when it is not this one).

    Names are spelled here, in the process's language, not by strftime, so the words do not
    change with the C locale.
    """
    at = at.astimezone(now.tzinfo) if at.tzinfo and now.tzinfo else at
    time = f"{at:%H:%M}"
    days = (at.date() - now.date()).days
    if days == 0:
        return _("{time} today").format(time=time)
    if days == 1:
        return _("{time} tomorrow").format(time=time)
    if days == -1:
        return _("{time} yesterday").format(time=time)
    weekday, month = _(WEEKDAYS[at.weekday()]), _(MONTHS[at.month - 1])
    if at.year != now.year:
        return _("{time} {weekday} {day} {month} {year}").format(
            time=time, weekday=weekday, day=at.day, month=month, year=at.year)
    return _("{time} {weekday} {day} {month}").format(time=time, weekday=weekday, day=at.day,
                                                     month=month)


def forecast(remaining: dict[str, int | None], use: dict[str, float],
             card_times: list[datetime], now: datetime) -> Forecast:
    rate = print_rate(card_times, now)
    outlook: dict[str, Outlook] = {}
    for kind, left in remaining.items():
        per = use.get(kind, 0.0)
        if left is None or per <= 0:
            outlook[kind] = Outlook(kind, None, None)
            continue
        cards = math.floor(left / per + 1e-9)
        when = now + timedelta(hours=cards / rate) if rate else None
        outlook[kind] = Outlook(kind, cards, when)
    known = [o for o in outlook.values() if o.cards_left is not None]
    first = min(known, key=lambda o: o.cards_left) if known else None  # type: ignore[arg-type]
    return Forecast(outlook=outlook,
                    cards_left=first.cards_left if first else None,
                    first_to_run_out=first.kind if first else None,
                    rate_per_hour=rate,
                    runs_out_at=first.runs_out_at if first else None,
                    run_out_together=tuple(o.kind for o in known
                                           if first and o.cards_left == first.cards_left))
