"""Each roll's yield against its rating, in figures and in the words an office quotes.

A supplier rates a ribbon for 200 prints; the office's evidence that one gave 125 is the
roll's own record: what its good cards used, what spoiled cards used (counted apart, so
the office's own waste is not the roll's fault), and what it gave in all against what it
held when loaded. The figures come from the journal (`journal.rolls.figures`); this module
only reads them. The summary is a sentence for the office, in the agent's language.
"""

from __future__ import annotations

from typing import Any

from printstation.agent.i18n import _

UNITS = {"ribbon": "prints", "film": "panels"}


def roll_report(rolls: list[dict[str, Any]], left_now: dict[str, int | None]) -> list[
        dict[str, Any]]:
    """Every roll with `used`, `left`, `yield_pct` and a `summary` line.

    `left_now` is what is left on the rolls in the printer (the printer's reading, else the
    agent's count). A finished roll gave `used` = good + spoiled use; its yield is that
    share of what it held when loaded (its rating, unless loaded part-used).
    """
    return [_one(r, left_now) for r in rolls]


def _one(r: dict[str, Any], left_now: dict[str, int | None]) -> dict[str, Any]:
    finished = r["replaced_at"] is not None
    used = (r["good_use"] or 0) + (r["spoiled_use"] or 0)
    held = r["started_with"] if r["started_with"] is not None else r["capacity"]
    left = r["left_at_replace"] if finished else left_now.get(r["kind"])
    pct = used * 100 // held if held else None
    parts = [_("rated {n}").format(n=r["capacity"]) if r["capacity"] else _("rating unknown")]
    if held is not None and r["capacity"] and held < r["capacity"]:
        parts.append(_("loaded with {n}").format(n=held))
    if finished:
        parts.append(_("gave {n} ({pct}%)").format(n=used, pct=pct) if pct is not None else
                     _("gave {n}").format(n=used))
        if left:
            parts.append(_("replaced with {n} left").format(n=left))
        summary = ", ".join(parts)
    else:
        parts.append(_("{n} used so far").format(n=used))
        if left is not None:
            parts.append(_("{n} left").format(n=left))
        summary = _("{summary} (in the printer)").format(summary=", ".join(parts))
    return {**r, "unit": UNITS[r["kind"]], "used": used, "left": left, "finished": finished,
            "yield_pct": pct if finished else None, "summary": summary}
