"""`printstation status | pause | resume | jobs | cancel | resolve | hand-back | test-print
| web`: the operators' commands, answered by the running agent over its control socket
(the agent owns the journal and the printer; the action is recorded with the user name).

`status` and `jobs` show each job waiting for an operator's check with what to look for
(`--json` for scripts); the actions answer in a sentence.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from printstation.agent.surfaces.cliargs import call, load, settings_flags

#: This module's words for operators, in one place.
TEXT = {
    "state": "state     {state}{why}",
    "printer": "printer   {model} {serial}: {words}",
    "printer_states": {"ready": "ready", "busy": "busy", "fault": "needs attention",
                       "offline": "not answering", "printing": "printing"},
    "queued": "queued    {queued} jobs; taking jobs: {taking}",
    "alert": "ALERT {severity}: {message}",
    "check_title": "NEEDS A CHECK: job {job_id}",
    "check_what": "reference {reference}; unsure since {since}",
    "check_said": "printer said: {said}",
    "check_counter": "printer's card counter: {before} when its blank was drawn, {now} now",
    "check_decide": "decide: printstation resolve {job_id} --printed (or --not-printed) "
                    "--why '...'",
    "not_known": "not known",
    "none": "none",
    "test-print": "a test card will print next, between jobs (counted in the ledger as a "
                  "test card)",
    "resolved_printed": "job {job_id}: recorded as printed; the central system is told it "
                        "printed",
    "resolved_failed": "job {job_id}: recorded as not printed, its blank counted as spoiled; "
                       "the central system is told it failed and may send it again",
    "pause": "paused: printing stops after the card in the printer; `printstation resume` "
             "prints again",
    "resume": "resumed: printing goes on",
    "cancel": "job {job_id}: cancelled; the central system is told",
    "hand-back": "handed back to the pool: {jobs}",
    "done": "{command}: done",
}


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
        return TEXT["not_known"] if value is None else str(value)

    lines = []
    for c in checks:
        lines.append(TEXT["check_title"].format(job_id=c["job_id"]))
        lines.append(_wrap(TEXT["check_what"].format(reference=c["reference"] or TEXT["none"],
                                                     since=_local(c["since"]))))
        lines.append(_wrap(TEXT["check_said"].format(said=c["printer_said"])))
        lines.append(_wrap(TEXT["check_counter"].format(before=shown(c["counter_before"]),
                                                        now=shown(c["counter_now"]))))
        lines.append(_wrap(c["advice"]))
        lines.append(_wrap(TEXT["check_decide"].format(job_id=c["job_id"])))
    return lines


def format_status(answer: dict[str, Any]) -> list[str]:
    from printstation.agent.station.needscheck import CONDITION_PREFIX, fault_name
    from printstation.agent.surfaces.stock_cli import format_stock

    t = answer["telemetry"]
    p = t["printer"]
    why = f" ({t['blocked_reason']})" if t.get("blocked_reason") else ""
    # A printer between two cards may say "ready" while the station prints: say printing.
    state = "printing" if t["state"] == "printing" and p["state"] in ("ready", "busy") \
        else p["state"]
    words = ", ".join([TEXT["printer_states"].get(state, state),
                       *(fault_name(f) for f in p["faults"])])
    lines = [TEXT["state"].format(state=t["state"], why=why),
             TEXT["printer"].format(model=p["model"], serial=p["serial"], words=words),
             TEXT["queued"].format(queued=t["queued_jobs"], taking=t["taking_jobs"]),
             format_stock(t)]
    # A check's alert says what the block below says, at more length.
    lines += [TEXT["alert"].format(**a) for a in t.get("alerts", [])
              if not a["condition"].startswith(CONDITION_PREFIX)]
    return lines + format_checks(answer.get("needs_check", []))


def format_jobs(answer: dict[str, Any]) -> list[str]:
    lines = []
    for job in answer["jobs"]:
        reason = f" {job['reason_code']}" if job["reason_code"] else ""
        lines.append(f"{job['updated_at'][:19]}  {job['job_id']:30} {job['state']:12}"
                     f"{reason}  {job['reference'] or ''}")
    checks = answer.get("needs_check", [])
    return lines + ([""] if checks and lines else []) + format_checks(checks)


def answer_words(command: str, request: dict[str, Any], answer: dict[str, Any]) -> str:
    """What an action did, in a sentence (never the answer's raw JSON)."""
    if command == "resolve":
        key = "resolved_printed" if answer.get("result") == "printed" else "resolved_failed"
        return TEXT[key].format(job_id=request["job_id"])
    if command == "hand-back":
        return TEXT["hand-back"].format(jobs=", ".join(answer.get("handed_back") or []))
    if command in ("test-print", "pause", "resume", "cancel"):
        return TEXT[command].format(job_id=request.get("job_id"))
    return TEXT["done"].format(command=command)


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
        raise ControlError("the operator page is switched off (web_listen is empty)")
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
        raise ControlError(f"cannot write the login page in {folder} ({exc.strerror}); "
                           "run `printstation web --print-url` and open its link") from None
    if webbrowser.open(page.as_uri()):
        print("opened the operator page in your browser (if it does not show, for a "
              "browser that cannot read local files: `printstation web --print-url`)")
    else:
        print(f"printstation: no browser could be started; open this address in one: {url}",
              file=sys.stderr)
        return 1
    return 0


def add_parsers(sub: Any) -> None:
    local = [
        ("status", "the running agent's state, printer and consumables", []),
        ("pause", "stop printing after the current card", ["why?"]),
        ("resume", "print again", ["why?"]),
        ("jobs", "recent jobs: id, status, times, reference (never personal data)", []),
        ("cancel", "cancel a job that has not started printing", ["job_id", "why"]),
        ("resolve", "say whether the card of a needs_check job came out", ["job_id", "why"]),
        ("hand-back", "give a pool job (or all) back to its pool", ["job_id", "why"]),
        ("test-print", "print a test card between jobs (counted in the ledger as test)",
         ["why?"]),
    ]
    for name, helptext, params in local:
        p = sub.add_parser(name, help=helptext, description=helptext.capitalize() + ". "
                           "Talks to the running agent through its control socket in the "
                           "state directory; the action is recorded with your user name.")
        if "job_id" in params:
            p.add_argument("job_id", help="the job's id ('all' for hand-back: every pool job)")
        if "why" in params:
            p.add_argument("--why", required=True, help="the reason, recorded in the journal")
        if "why?" in params:
            p.add_argument("--why", help="the reason, recorded in the journal")
        if name == "jobs":
            p.add_argument("--limit", type=int, default=50)
        if name in ("status", "jobs"):
            p.add_argument("--json", action="store_true",
                           help="print the agent's answer as JSON, for scripts")
        if name == "resolve":
            which = p.add_mutually_exclusive_group(required=True)
            which.add_argument("--printed", action="store_true", dest="printed",
                               help="the card came out good: report printed")
            which.add_argument("--not-printed", action="store_false", dest="printed",
                               help="it did not: report failed, the blank spoiled")
        settings_flags(p)
        p.set_defaults(func=cmd_local)

    p = sub.add_parser("web", help="open the operator page in your browser",
                       description="Open the running agent's operator page in a browser, "
                       "logged in with the token the agent writes next to its control socket "
                       "(readable by the agent's group only). Exit 2 if it cannot be read.")
    p.add_argument("--print-url", action="store_true",
                   help="only print the page's address (it holds the token: keep it private)")
    settings_flags(p)
    p.set_defaults(func=cmd_web)
