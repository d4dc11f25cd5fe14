"""`printstation status | pause | resume | jobs | cancel | resolve | hand-back | test-print
| web`: the operators' commands, answered by the running agent over its control socket
(the agent owns the journal and the printer; the action is recorded with the user name).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from printstation.agent.surfaces.cliargs import call, load, settings_flags


def cmd_local(args: argparse.Namespace) -> int:
    """Operator commands, answered by the running agent over its control socket."""
    request: dict[str, Any] = {"cmd": args.command}
    for key in ("job_id", "why", "limit"):
        if getattr(args, key, None) is not None:
            request[key] = getattr(args, key)
    if args.command == "resolve":
        request["printed"] = args.printed
    answer = call(args, request)
    from printstation.agent.surfaces.stock_cli import format_stock

    if args.command == "status":
        t = answer["telemetry"]
        why = f" ({t['blocked_reason']})" if t.get("blocked_reason") else ""
        print(f"state     {t['state']}{why}")
        print(f"printer   {t['printer']['model']} {t['printer']['serial']}: "
              f"{t['printer']['state']} {' '.join(t['printer']['faults'])}")
        print(f"queued    {t['queued_jobs']} jobs; taking jobs: {t['taking_jobs']}")
        print(format_stock(t))
        for a in t.get("alerts", []):
            print(f"ALERT {a['severity']}: {a['message']}")
    elif args.command == "jobs":
        for job in answer["jobs"]:
            reason = f" {job['reason_code']}" if job["reason_code"] else ""
            print(f"{job['updated_at'][:19]}  {job['job_id']:30} {job['state']:12}"
                  f"{reason}  {job['reference'] or ''}")
    else:
        print(json.dumps({k: v for k, v in answer.items() if k != "ok"}) if len(answer) > 1
              else f"{args.command}: done")
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
