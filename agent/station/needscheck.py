"""A `needs_check` job put so that an operator can decide it.

The agent marks a job `needs_check` when it cannot know whether its card came out (the
printer link broke, the driver failed or the agent stopped while the card was inside). The
operator can: the printer's card counter was journaled just before the blank was drawn
(`jobs.counter_before`), and it counts every blank drawn since; what the printer said when
it happened is kept with the job (`jobs.check_report`). From both, and the card's front on
the operator page, this module says what to look for in the output hopper. `status`,
`jobs`, the operator page and the job's alert all show what `describe` returns.

The agent's `card_no` is its own number for every blank it saw leave the feeder (issued,
spoiled, test); the printer's counter counts blanks drawn over the printer's whole life
(cleaning cards and other PCs' cards included), so the two differ by a constant while this
agent is the printer's only user, and only the counter's *move* matters here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from printstation.agent.station.alerts import Condition
from printstation.agent.station.state import FAULT_ADVICE
from printstation.drivers.base import FaultCode, PrinterStatus

if TYPE_CHECKING:
    from printstation.agent.station.journal import Journal

#: The alert's condition for one job: `needs_check_<job_id>`, cleared once it is resolved.
CONDITION_PREFIX = "needs_check_"

#: This module's words for operators, in one place.
TEXT = {
    "link_broke": "the link to the printer broke while the card was inside ({detail})",
    "driver_error": "the printer's driver failed while the card was inside ({detail})",
    "agent_stopped": "the agent stopped while the card was inside; at the restart the "
                     "printer was {state}",
    "unknown": "the agent could not tell whether the card came out",
    "state_ready": "ready", "state_busy": "busy", "state_fault": "in fault",
    "state_offline": "not answering",
    "counter_at": "its card counter at {counter}",
    "look_here": "If a card with this photo and name is in the output hopper, it printed; "
                 "if it is not there (or it is in the reject box), it did not.",
    "look": "If the card whose front the operator page shows (`printstation web`) is in "
            "the output hopper, it printed; if it is not there (or it is in the reject box), "
            "it did not.",
    "no_counter_before": "The printer gave no card counter when this blank was due, so "
                         "the counter cannot help. ",
    "offline_now": "The printer is not answering, so its counter cannot be read now (it "
                   "was {before} when this card's blank was drawn). ",
    "not_moved": "The printer's counter still reads {before}, as before this card: no blank "
                 "seems to have left the feeder. ",
    "moved_one": "The printer's counter went from {before} to {now}: it drew this card's "
                 "blank and none since, so this card is the last one out, on top of the "
                 "output hopper (or in the reject box). ",
    "moved_many": "The printer's counter went from {before} to {now}: the printer counted "
                  "{n} cards since, this card's blank being the first, so unless cards were "
                  "taken out it lies under the {later} printed after it in the output "
                  "hopper. ",
    "alert": "Job {job_id} (reference {reference}) needs a check: {said}. Printer's card "
             "counter: {before} when its blank was drawn, {now} now. {advice} Then say which "
             "on the operator page or with `printstation resolve {job_id} --printed` or "
             "`--not-printed` (with --why).",
    "not_known": "not known",
    "no_reference": "none",
}


def fault_name(fault: FaultCode | str) -> str:
    """A fault's short name in words ("Cover open"), from the advice every surface shows."""
    try:
        code = FaultCode(fault)
    except ValueError:
        return str(fault)
    return FAULT_ADVICE.get(code, code.value).split(":")[0]


def printer_report(how: str, *, detail: str | None = None,
                   status: PrinterStatus | None = None) -> dict[str, Any]:
    """What the printer (or its driver) said when the job went needs_check, as stored.

    `how` is `link_broke`, `driver_error` or `agent_stopped`; `status` the printer's status
    at that moment where it was asked. Printer words only: never anything of the job.
    """
    report: dict[str, Any] = {"how": how, "detail": detail}
    if status is not None:
        report.update(state=status.state, faults=[f.value for f in status.faults],
                      counter=status.card_counter)
    return report


def report_words(report: dict[str, Any] | None, fallback: str | None = None) -> str:
    """The stored report in a sentence's words."""
    if not report:
        return fallback or TEXT["unknown"]
    how = report.get("how")
    if how == "agent_stopped":
        state = TEXT.get(f"state_{report.get('state')}", str(report.get("state")))
        faults = [fault_name(f) for f in report.get("faults") or ()]
        words = ", ".join([state, *(f.lower() for f in faults)])
        if report.get("counter") is not None:
            words += ", " + TEXT["counter_at"].format(counter=report["counter"])
        return TEXT["agent_stopped"].format(state=words)
    if how in ("link_broke", "driver_error"):
        return TEXT[how].format(detail=report.get("detail") or TEXT["not_known"])
    return fallback or TEXT["unknown"]


def counter_words(before: int | None, now: int | None) -> str:
    """What the printer's counter says of the card, from before its blank and now."""
    if before is None:
        return TEXT["no_counter_before"]
    if now is None:
        return TEXT["offline_now"].format(before=before)
    n = now - before
    if n <= 0:
        return TEXT["not_moved"].format(before=before)
    if n == 1:
        return TEXT["moved_one"].format(before=before, now=now)
    return TEXT["moved_many"].format(before=before, now=now, n=n, later=n - 1)


def describe(row: dict[str, Any], status: PrinterStatus) -> dict[str, Any]:
    """One needs_check job (a `Jobs.needing_check` row) as every surface shows it."""
    now = None if status.state == "offline" else status.card_counter
    before = row["counter_before"]
    return {
        "job_id": row["job_id"], "reference": row["reference"], "since": row["updated_at"],
        "attempt": row["attempt"], "counter_before": before, "counter_now": now,
        "drawn_since": None if before is None or now is None else now - before,
        "printer_said": report_words(row["check_report"], row["reason_detail"]),
        # What to look for: said with the card's front beside it (the page), or not.
        "advice": counter_words(before, now) + TEXT["look"],
        "advice_here": counter_words(before, now) + TEXT["look_here"],
    }


def open_checks(journal: Journal, status: PrinterStatus) -> list[dict[str, Any]]:
    """Every job waiting for an operator's decision, described (oldest first)."""
    return [describe(row, status) for row in journal.jobs.needing_check()]


def condition(check: dict[str, Any]) -> Condition:
    """The job's alert: raised once when it goes needs_check, cleared once it is decided.

    Its words are those of the moment it is raised (an alert is not raised again because
    the counter moved); `status` and `jobs` show the counter as it is now.
    """
    def shown(value: int | None) -> str:
        return TEXT["not_known"] if value is None else str(value)

    message = TEXT["alert"].format(
        job_id=check["job_id"], reference=check["reference"] or TEXT["no_reference"],
        said=check["printer_said"], before=shown(check["counter_before"]),
        now=shown(check["counter_now"]), advice=check["advice"])
    return Condition(CONDITION_PREFIX + check["job_id"], "warning", message)
