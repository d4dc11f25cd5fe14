"""What the station is doing, and what an operator should do about a fault: pure functions.

The state in one word (`ready`, `printing`, `paused`, `blocked`, `offline`, `stopping`) and
why it is not taking jobs, from what the printer thread last saw and the station's flags;
and the advice shown for each fault on every surface (status, web page, alerts, probe).
Drivers only name faults; the words for operators live here, with the agent, in its
language (the advice is marked in English and translated where it is given).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from printstation.agent.i18n import N_, _
from printstation.drivers.base import FaultCode, PrinterStatus

#: What an operator should do for each fault, shown on every surface (in English: give it
#: as `_(FAULT_ADVICE[fault])`, or through `fault_advice`).
FAULT_ADVICE: dict[FaultCode, str] = {
    FaultCode.JAM: N_("Card jam: open the printer, remove the card, close it"),
    FaultCode.RIBBON_OUT: N_("Ribbon out: load a new ribbon"),
    FaultCode.FILM_OUT: N_("Retransfer film out: load a new film roll"),
    FaultCode.COVER_OPEN: N_("Cover open: close the printer cover"),
    FaultCode.FEEDER_EMPTY: N_("Feeder empty: load blank cards"),
    FaultCode.HOPPER_FULL: N_("Output hopper full: take the printed cards out"),
    FaultCode.OFFLINE: N_("Printer offline: check its power and cable"),
    FaultCode.HEAD_ERROR: N_("Print head error: call a technician"),
    FaultCode.PROTOCOL: N_("Printer replies are unreadable: check the cable, restart the "
                           "printer"),
    FaultCode.OTHER: N_("Printer error: see the printer's display"),
    FaultCode.ENCODER: N_("Chip reader not answering: check its cable and that the card "
                          "reader service (pcscd) runs"),
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
        return _("Ribbon out: load a new {type} ribbon; printing goes on by itself").format(
            type=ribbon_type)
    if fault == FaultCode.FEEDER_EMPTY and feeder_stock:
        return _("Feeder empty: put {stock} blanks in the feeder, then record them with "
                 "`printstation load cards`").format(stock=feeder_stock)
    return _(FAULT_ADVICE[fault]) if fault in FAULT_ADVICE else fault.value


def journal_problem(why: str | None, *, stuck: bool, state_dir: Path) -> str | None:
    """Why the station cannot store (a full disk): nothing is taken or printed then."""
    if why is None:
        return None
    if stuck:
        return _("the journal cannot be written ({why}) and the station stopped taking "
                 "jobs: restart the agent; if it happens again, call a technician "
                 "(the journal in {folder} may be damaged)").format(why=why, folder=state_dir)
    if "full" in why:
        return _("the journal cannot be written ({why}): free space on the disk of "
                 "{folder}; jobs wait in the broker meanwhile").format(why=why,
                                                                      folder=state_dir)
    return _("the journal cannot be written ({why}): the station takes no jobs until "
             "it can; if this lasts, restart the agent and check the disk of {folder}").format(
        why=why, folder=state_dir)


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
        return StationState(StationMode.STOPPING, None, False, _("the agent is stopping"))
    if journal:
        return StationState(StationMode.BLOCKED, journal, False, journal)
    if status.state == "offline":
        if printer_error is None:
            return StationState(StationMode.OFFLINE, _("printer offline"), False,
                                _("printer offline"))
        return StationState(StationMode.OFFLINE, printer_error, False,
                            _("printer offline: {why}").format(why=printer_error))
    if status.faults:
        why = "; ".join(advice)
        return StationState(StationMode.BLOCKED, why, False, why)
    if held_for_stock:
        return StationState(StationMode.BLOCKED, held_for_stock, False, held_for_stock)
    if paused:
        return StationState(StationMode.PAUSED, None, False, _("paused by an operator"))
    if short_for_a_card:
        return StationState(StationMode.BLOCKED, short_for_a_card, False, short_for_a_card)
    if current_job is not None:
        return StationState(StationMode.PRINTING, None, True, None)
    return StationState(StationMode.READY, None, True, None)
