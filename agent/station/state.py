"""What the station is doing, and what an operator should do about a fault: pure functions.

The state in one word (`ready`, `printing`, `paused`, `blocked`, `offline`, `stopping`) and
why it is not taking jobs, from what the printer thread last saw and the station's flags;
and the advice shown for each fault on every surface (status, web page, alerts, probe).
Drivers only name faults; the words for operators live here, with the agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from printstation.drivers.base import FaultCode, PrinterStatus

#: What an operator should do for each fault, shown on every surface.
FAULT_ADVICE: dict[FaultCode, str] = {
    FaultCode.JAM: "Card jam: open the printer, remove the card, close it",
    FaultCode.RIBBON_OUT: "Ribbon out: load a new ribbon",
    FaultCode.FILM_OUT: "Retransfer film out: load a new film roll",
    FaultCode.COVER_OPEN: "Cover open: close the printer cover",
    FaultCode.FEEDER_EMPTY: "Feeder empty: load blank cards",
    FaultCode.HOPPER_FULL: "Output hopper full: take the printed cards out",
    FaultCode.OFFLINE: "Printer offline: check its power and cable",
    FaultCode.HEAD_ERROR: "Print head error: call a technician",
    FaultCode.PROTOCOL: "Printer replies are unreadable: check the cable, restart the printer",
    FaultCode.OTHER: "Printer error: see the printer's display",
}


class StationMode(StrEnum):
    """The station's state in one word, as telemetry, metrics and the operator page show it."""

    READY = "ready"
    PRINTING = "printing"
    PAUSED = "paused"
    BLOCKED = "blocked"
    OFFLINE = "offline"
    STOPPING = "stopping"


@dataclass(frozen=True)
class StationState:
    state: StationMode
    blocked_reason: str | None
    taking_jobs: bool
    not_taking_because: str | None


def fault_advice(fault: FaultCode, *, ribbon_type: str | None = None,
                 feeder_stock: str | None = None) -> str:
    """What the operator should do, naming the ribbon or blanks to load where known."""
    if fault == FaultCode.RIBBON_OUT and ribbon_type:
        return f"Ribbon out: load a new {ribbon_type} ribbon; printing goes on by itself"
    if fault == FaultCode.FEEDER_EMPTY and feeder_stock:
        return f"Feeder empty: load {feeder_stock} blanks and record them with Load cards"
    return FAULT_ADVICE.get(fault, fault.value)


def journal_problem(why: str | None, *, stuck: bool, state_dir: Path) -> str | None:
    """Why the station cannot store (a full disk): nothing is taken or printed then."""
    if why is None:
        return None
    if stuck:
        return (f"the journal cannot be written ({why}) and the station stopped taking "
                f"jobs: restart the agent; if it happens again, call a technician "
                f"(the journal in {state_dir} may be damaged)")
    if "full" in why:
        return (f"the journal cannot be written ({why}): free space on the disk of "
                f"{state_dir}; jobs wait in the broker meanwhile")
    return (f"the journal cannot be written ({why}): the station takes no jobs until "
            f"it can; if this lasts, restart the agent and check the disk of {state_dir}")


def station_state(*, stopping: bool, journal: str | None, status: PrinterStatus,
                  printer_error: str | None, advice: list[str], held_for_stock: str | None,
                  paused: bool, short_for_a_card: str | None,
                  current_job: str | None) -> StationState:
    """The station's state, the first reason that applies winning.

    `advice` is the operator's advice for each of the printer's faults, `held_for_stock`
    why the next job waits for stock, `short_for_a_card` why even a one-sided card could
    not start now.
    """
    if stopping:
        return StationState(StationMode.STOPPING, None, False, "the agent is stopping")
    if journal:
        return StationState(StationMode.BLOCKED, journal, False, journal)
    if status.state == "offline":
        why = printer_error or "printer offline"
        return StationState(StationMode.OFFLINE, why, False, f"printer offline: {why}")
    if status.faults:
        why = "; ".join(advice)
        return StationState(StationMode.BLOCKED, why, False, why)
    if held_for_stock:
        return StationState(StationMode.BLOCKED, held_for_stock, False, held_for_stock)
    if paused:
        return StationState(StationMode.PAUSED, None, False, "paused by an operator")
    if short_for_a_card:
        return StationState(StationMode.BLOCKED, short_for_a_card, False, short_for_a_card)
    if current_job is not None:
        return StationState(StationMode.PRINTING, None, True, None)
    return StationState(StationMode.READY, None, True, None)
