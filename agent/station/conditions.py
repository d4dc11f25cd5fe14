"""Which alert conditions hold now, from the station's state; `AlertBook` raises and clears.

Thresholds are in cards: "warn when the ribbon allows fewer than 100 more cards" means the
same to an operator whatever the ribbon's unit. An alert's message is in the agent's
language; its condition name is a code and stays as it is.
"""

from __future__ import annotations

from printstation.agent.config import Threshold
from printstation.agent.i18n import N_, _, ngettext
from printstation.agent.station.alerts import Condition, clears_above
from printstation.agent.station.consumables import Level, amount, correct_advice, load_advice
from printstation.agent.station.forecast import Forecast
from printstation.agent.station.state import FAULT_ADVICE
from printstation.drivers.base import FaultCode, PrinterStatus

# TRANSLATORS: a consumable at the start of an alert ("Ribbon low: ...")
NAMES = {"ribbon": N_("Ribbon"), "film": N_("Film"), "cards": N_("Blanks")}


def consumable_conditions(levels: list[Level], fc: Forecast, thresholds: dict[str, Threshold],
                          active: dict[str, Condition]) -> list[Condition]:
    found: list[Condition] = []
    for level in levels:
        kind, name = level.kind, _(NAMES[level.kind])
        if level.remaining is None:
            found.append(Condition(f"{kind}_unknown", "warning", _(
                "{name} level unknown: the printer does not read it; {advice}").format(
                    name=name, advice=load_advice(kind))))
            continue
        if level.disagreement:
            found.append(Condition(f"{kind}_count_mismatch", "warning",
                                   f"{name}: {level.disagreement}; {correct_advice(kind)}"))
        left = fc.outlook[kind].cards_left if kind in fc.outlook else None
        if left is None:
            continue
        what = ngettext("{amount} left, about {n} card", "{amount} left, about {n} cards",
                        left).format(amount=amount(level.remaining, level.unit), n=left)
        if left == 0:
            found.append(Condition(f"{kind}_out", "critical", _(
                "{name} out ({what}): {advice}").format(name=name, what=what,
                                                        advice=load_advice(kind))))
        threshold = thresholds.get(kind)
        if threshold is None:
            continue
        severity = ("critical" if left <= threshold.critical else
                    "warning" if left <= threshold.warning else None)
        before = active.get(f"{kind}_low")
        if before is not None:  # hysteresis: clear or step down only when clearly above
            if before.severity == "critical" and left <= clears_above(threshold.critical):
                severity = "critical"
            elif severity is None and left <= clears_above(threshold.warning):
                severity = "warning"
        if severity:
            found.append(Condition(f"{kind}_low", severity,
                                   _("{name} low: {what}").format(name=name, what=what)))
    return found


def printer_conditions(status: PrinterStatus, error: str | None) -> list[Condition]:
    if status.state == "offline":
        advice = _(FAULT_ADVICE[FaultCode.OFFLINE])
        return [Condition("printer_offline", "critical",
                          f"{advice}" + (f" ({error})" if error else ""))]
    return [Condition(f"printer_fault_{f.value}", "critical",
                      _(FAULT_ADVICE[f]) if f in FAULT_ADVICE else f.value)
            for f in status.faults]
