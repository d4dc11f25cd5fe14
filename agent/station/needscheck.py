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

from printstation.agent.i18n import N_, _, labels
from printstation.agent.station.alerts import Condition
from printstation.drivers.base import PrinterStatus

if TYPE_CHECKING:
    from printstation.agent.station.journal import Journal

#: The alert's condition for one job: `needs_check_<job_id>`, cleared once it is resolved.
CONDITION_PREFIX = "needs_check_"

#: This module's words for operators, in one place: marked here, translated where they are
#: said (`say`), in the process's language (the agent's: a check is described in it).
TEXT = {
    # TRANSLATORS: what the printer said; {detail} is the driver's own words (English).
    "link_broke": N_("the link to the printer broke while the card was inside ({detail})"),
    "driver_error": N_("the printer's driver failed while the card was inside ({detail})"),
    # TRANSLATORS: {state} is the printer's state in words, then its faults and counter.
    "agent_stopped": N_("the agent stopped while the card was inside; at the restart the "
                        "printer was {state}"),
    "unknown": N_("the agent could not tell whether the card came out"),
    "state_ready": N_("ready"), "state_busy": N_("busy"), "state_fault": N_("in fault"),
    "state_offline": N_("not answering"),
    "counter_at": N_("its card counter at {counter}"),
    "look_here": N_("If a card with this photo and name is in the output hopper, it printed; "
                    "if it is not there (or it is in the reject box), it did not."),
    "look": N_("If the card whose front the operator page shows (`printstation web`) is in "
               "the output hopper, it printed; if it is not there (or it is in the reject "
               "box), it did not."),
    # TRANSLATORS: the counter's sentences end with a space: what to look for follows.
    "no_counter_before": N_("The printer gave no card counter when this blank was due, so "
                            "the counter cannot help. "),
    "offline_now": N_("The printer is not answering, so its counter cannot be read now (it "
                      "was {before} when this card's blank was drawn). "),
    "not_moved": N_("The printer's counter still reads {before}, as before this card: no "
                    "blank seems to have left the feeder. "),
    # TRANSLATORS: a counter lower than before: the printer was replaced or reset.
    "went_back": N_("The printer's counter reads {now}, lower than the {before} it read before "
                    "this card: it is another printer, or its counter was reset, so the "
                    "counter cannot help. "),
    "moved_one": N_("The printer's counter went from {before} to {now}: it drew this card's "
                    "blank and none since, so this card is the last one out, on top of the "
                    "output hopper (or in the reject box). "),
    # TRANSLATORS: {n} cards counted since, this card's included; {later} printed after it.
    "moved_many": N_("The printer's counter went from {before} to {now}: the printer counted "
                     "{n} cards since, this card's blank being the first, so unless cards "
                     "were taken out it lies under the {later} printed after it in the "
                     "output hopper. "),
    # TRANSLATORS: the alert of a card to check; commands and options stay as they are.
    "alert": N_("Job {job_id} (reference {reference}) needs a check: {said}. Printer's card "
                "counter: {before} when its blank was drawn, {now} now. {advice} Then say "
                "which on the operator page or with `printstation resolve {job_id} "
                "--printed` or `--not-printed` (with --why)."),
    "not_known": N_("not known"),
    # TRANSLATORS: the reference of a job that has none
    "no_reference": N_("none"),
}


def say(key: str, **values: Any) -> str:
    """The sentence `key` of TEXT in the process's language, its placeholders filled."""
    return _(TEXT[key]).format(**values)


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
        return fallback or say("unknown")
    how = report.get("how")
    if how == "agent_stopped":
        key = f"state_{report.get('state')}"
        state = say(key) if key in TEXT else str(report.get("state"))
        faults = [labels.fault(f) for f in report.get("faults") or ()]
        words = ", ".join([state, *faults])
        if report.get("counter") is not None:
            words += ", " + say("counter_at", counter=report["counter"])
        return say("agent_stopped", state=words)
    if how in ("link_broke", "driver_error"):
        return say(how, detail=report.get("detail") or say("not_known"))
    return fallback or say("unknown")


def counter_words(before: int | None, now: int | None) -> str:
    """What the printer's counter says of the card, from before its blank and now."""
    if before is None:
        return say("no_counter_before")
    if now is None:
        return say("offline_now", before=before)
    n = now - before
    if n < 0:
        return say("went_back", before=before, now=now)
    if n == 0:
        return say("not_moved", before=before)
    if n == 1:
        return say("moved_one", before=before, now=now)
    return say("moved_many", before=before, now=now, n=n, later=n - 1)


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
        "advice": counter_words(before, now) + say("look"),
        "advice_here": counter_words(before, now) + say("look_here"),
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
        return say("not_known") if value is None else str(value)

    message = say(
        "alert", job_id=check["job_id"], reference=check["reference"] or say("no_reference"),
        said=check["printer_said"], before=shown(check["counter_before"]),
        now=shown(check["counter_now"]), advice=check["advice"])
    return Condition(CONDITION_PREFIX + check["job_id"], "warning", message)
