"""Which alert conditions hold now, from the station's state; `AlertBook` raises and clears.

Thresholds are in cards: "warn when the ribbon allows fewer than 100 more cards" means the
same to an operator whatever the ribbon's unit.
"""

from __future__ import annotations

from printstation.agent.config import Threshold
from printstation.agent.station.alerts import Condition, clears_above
from printstation.agent.station.consumables import Level, amount, correct_advice, load_advice
from printstation.agent.station.forecast import Forecast
from printstation.agent.station.state import FAULT_ADVICE
from printstation.drivers.base import FaultCode, PrinterStatus

NAMES = {"ribbon": "Ribbon", "film": "Film", "cards": "Blanks"}


def consumable_conditions(levels: list[Level], fc: Forecast, thresholds: dict[str, Threshold],
                          active: dict[str, Condition]) -> list[Condition]:
    found: list[Condition] = []
    for level in levels:
        kind, name = level.kind, NAMES[level.kind]
        if level.remaining is None:
            found.append(Condition(f"{kind}_unknown", "warning",
                                   f"{name} level unknown: the printer does not read it; "
                                   f"{load_advice(kind)}"))
            continue
        if level.disagreement:
            found.append(Condition(f"{kind}_count_mismatch", "warning",
                                   f"{name}: {level.disagreement}; {correct_advice(kind)}"))
        left = fc.outlook[kind].cards_left if kind in fc.outlook else None
        if left is None:
            continue
        what = f"{amount(level.remaining, level.unit)} left, about {left} cards"
        if left == 0:
            found.append(Condition(f"{kind}_out", "critical",
                                   f"{name} out ({what}): {load_advice(kind)}"))
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
            found.append(Condition(f"{kind}_low", severity, f"{name} low: {what}"))
    return found


def printer_conditions(status: PrinterStatus, error: str | None) -> list[Condition]:
    if status.state == "offline":
        advice = FAULT_ADVICE[FaultCode.OFFLINE]
        return [Condition("printer_offline", "critical",
                          f"{advice}" + (f" ({error})" if error else ""))]
    return [Condition(f"printer_fault_{f.value}", "critical", FAULT_ADVICE.get(f, f.value))
            for f in status.faults]
