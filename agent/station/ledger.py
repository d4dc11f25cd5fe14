"""The blank ledger: every blank the station was given, and where each one went.

An office is given a counted number of blanks and must account for each: loaded = issued +
spoiled + test + removed (taken out unprinted, `printstation unload cards`) + still in the
feeder. The feeder figure is the printer's own count where it
reads one, else the agent's; with the printer's count the balance is a real check (a blank
drawn behind the agent's back, or blanks put in without `printstation load`, break it).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from printstation.agent.station.consumables import Level
from printstation.agent.station.journal import Journal

CSV_FIELDS = ("day", "stock", "loaded", "issued", "spoiled", "test", "removed", "ribbon_used",
              "film_used")


def balance(journal: Journal, cards: Level | None) -> dict[str, Any]:
    days = journal.cards.ledger_days()
    loaded = sum(d["loaded"] for d in days)
    issued = sum(d["issued"] for d in days)
    spoiled = sum(d["spoiled"] for d in days)
    test = sum(d["test"] for d in days)
    removed = sum(d["removed"] for d in days)
    drawn = issued + spoiled + test
    if cards is not None and cards.read is not None:
        in_feeder, source = cards.read, "printer"
    elif cards is not None and cards.counted is not None:
        in_feeder, source = cards.counted, "agent"
    else:
        in_feeder, source = max(loaded - drawn - removed, 0), "agent"
    unaccounted = loaded - drawn - removed - in_feeder
    return {"stock": cards.type if cards else None, "loaded": loaded, "issued": issued,
            "spoiled": spoiled, "test": test, "removed": removed, "drawn": drawn,
            "in_feeder": in_feeder,
            "in_feeder_source": source, "unaccounted": unaccounted,
            "balanced": unaccounted == 0}


def explain(b: dict[str, Any]) -> str:
    """One line an office head can read: the balance, and what is wrong if it is off."""
    line = (f"loaded {b['loaded']} = issued {b['issued']} + spoiled {b['spoiled']} + test "
            f"{b['test']} + removed {b.get('removed', 0)} + in the feeder {b['in_feeder']} "
            f"({b['in_feeder_source']} count)")
    if b["balanced"]:
        return f"balanced: {line}"
    n = b["unaccounted"]
    if n > 0:
        why = (f"{n} blank{'s' if n != 1 else ''} unaccounted for: drawn without a ledger "
               "row, or taken out of the feeder (once found, record blanks taken out with "
               f"`printstation unload cards --count {n} --why ...`)")
    else:
        why = (f"{-n} blank{'s' if n != -1 else ''} more than loaded: put in the feeder "
               "without `printstation load cards`")
    return f"NOT balanced: {why}; {line.replace(' = ', ' vs ')}"


def to_csv(days: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(days)
    return out.getvalue()


def daily_report(journal: Journal, day: str, b: dict[str, Any], station_id: str) -> str:
    """What an office head hands in: cards printed, spoiled by reason, consumables used."""
    rows = [d for d in journal.cards.ledger_days() if d["day"] == day]
    reasons = journal.cards.spoiled_reasons(day)
    loads = journal.cards.loads(day)
    issued = sum(d["issued"] for d in rows)
    spoiled = sum(d["spoiled"] for d in rows)
    lines = [f"Card printing report, station {station_id}, {day}", "",
             f"Cards printed (issued): {issued}",
             f"Blanks spoiled:         {spoiled}"]
    lines += [f"  {reason}: {n}" for reason, n in sorted(reasons.items())]
    lines += [f"Test cards:             {sum(d['test'] for d in rows)}",
              f"Blanks taken out:       {sum(d['removed'] for d in rows)}"]
    for d in rows:
        lines.append(f"  stock {d['stock']}: loaded {d['loaded']}, issued {d['issued']}, "
                     f"spoiled {d['spoiled']}, test {d['test']}, removed {d['removed']}")
    lines += ["", f"Ribbon used: {sum(d['ribbon_used'] for d in rows)} prints",
              f"Film used:   {sum(d['film_used'] for d in rows)} panels", "",
              "Loaded this day:"]
    lines += [f"  {ld['at'][11:16]} {ld['kind']} {ld['type'] or ''} {ld['amount']} "
              f"by {ld['who']}" for ld in loads] or ["  nothing"]
    fixed = journal.cards.corrections(day)
    if fixed:
        lines += ["", "Counts corrected this day:"]
        lines += [f"  {c['at'][11:16]} {c['kind']} {c['before']} -> {c['after']} by "
                  f"{c['who']}: {c['why']}" for c in fixed]
    lines += ["", f"Blank ledger now: {explain(b)}"]
    return "\n".join(lines) + "\n"
