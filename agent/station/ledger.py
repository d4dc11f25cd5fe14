"""The blank ledger: every blank the station was given, and where each one went.

An office is given a counted number of blanks and must account for each: loaded = issued +
spoiled + test + removed (taken out unprinted, `printstation unload cards`) + still in the
feeder. The feeder figure is the printer's own count where it
reads one, else the agent's; with the printer's count the balance is a real check (a blank
drawn behind the agent's back, or blanks put in without `printstation load`, break it).

The check's line and the daily report are in the agent's language; the CSV is data (its
columns stay English).
"""

from __future__ import annotations

from typing import Any

from printstation.agent.i18n import _, labels, ngettext
from printstation.agent.station.consumables import Level, amount
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
    figures = {"loaded": b["loaded"], "issued": b["issued"], "spoiled": b["spoiled"],
               "test": b["test"], "removed": b.get("removed", 0), "in_feeder": b["in_feeder"]}
    printer = b["in_feeder_source"] == "printer"
    if b["balanced"]:
        if printer:
            return _("balanced: loaded {loaded} = issued {issued} + spoiled {spoiled} + test "
                     "{test} + removed {removed} + in the feeder {in_feeder} (printer "
                     "count)").format(**figures)
        return _("balanced: loaded {loaded} = issued {issued} + spoiled {spoiled} + test "
                 "{test} + removed {removed} + in the feeder {in_feeder} (agent "
                 "count)").format(**figures)
    if printer:
        line = _("loaded {loaded} vs issued {issued} + spoiled {spoiled} + test {test} + "
                 "removed {removed} + in the feeder {in_feeder} (printer count)").format(
            **figures)
    else:
        line = _("loaded {loaded} vs issued {issued} + spoiled {spoiled} + test {test} + "
                 "removed {removed} + in the feeder {in_feeder} (agent count)").format(
            **figures)
    n = b["unaccounted"]
    if n > 0:
        why = ngettext(
            "{n} blank unaccounted for: drawn without a ledger row, or taken out of the "
            "feeder (once found, record blanks taken out with `printstation unload cards "
            "--count {n} --why ...`)",
            "{n} blanks unaccounted for: drawn without a ledger row, or taken out of the "
            "feeder (once found, record blanks taken out with `printstation unload cards "
            "--count {n} --why ...`)", n).format(n=n)
    else:
        why = ngettext("{n} blank more than loaded: put in the feeder without `printstation "
                       "load cards`",
                       "{n} blanks more than loaded: put in the feeder without `printstation "
                       "load cards`", -n).format(n=-n)
    return _("NOT balanced: {why}; {figures}").format(why=why, figures=line)


def _aligned(pairs: list[tuple[str, object]]) -> list[str]:
    """`title value` lines with the values in one column, whatever the titles' language."""
    width = max(len(title) for title, _value in pairs) + 1
    return [f"{title:{width}}{value}" for title, value in pairs]


def daily_report(journal: Journal, day: str, b: dict[str, Any], station_id: str) -> str:
    """What an office head hands in: cards printed, spoiled by reason, consumables used."""
    rows = [d for d in journal.cards.ledger_days() if d["day"] == day]
    reasons = journal.cards.spoiled_reasons(day)
    loads = journal.cards.loads(day)
    issued = sum(d["issued"] for d in rows)
    spoiled = sum(d["spoiled"] for d in rows)
    totals = _aligned([(_("Cards printed (issued):"), issued), (_("Blanks spoiled:"), spoiled),
                       (_("Test cards:"), sum(d["test"] for d in rows)),
                       (_("Blanks taken out:"), sum(d["removed"] for d in rows))])
    lines = [_("Card printing report, station {station}, {day}").format(station=station_id,
                                                                       day=day), "",
             *totals[:2]]
    lines += [f"  {reason}: {n}" for reason, n in sorted(reasons.items())]
    lines += totals[2:]
    for d in rows:
        lines.append("  " + _("stock {stock}: loaded {loaded}, issued {issued}, spoiled "
                              "{spoiled}, test {test}, removed {removed}").format(**d))
    lines += ["", *_aligned([
        (_("Ribbon used:"), amount(sum(d["ribbon_used"] for d in rows), "prints")),
        (_("Film used:"), amount(sum(d["film_used"] for d in rows), "panels"))]), "",
              _("Loaded this day:")]
    lines += [f"  {ld['at'][11:16]} " + _("{what} {type} {amount} by {who}").format(
                  what=labels.consumable(ld["kind"]), type=ld["type"] or "",
                  amount=ld["amount"], who=ld["who"]) for ld in loads] or ["  " + _("nothing")]
    fixed = journal.cards.corrections(day)
    if fixed:
        lines += ["", _("Counts corrected this day:")]
        lines += [f"  {c['at'][11:16]} " + _("{what} {before} -> {after} by {who}: "
                                             "{why}").format(
                      what=labels.consumable(c["kind"]), before=c["before"],
                      after=c["after"], who=c["who"], why=c["why"]) for c in fixed]
    lines += ["", _("Blank ledger now: {check}").format(check=explain(b))]
    return "\n".join(lines) + "\n"
