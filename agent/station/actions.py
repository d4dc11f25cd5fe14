"""What an operator can ask of the running agent: one table of commands, each with its
request model.

The control socket and the operator page both go through `Commands.run`: a request is
validated against its command's model (a bad one gets one line naming the field), the
action is recorded in the journal with who asked and why, and the answer is a small dict.
A refusal is said in the agent's language; command names and codes in it stay as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
)
from pydantic import StringConstraints as Text
from pydantic_core import PydanticCustomError

from printstation.agent import contract
from printstation.agent.i18n import N_, _, labels
from printstation.agent.station.consumables import LoadError
from printstation.agent.station.journal import JobState
from printstation.agent.station.journal.stock import Counted, RollId
from printstation.agent.station.ledger import balance, daily_report, explain
from printstation.agent.station.needscheck import open_checks
from printstation.agent.station.rolls import roll_report
from printstation.agent.station.station import Station
from printstation.agent.station.telemetry import TelemetryLoop
from printstation.drivers.errors import PrintstationError

Words = Annotated[str, Text(strip_whitespace=True, min_length=1, max_length=500)]
Name = Annotated[str, Text(strip_whitespace=True, min_length=1, max_length=64)]
def _calendar_day(value: str) -> str:
    """2026-13-45 has the form of a day but is none: refused as the form is."""
    try:
        date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("string_pattern_mismatch", "not a calendar day") from None
    return value


Day = Annotated[str, Text(pattern=r"^\d{4}-\d{2}-\d{2}$"), AfterValidator(_calendar_day)]
Month = Annotated[str, Text(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
#: A count a person records: more than any feeder, ribbon or film roll holds is a typo,
#: and past SQLite's integers it could not be stored at all (an OverflowError, no words).
MAX_COUNT = 100_000
Count = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
#: A roll's serial or lot as printed on its box: letters, digits, a few separators.
Label = Annotated[str, Text(strip_whitespace=True, min_length=1, max_length=40,
                            pattern=r"^[\w./#: -]+$")]
#: How long an operator's load waits for the printer thread to pass it to the driver.
PRINTER_TOLD_SECONDS = 10.0


class ControlError(PrintstationError):
    """An operator's command that cannot be carried out; the message says why."""

    code = "control"


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Nothing(_Request):
    pass


class Why(_Request):
    why: Words | None = None


class JobWhy(_Request):
    job_id: Words
    why: Words


class Resolve(JobWhy):
    printed: StrictBool


class Jobs(_Request):
    limit: Annotated[StrictInt, Field(ge=1, le=1000)] = 50


class Load(Why):
    kind: Name
    type: Name | None = None
    capacity: Count | None = None
    count: Count | None = None
    serial: Label | None = None
    lot: Label | None = None


class Unload(_Request):
    kind: Name = "cards"
    count: Count
    why: Words


class Correct(_Request):
    kind: Name
    remaining: Count
    why: Words


class Ledger(_Request):
    day: Day | None = None


class Spoiled(_Request):
    month: Month | None = None


@dataclass
class Context:
    """What the commands act on."""

    station: Station
    telemetry: TelemetryLoop
    #: A one-time login link for the operator page, once the page is served; the page
    #: then acts as the user named (who asked for the link).
    web_login: Callable[[str], str] | None = None


@dataclass(frozen=True)
class Command:
    request: type[_Request]
    act: Callable[[Context, Any, str], dict[str, Any]]


def _checks(c: Context) -> list[dict[str, Any]]:
    return open_checks(c.station.journal, c.station.printer.snapshot.status)


def _status(c: Context, r: Nothing, who: str) -> dict[str, Any]:
    return {"telemetry": c.telemetry.event(), "needs_check": _checks(c)}


def _jobs(c: Context, r: Jobs, who: str) -> dict[str, Any]:
    return {"jobs": c.station.journal.jobs.recent(r.limit), "needs_check": _checks(c)}


def _pause(c: Context, r: Why, who: str) -> dict[str, Any]:
    c.station.pause(who, r.why or "operator")
    return {}


def _resume(c: Context, r: Why, who: str) -> dict[str, Any]:
    c.station.resume(who, r.why or "operator")
    return {}


#: How a job an operator cannot cancel is named in the answer.
_NOT_CANCELLABLE = {JobState.CLAIMING: N_("being taken from its pool"),
                    JobState.HANDBACK_SENDING: N_("on its way back to the central system"),
                    # TRANSLATORS: resolve is the command's name
                    JobState.NEEDS_CHECK: N_("needs check (say what came out with resolve)"),
                    # What `Control.cancel` answers for a job this station does not hold.
                    "not held by this station": N_("not held by this station")}


def _cancel(c: Context, r: JobWhy, who: str) -> dict[str, Any]:
    journal = c.station.journal
    result = journal.control.cancel(r.job_id, "cancelled_by_operator", f"{who}: {r.why}")
    if result != JobState.CANCELLED:
        state = (_(_NOT_CANCELLABLE[result]) if result in _NOT_CANCELLABLE else
                 labels.status(str(result)))
        raise ControlError(_("job {job} is {state}; only a job not yet printing can be "
                             "cancelled").format(job=r.job_id, state=state))
    journal.store.record_action(who, "cancel", r.job_id, r.why)
    return {"result": result}


def _resolve(c: Context, r: Resolve, who: str) -> dict[str, Any]:
    journal = c.station.journal
    try:
        result = journal.progress.resolve(r.job_id, printed=r.printed, who=who, why=r.why)
    except LookupError:
        raise ControlError(_("job {job} is not known to this station").format(
            job=r.job_id)) from None
    except ValueError:  # the journal's words are English: say it in the agent's language
        row = journal.jobs.get(r.job_id)
        state = labels.status(str(row.state)) if row else _("not known")
        # TRANSLATORS: needs_check is the state's code, as the command's help says it
        raise ControlError(_("job {job} is {state}, not needs_check: only a card to check "
                             "is decided with resolve").format(job=r.job_id,
                                                               state=state)) from None
    c.station.changed()  # the job's alert clears now, not at the next telemetry
    return {"result": result}


def _hand_back(c: Context, r: JobWhy, who: str) -> dict[str, Any]:
    done = c.station.hand_back(r.job_id, who, r.why)
    if not done:
        raise ControlError(_("no pool job waiting to print matched; only pool jobs not yet "
                             "printing can be handed back"))
    return {"handed_back": done}


def _tell_printer(c: Context, kind: str, counted: Counted, **change: Any) -> bool:
    """Pass an operator's record to the printer thread (a simulated printer makes it so);
    True once told, or when the printer sees such changes for itself."""
    s = c.station
    told = s.printer.stock_changed(s.consumables.stock_change(kind, counted, **change))
    s.printer.retry_refused()  # a job held for stock (or refused) may start now
    s.changed()
    if told is None:
        return True
    try:
        return told.result(timeout=PRINTER_TOLD_SECONDS)
    except TimeoutError:
        return False  # the card in the printer is not finished yet: it is told after


def _load(c: Context, r: Load, who: str) -> dict[str, Any]:
    s = c.station
    roll = RollId(r.serial, r.lot)
    try:
        counted = s.consumables.load(r.kind, type_=r.type, capacity=r.capacity, count=r.count,
                                     who=who, roll=roll)
    except LoadError as exc:
        raise ControlError(str(exc)) from None
    s.journal.store.record_action(who, f"load-{r.kind}", r.type,
                                  r.why or f"{counted.remaining} {counted.unit}")
    told = _tell_printer(c, r.kind, counted, added=r.count or 0, roll=roll)
    return {"loaded": {"kind": r.kind, "type": counted.type, "capacity": counted.capacity,
                       "remaining": counted.remaining, "unit": counted.unit},
            "printer_told": told}


def _unload(c: Context, r: Unload, who: str) -> dict[str, Any]:
    s = c.station
    if r.kind != "cards":
        raise ControlError(_("only blanks are unloaded; a {kind} is replaced with "
                             "`printstation load {kind}` or its count put right with "
                             "`printstation correct {kind}`").format(kind=r.kind))
    try:
        numbers = s.consumables.unload(r.count, who, r.why)
    except LoadError as exc:
        raise ControlError(str(exc)) from None
    s.journal.store.record_action(who, "unload-cards", str(r.count), r.why)
    counted = s.journal.cards.counted_stock()["cards"]
    told = _tell_printer(c, "cards", counted, removed=r.count)
    return {"removed": numbers, "in_feeder": counted.remaining, "printer_told": told}


def _correct(c: Context, r: Correct, who: str) -> dict[str, Any]:
    s = c.station
    try:
        counted = s.consumables.correct(r.kind, r.remaining, who, r.why)
    except LoadError as exc:
        raise ControlError(str(exc)) from None
    s.journal.store.record_action(who, f"correct-{r.kind}", str(r.remaining), r.why)
    s.changed()
    return {"corrected": {"kind": r.kind, "type": counted.type, "capacity": counted.capacity,
                          "remaining": counted.remaining, "unit": counted.unit}}


def _rolls(c: Context, r: Nothing, who: str) -> dict[str, Any]:
    s = c.station
    levels = s.consumables.levels(s.printer.snapshot.status)
    return {"rolls": roll_report(s.journal.cards.rolls(),
                                 {lv.kind: lv.remaining for lv in levels})}


def _spoiled(c: Context, r: Spoiled, who: str) -> dict[str, Any]:
    month = r.month or contract.now().strftime("%Y-%m")
    return {"month": month, "station_id": c.station.settings.station_id,
            "cards": c.station.journal.cards.register(month)}


def _stock(c: Context, r: Nothing, who: str) -> dict[str, Any]:
    t = c.telemetry.event()
    return {k: t[k] for k in ("consumables", "cards_left", "first_to_run_out", "run_out_together",
                              "runs_out_at", "print_rate_per_hour", "blanks", "maintenance",
                              "state", "blocked_reason")}


def _clean(c: Context, r: Why, who: str) -> dict[str, Any]:
    store = c.station.journal.store
    store.set_meta("cleaned_at_card", str(c.station.journal.cards.through_printer()))
    store.set_meta("cleaned_at", contract.now().isoformat())
    store.record_action(who, "clean", None, r.why or "cleaning done")
    c.station.changed()
    return {"maintenance": c.telemetry.maintenance()}


def _ledger(c: Context, r: Ledger, who: str) -> dict[str, Any]:
    s = c.station
    levels = s.consumables.levels(s.printer.snapshot.status)
    b = balance(s.journal, next((lv for lv in levels if lv.kind == "cards"), None))
    day = r.day or contract.now().date().isoformat()
    return {"days": s.journal.cards.ledger_days(), "balance": b, "check": explain(b),
            "loads": s.journal.cards.loads(),
            "report": daily_report(s.journal, day, b, s.settings.station_id)}


def _web_login(c: Context, r: Nothing, who: str) -> dict[str, Any]:
    if c.web_login is None:
        raise ControlError(_("the operator page is not served: web_listen is empty, or its "
                             "port was taken at start (see the agent's log)"))
    c.station.journal.store.record_action(who, "web-login", None, "printstation web")
    return {"url": c.web_login(who)}


def _test_print(c: Context, r: Why, who: str) -> dict[str, Any]:
    c.station.journal.store.record_action(who, "test-print", None, r.why or "test card")
    c.station.printer.request_test_card(who)
    return {"queued": True}


COMMANDS: dict[str, Command] = {
    "status": Command(Nothing, _status),
    "jobs": Command(Jobs, _jobs),
    "pause": Command(Why, _pause),
    "resume": Command(Why, _resume),
    "cancel": Command(JobWhy, _cancel),
    "resolve": Command(Resolve, _resolve),
    "hand-back": Command(JobWhy, _hand_back),
    "load": Command(Load, _load),
    "unload": Command(Unload, _unload),
    "correct": Command(Correct, _correct),
    "rolls": Command(Nothing, _rolls),
    "spoiled": Command(Spoiled, _spoiled),
    "stock": Command(Nothing, _stock),
    "clean": Command(Why, _clean),
    "ledger": Command(Ledger, _ledger),
    "web-login": Command(Nothing, _web_login),
    "test-print": Command(Why, _test_print),
}


class Commands:
    """The command table bound to a station: what the control socket and the page call."""

    def __init__(self, context: Context):
        self.context = context

    def handlers(self) -> dict[str, Callable[[dict[str, Any], str], dict[str, Any]]]:
        return {name: (lambda req, who, name=name: self.run(name, req, who))
                for name in COMMANDS}

    def run(self, name: str, request: dict[str, Any], who: str) -> dict[str, Any]:
        """Validate `request` against the command's model, then act; ControlError if not."""
        command = COMMANDS[name]
        try:
            parsed = command.request.model_validate(request)
        except ValidationError as exc:
            raise ControlError(_problem(name, exc)) from None
        return command.act(self.context, parsed, who)


def _problem(name: str, exc: ValidationError) -> str:
    """One line: `cancel needs why`, or the field and what is wrong with it."""
    first = exc.errors(include_url=False, include_input=False)[0]
    field = ".".join(str(p) for p in first["loc"])
    kind, limits = first["type"], first.get("ctx") or {}
    if kind == "missing":
        # TRANSLATORS: a command and the field of its request it lacks: "cancel needs why"
        return _("{command} needs {field}").format(command=name, field=field)
    # What an operator's typing can get wrong, said in the agent's language (pydantic's
    # own words are English, and a pattern is a regular expression).
    said = {
        "greater_than_equal": lambda: _("{field} must be {limit} or more").format(
            field=field, limit=limits.get("ge")),
        "less_than_equal": lambda: _("{field} must be {limit} or less").format(
            field=field, limit=limits.get("le")),
        "string_too_short": lambda: _("{field} must not be empty").format(field=field),
        "string_too_long": lambda: _("{field} is longer than {limit} characters").format(
            field=field, limit=limits.get("max_length")),
        "string_pattern_mismatch": lambda: _(_FORMS[field]) if field in _FORMS else None,
    }.get(kind, lambda: None)()
    return f"{name}: {said or f'{field}: ' + first['msg'].removeprefix('Value error, ')}"


#: What a field with a pattern must look like, in words.
_FORMS = {
    "day": N_("give a day as YYYY-MM-DD, e.g. 2026-11-24"),
    "month": N_("give a month as YYYY-MM, e.g. 2026-11"),
    # TRANSLATORS: a roll's serial number or lot, as printed on its box
    "serial": N_("a serial holds only letters, digits, spaces and . / # : -"),
    "lot": N_("a lot holds only letters, digits, spaces and . / # : -"),
}
