"""`printstation status | pause | resume | jobs | cancel | resolve | hand-back | test-print
| web`: the operators' commands, answered by the running agent over its control socket
(the agent owns the journal and the printer; the action is recorded with the user name).

`status` and `jobs` show each job waiting for an operator's check with what to look for
(`--json` for scripts); the actions answer in a sentence. What they print is in the
configuration's `language`, else the locale's (`cliargs.load` chooses it); the sentences the
agent made (an alert, what the printer said, the check's advice) come in the agent's.
Codes, command names and job ids stay as they are.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from printstation.agent.i18n import N_, _, labels, ngettext
from printstation.agent.surfaces.cliargs import call, load, settings_flags

#: This module's words for operators, in one place: marked here, translated where they are
#: printed, in the CLI's language (the configuration's `language`, else the locale).
TEXT = {
    # TRANSLATORS: `status`'s first column: each label is padded to 10 characters.
    "state_label": N_("state"), "printer_label": N_("printer"), "queued_label": N_("queued"),
    "printer": N_("{model} {serial}: {words}"),
    # TRANSLATORS: `status`'s label for the jobs kept on this PC with their images.
    "held_label": N_("held"),
    "held": N_("{held} of at most {most} jobs, with their images"),
    # TRANSLATORS: `status`'s label for the jobs waiting for this station at the broker.
    "waiting_label": N_("waiting"),
    "held_full": N_("{held} of at most {most} jobs, with their images; the rest wait at the "
                    "broker"),
    "yes": N_("yes"), "no": N_("no"),
    # TRANSLATORS: an alert in `status`; {severity} is critical, warning or info in words.
    "alert": N_("ALERT {severity}: {message}"),
    # TRANSLATORS: the job id follows; `status` and `jobs` show it in capitals to stand out.
    "check_title": N_("NEEDS A CHECK: job {job_id}"),
    "check_what": N_("reference {reference}; unsure since {since}"),
    "check_said": N_("printer said: {said}"),
    "check_counter": N_("printer's card counter: {before} when its blank was drawn, {now} "
                        "now"),
    # TRANSLATORS: the command and its options stay as they are; '...' is the reason to type.
    "check_decide": N_("decide: printstation resolve {job_id} --printed (or --not-printed) "
                       "--why '...'"),
    "not_known": N_("not known"),
    "none": N_("none"),
    "no_jobs": N_("no jobs yet"),
    "test-print": N_("a test card will print next, between jobs (counted in the ledger as a "
                     "test card)"),
    "resolved_printed": N_("job {job_id}: recorded as printed; the central system is told it "
                           "printed"),
    "resolved_failed": N_("job {job_id}: recorded as not printed, its blank counted as "
                          "spoiled; the central system is told it failed and may send it "
                          "again"),
    "pause": N_("paused: printing stops after the card in the printer; `printstation resume` "
                "prints again"),
    "resume": N_("resumed: printing goes on"),
    "cancel": N_("job {job_id}: cancelled; the central system is told"),
    "hand-back": N_("handed back to the pool: {jobs}"),
    # TRANSLATORS: {command} is a printstation command's name, as typed.
    "done": N_("{command}: done"),
}

#: The station's state (telemetry's `state`) in words, as the operator page's banner says it
#: (`status` writes it in lower case, as its other lines).
STATION_STATES = {"ready": N_("Ready"), "printing": N_("Printing"), "paused": N_("Paused"),
                  "blocked": N_("Not printing"), "offline": N_("Printer offline"),
                  "stopping": N_("Stopping")}
#: The printer's own state in words ("printing": the station prints a card on it).
PRINTER_STATES = {"ready": N_("ready"), "busy": N_("busy"), "fault": N_("needs attention"),
                  "offline": N_("not answering"), "printing": N_("printing a card")}
#: An alert's severity in words.
SEVERITIES = {"critical": N_("critical"), "warning": N_("warning"), "info": N_("info")}


def say(key: str, **values: Any) -> str:
    """The sentence `key` of TEXT in the CLI's language, its placeholders filled."""
    return _(TEXT[key]).format(**values)


def _word(table: dict[str, str], code: str) -> str:
    return _(table[code]) if code in table else code


def _row(label: str, text: str) -> str:
    """One line of `status`: its label in the first 10 columns (or more, if longer)."""
    return f"{_(TEXT[label]):<9} {text}"


def _wrap(text: str, indent: str = "    ") -> str:
    import textwrap

    return textwrap.fill(text, width=80, initial_indent=indent, subsequent_indent=indent,
                         break_on_hyphens=False, break_long_words=False)


def _local(iso: str | None) -> str:
    """A journal time (UTC) as the PC's local date and time."""
    from datetime import datetime

    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def format_checks(checks: list[dict[str, Any]]) -> list[str]:
    """Each job waiting for an operator's decision, with what to look for (80 columns)."""
    def shown(value: int | None) -> str:
        return say("not_known") if value is None else str(value)

    lines = []
    for c in checks:
        lines.append(say("check_title", job_id=c["job_id"]))
        lines.append(_wrap(say("check_what", reference=c["reference"] or say("none"),
                               since=_local(c["since"]))))
        lines.append(_wrap(say("check_said", said=c["printer_said"])))
        lines.append(_wrap(say("check_counter", before=shown(c["counter_before"]),
                               now=shown(c["counter_now"]))))
        lines.append(_wrap(c["advice"]))
        lines.append(_wrap(say("check_decide", job_id=c["job_id"])))
    return lines


def format_status(answer: dict[str, Any]) -> list[str]:
    from printstation.agent.station.needscheck import CONDITION_PREFIX
    from printstation.agent.surfaces.stock_cli import format_stock

    t = answer["telemetry"]
    p = t["printer"]
    why = f" ({t['blocked_reason']})" if t.get("blocked_reason") else ""
    # A printer between two cards may say "ready" while the station prints: say printing.
    state = "printing" if t["state"] == "printing" and p["state"] in ("ready", "busy") \
        else p["state"]
    words = ", ".join([_word(PRINTER_STATES, state), *(labels.fault(f) for f in p["faults"])])
    queued = ngettext("{n} job; taking jobs: {taking}", "{n} jobs; taking jobs: {taking}",
                      t["queued_jobs"]).format(n=t["queued_jobs"],
                                               taking=say("yes" if t["taking_jobs"] else "no"))
    station = _word(STATION_STATES, t["state"])
    lines = [_row("state_label", station[:1].lower() + station[1:] + why),
             _row("printer_label", say("printer", model=p["model"], serial=p["serial"],
                                       words=words)),
             _row("queued_label", queued)]
    if t.get("held_jobs") is not None:  # from an agent that bounds its backlog
        full = t["held_jobs"] >= t["max_held_jobs"]
        lines.append(_row("held_label", say("held_full" if full else "held",
                                            held=t["held_jobs"], most=t["max_held_jobs"])))
    if t.get("waiting_jobs") is not None:  # counted while connected to the broker
        lines.append(_row("waiting_label", ngettext(
            "{n} job at the broker, for this station", "{n} jobs at the broker, for this station",
            t["waiting_jobs"]).format(n=t["waiting_jobs"])))
    lines.append(format_stock(t))
    # A check's alert says what the block below says, at more length.
    lines += [say("alert", severity=_word(SEVERITIES, a["severity"]), message=a["message"])
              for a in t.get("alerts", []) if not a["condition"].startswith(CONDITION_PREFIX)]
    return lines + format_checks(answer.get("needs_check", []))


def format_jobs(answer: dict[str, Any]) -> list[str]:
    """One line a job: when it last changed, its id, its state in words, the reason code
    (verbatim: technicians look it up) and its reference; then the jobs to check."""
    jobs = answer["jobs"]
    states = [labels.status(job["state"]) for job in jobs]
    width = max([12, *(len(s) + 1 for s in states)])
    lines = []
    for job, state in zip(jobs, states, strict=True):
        reason = f" {job['reason_code']}" if job["reason_code"] else ""
        lines.append(f"{job['updated_at'][:19]}  {job['job_id']:30} {state:{width}}"
                     f"{reason}  {job['reference'] or ''}".rstrip())
    checks = answer.get("needs_check", [])
    if not lines and not checks:
        return [say("no_jobs")]
    return lines + ([""] if checks and lines else []) + format_checks(checks)


def answer_words(command: str, request: dict[str, Any], answer: dict[str, Any]) -> str:
    """What an action did, in a sentence (never the answer's raw JSON)."""
    if command == "resolve":
        key = "resolved_printed" if answer.get("result") == "printed" else "resolved_failed"
        return say(key, job_id=request["job_id"])
    if command == "hand-back":
        return say("hand-back", jobs=", ".join(answer.get("handed_back") or []))
    if command in ("test-print", "pause", "resume", "cancel"):
        return say(command, job_id=request.get("job_id"))
    return say("done", command=command)


def cmd_local(args: argparse.Namespace) -> int:
    """Operator commands, answered by the running agent over its control socket."""
    request: dict[str, Any] = {"cmd": args.command}
    for key in ("job_id", "why", "limit"):
        if getattr(args, key, None) is not None:
            request[key] = getattr(args, key)
    if args.command == "resolve":
        request["printed"] = args.printed
    answer = call(args, request)
    if getattr(args, "json", False):
        print(json.dumps({k: v for k, v in answer.items() if k != "ok"}, indent=2))
    elif args.command == "status":
        print("\n".join(format_status(answer)))
    elif args.command == "jobs":
        print("\n".join(format_jobs(answer)))
    else:
        print(answer_words(args.command, request, answer))
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    """Open the operator page with a one-time login link from the running agent."""
    import webbrowser

    from printstation.agent.surfaces.control_socket import ControlError

    settings = load(args)
    if not settings.web_listen:
        raise ControlError(_("the operator page is switched off (web_listen is empty)"))
    url = call(args, {"cmd": "web-login"})["url"]
    if args.print_url:
        print(url)
        return 0
    from printstation.agent.surfaces.web import login_page

    runtime = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(runtime) / "printstation" if runtime else \
        Path.home() / ".cache" / "printstation"
    try:
        page = login_page(url, folder)
    except OSError as exc:
        raise ControlError(_("cannot write the login page in {folder} ({error}); run "
                             "`printstation web --print-url` and open its link").format(
                                 folder=folder, error=exc.strerror)) from None
    if webbrowser.open(page.as_uri()):
        print(_("opened the operator page in your browser (if it does not show, for a "
                "browser that cannot read local files: `printstation web --print-url`)"))
    else:
        print("printstation: " + _("no browser could be started; open this address in "
                                   "one: {url}").format(url=url), file=sys.stderr)
        return 1
    return 0


def add_parsers(sub: Any) -> None:
    """The operators' subcommands. Their help is in the locale's language: it is written
    before any configuration is read (the output follows the configuration's `language`)."""
    local = [
        ("status", _("the running agent's state, printer and consumables"), []),
        ("pause", _("stop printing after the current card"), ["why?"]),
        ("resume", _("print again"), ["why?"]),
        ("jobs", _("recent jobs: id, status, times, reference (never personal data)"), []),
        ("cancel", _("cancel a job that has not started printing"), ["job_id", "why"]),
        ("resolve", _("say whether the card of a needs_check job came out"),
         ["job_id", "why"]),
        ("hand-back", _("give a pool job (or all) back to its pool"), ["job_id", "why"]),
        ("test-print", _("print a test card between jobs (counted in the ledger as test)"),
         ["why?"]),
    ]
    why = _("the reason, recorded in the journal")
    for name, helptext, params in local:
        # TRANSLATORS: {what} is the command's one-line help, first letter capitalised.
        description = _("{what}. Talks to the running agent through its control socket in "
                        "the state directory; the action is recorded with your user name."
                        ).format(what=helptext[:1].upper() + helptext[1:])
        p = sub.add_parser(name, help=helptext, description=description)
        if "job_id" in params:
            p.add_argument("job_id",
                           help=_("the job's id ('all' for hand-back: every pool job)"))
        if "why" in params:
            p.add_argument("--why", required=True, help=why)
        if "why?" in params:
            p.add_argument("--why", help=why)
        if name == "jobs":
            p.add_argument("--limit", type=int, default=50,
                           help=_("how many of the latest jobs (default 50)"))
        if name in ("status", "jobs"):
            p.add_argument("--json", action="store_true",
                           help=_("print the agent's answer as JSON, for scripts"))
        if name == "resolve":
            which = p.add_mutually_exclusive_group(required=True)
            which.add_argument("--printed", action="store_true", dest="printed",
                               help=_("the card came out good: report printed"))
            which.add_argument("--not-printed", action="store_false", dest="printed",
                               help=_("it did not: report failed, the blank spoiled"))
        settings_flags(p)
        p.set_defaults(func=cmd_local)

    p = sub.add_parser("web", help=_("open the operator page in your browser"),
                       description=_("Open the running agent's operator page in a browser, "
                                     "logged in with the token the agent writes next to its "
                                     "control socket (readable by the agent's group only). "
                                     "Exit 2 if it cannot be read."))
    p.add_argument("--print-url", action="store_true",
                   help=_("only print the page's address (it holds the token: keep it "
                          "private)"))
    settings_flags(p)
    p.set_defaults(func=cmd_web)
