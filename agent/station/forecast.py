"""How many cards each consumable still allows, which ends first, and when, at today's pace.

Pure functions of the levels, what recent cards used and when they came out, so the figures
can be checked against a hand-computed case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

#: Cards older than this do not count towards the print rate: yesterday's pace says little
#: about this afternoon's.
RATE_WINDOW = timedelta(hours=8)
#: Recent cards that set the average use per card.
USE_SAMPLE = 50


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
    """Cards per hour over the recent run of cards, or None with fewer than two."""
    times = sorted(t for t in card_times if now - t <= RATE_WINDOW)
    if len(times) < 2:
        return None
    span = (times[-1] - times[0]).total_seconds() / 3600
    return (len(times) - 1) / span if span > 0 else None


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
                    runs_out_at=first.runs_out_at if first else None)
