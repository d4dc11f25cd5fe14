"""What the operator page and the metrics may see of the station, and the one way to act.

A read-only view: the station's state and telemetry, its jobs (ids, references, states,
never their content), the jobs an operator must check and what the printer said of them,
the card ledger's counts, the broker's connections and the loops' health. One exception to
"never their content": `needs_check_body` hands the page the stored message of a job in
`needs_check`, from which it draws the card's front for the operator deciding it. An
operator's action from the page goes through `act`, the same command table the control
socket uses, and is recorded the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from printstation.agent.config import Settings
from printstation.agent.i18n import _
from printstation.agent.station.actions import COMMANDS, Commands, ControlError
from printstation.agent.station.journal import JobState
from printstation.agent.station.needscheck import open_checks
from printstation.agent.station.station import Station
from printstation.agent.station.telemetry import TelemetryLoop

log = structlog.get_logger("printstation.web")


class StationView:
    def __init__(self, station: Station, telemetry: TelemetryLoop, commands: Commands,
                 health: Callable[[], list[str]]):
        self._station = station
        self._telemetry = telemetry
        self._commands = commands
        self._health = health

    @property
    def settings(self) -> Settings:
        return self._station.settings

    @property
    def station_id(self) -> str:
        return self._station.settings.station_id

    def telemetry(self) -> dict[str, Any]:
        return self._telemetry.event()

    def state(self) -> str:
        return self._station.state().state

    def paused(self) -> bool:
        """An operator paused printing (whatever else holds it too)."""
        return self._station.paused()

    def current_job(self) -> str | None:
        return self._station.printer.snapshot.current_job

    def broker_up(self) -> bool:
        return self._station.broker.all_up

    def broker_connections(self) -> dict[str, bool]:
        return dict(self._station.broker.up)

    def health(self) -> list[str]:
        return self._health()

    def recent_jobs(self, limit: int) -> list[dict[str, Any]]:
        return self._station.journal.jobs.recent(limit)

    def listed_jobs(self, states: frozenset[JobState],
                    limit: int) -> tuple[list[dict[str, Any]], int]:
        """Jobs in `states`, the next to print first, and how many there are."""
        return self._station.journal.jobs.listed(states, limit)

    def checks(self) -> list[dict[str, Any]]:
        """The jobs waiting for an operator's decision, with what to look for."""
        return open_checks(self._station.journal, self._station.printer.snapshot.status)

    def needs_check_body(self, job_id: str) -> bytes | None:
        """The stored message of a job in `needs_check` (its card's images), else None."""
        row = self._station.journal.jobs.get(job_id)
        if row is None or row.state != JobState.NEEDS_CHECK:
            return None
        return row.body

    def alerts(self) -> list[dict[str, Any]]:
        """Open alerts, most severe first, each with when it was raised."""
        return self._station.alerts.open_alerts_since()

    def card_outcomes(self) -> dict[tuple[str, str], int]:
        return self._station.journal.cards.outcomes()

    def jobs_by_state(self) -> dict[str, int]:
        return self._station.journal.jobs.by_state()

    def jobs_ended(self) -> dict[str, int]:
        return self._station.journal.jobs.ended()

    def backlog(self) -> int:
        return self._station.journal.outbox.backlog()

    def act(self, request: dict[str, Any], who: str) -> dict[str, Any]:
        """An operator's action from the page: `{"ok": true, ...}` or the one-line error,
        in the agent's language (as the control socket's errors are)."""
        name = request.pop("cmd", None)
        if not isinstance(name, str) or name not in COMMANDS:
            return {"ok": False, "error": _("unknown command {name}").format(name=repr(name))}
        try:
            return {"ok": True, **self._commands.run(name, request, who)}
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # one line for the page, never a traceback
            log.error("web_action_failed", command=name, error=type(exc).__name__)
            return {"ok": False, "error": _("the agent could not do it ({error})").format(
                error=type(exc).__name__)}
