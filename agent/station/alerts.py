"""Alerts raised once when a condition starts and once when it clears (contract 4d).

The caller says, each time something may have changed, which conditions hold now; the book
compares with what it raised before and emits only the differences. What is raised is kept
in the journal, so a restart neither repeats an alert nor forgets to clear it. Levels that
hover around a threshold (a printer's reading that jitters, a few cards printed after a
small load) do not flap: a low-level alert clears only once the level is clearly above its
threshold again (see `clears_above`).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from printstation.agent import contract
from printstation.agent.station.journal import Journal

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Condition:
    name: str
    severity: str
    message: str


def clears_above(threshold: int) -> int:
    """The level above which a low alert for `threshold` clears: 10% (at least 1) higher."""
    return threshold + max(1, threshold // 10)


class AlertBook:
    def __init__(self, journal: Journal):
        self.journal = journal
        self._lock = threading.Lock()
        raw = json.loads(journal.store.get_meta("alerts", "{}") or "{}")
        self.active: dict[str, Condition] = {
            name: Condition(name, kept[0], kept[1]) for name, kept in raw.items()}
        #: When each open alert was raised (or got more severe), for the operator page.
        self.since: dict[str, str | None] = {
            name: kept[2] if len(kept) > 2 else None for name, kept in raw.items()}

    def update(self, now: list[Condition], *, only: str | None = None) -> list[dict]:
        """Raise what is new (or got more severe), clear what is gone; returns the alerts.

        With `only`, conditions whose name does not start with it are left as they are, so
        separate watchers (consumables, printer faults) can report independently.
        """
        with self._lock:
            wanted = {c.name: c for c in now}
            emitted: list[dict] = []
            for name, cond in wanted.items():
                before = self.active.get(name)
                if before is None or before.severity != cond.severity:
                    emitted.append(self._alert(cond, cleared=False))
                    self.since[name] = emitted[-1]["at"]
                self.active[name] = cond
            for name in list(self.active):
                if name in wanted or (only is not None and not name.startswith(only)):
                    continue
                emitted.append(self._alert(self.active.pop(name), cleared=True))
                self.since.pop(name, None)
            if emitted:
                self.journal.store.set_meta("alerts", json.dumps(
                    {n: [c.severity, c.message, self.since.get(n)]
                     for n, c in self.active.items()}))
            return emitted

    def _alert(self, cond: Condition, *, cleared: bool) -> dict:
        event = contract.AlertFields(severity=cond.severity,  # type: ignore[arg-type]
                                     condition=cond.name, message=cond.message, cleared=cleared)
        self.journal.outbox.emit_now(event)
        return {**event.model_dump(by_alias=True), "at": contract.now().isoformat()}

    def open_alerts(self) -> list[dict]:
        with self._lock:
            return [{"condition": c.name, "severity": c.severity, "message": c.message}
                    for c in sorted(self.active.values(),
                                    key=lambda c: -SEVERITY_RANK[c.severity])]

    def open_alerts_since(self) -> list[dict]:
        """The open alerts, each with when it was raised (`since`, None if not known)."""
        return [{**a, "since": self.since.get(a["condition"])} for a in self.open_alerts()]
