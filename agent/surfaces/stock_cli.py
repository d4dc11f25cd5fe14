"""`printstation load | stock | clean | ledger`: consumables and blanks, for operators
(`books_cli` has unload, correct, rolls and the spoiled-card register).

Each asks the running agent over its control socket (the agent owns the journal); loads and
cleanings are recorded with the operator's user name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from printstation.agent.surfaces.cliargs import call, settings_flags

RUNS_OUT = {"ribbon": "the ribbon runs", "film": "the film runs", "cards": "the blanks run"}


def clock(iso: str, now: str | None = None) -> str:
    """A run-out time as an operator reads it, in this PC's time: `14:30 today`, `09:10
    tomorrow`, `10:05 Mon 30 Nov`; `now` (ISO 8601, for tests) stands in for the clock."""
    from datetime import datetime

    from printstation.agent.station.forecast import when_said

    at = datetime.fromisoformat(iso)
    return when_said(at, datetime.fromisoformat(now) if now else datetime.now().astimezone())


def format_stock(answer: dict[str, Any]) -> str:
    """What is loaded and left, how many cards that allows, and when it runs out."""
    lines = []
    for c in answer["consumables"]:
        left = "unknown" if c["remaining"] is None else f"{c['remaining']}"
        of = f"/{c['capacity']}" if c["capacity"] else ""
        cards = f"~{c['cards_left']} cards" if c.get("cards_left") is not None else ""
        when = f", runs out ~{clock(c['runs_out_at'])}" if c.get("runs_out_at") else ""
        lines.append(f"{c['kind']:7} {c['type'] or '-':10} {left}{of} {c['unit']} "
                     f"({c['source']}) {cards}{when}")
        if c.get("disagreement"):
            lines.append(f"        ! {c['disagreement']}")
    first = answer.get("first_to_run_out")
    if answer.get("cards_left") is not None:
        when = f" at about {clock(answer['runs_out_at'])}" if answer.get("runs_out_at") else ""
        rate = answer.get("print_rate_per_hour")
        pace = f" (at {rate:.0f} cards/hour)" if rate else ""
        lines.append(f"can print {answer['cards_left']} more cards; "
                     f"{RUNS_OUT.get(first or '', first)} out first{when}{pace}")
    b = answer.get("blanks")
    if b:
        lines.append(f"blanks  loaded {b['loaded']}, issued {b['issued']}, spoiled "
                     f"{b['spoiled']}, test {b['test']}, in the feeder {b['in_feeder']}")
    m = answer.get("maintenance")
    if m:
        due = " - cleaning due" if m["cleaning_due"] else ""
        lines.append(f"cleaning {m['cards_since_cleaning']} cards since the last "
                     f"(every {m['cleaning_interval']}){due}")
    return "\n".join(lines)


def cmd_load(args: argparse.Namespace) -> int:
    request: dict[str, Any] = {"cmd": "load", "kind": args.kind}
    if args.kind == "cards":
        request.update(type=args.stock, count=args.count)
    else:
        request.update(type=args.type, capacity=args.capacity, count=args.remaining,
                       serial=args.serial, lot=args.lot)
    if args.why:
        request["why"] = args.why
    answer = call(args, request)
    loaded = answer["loaded"]
    print(f"loaded {loaded['kind']} {loaded['type'] or ''}: {loaded['remaining']} "
          f"{loaded['unit']} now counted")
    if answer.get("printer_told") is False:
        print("the printer is told once the card in it is finished", file=sys.stderr)
    return 0


def cmd_stock(args: argparse.Namespace) -> int:
    answer = call(args, {"cmd": "stock"})
    answer.pop("ok", None)
    print(json.dumps(answer, indent=2) if args.json else format_stock(answer))
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    answer = call(args, {"cmd": "clean", "why": args.why or "cleaning done"})
    print(f"cleaning recorded; next due after {answer['maintenance']['cleaning_interval']} "
          "cards")
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    if args.spoiled:
        from printstation.agent.surfaces.books_cli import spoiled

        if args.report or args.check or args.day:
            raise ValueError("--spoiled is the monthly register: it takes --month, --csv or "
                             "--json, not --report, --check or --day")
        return spoiled(args)
    if args.month:
        raise ValueError("--month goes with --spoiled (the monthly register); the daily "
                         "report takes --day")
    request: dict[str, Any] = {"cmd": "ledger"}
    if args.day:
        request["day"] = args.day
    answer = call(args, request)
    from printstation.agent.station.ledger import to_csv

    if args.csv:
        text = to_csv(answer["days"])
        if str(args.csv) == "-":
            sys.stdout.write(text)
        else:
            Path(args.csv).write_text(text)
    elif args.report:
        sys.stdout.write(answer["report"])
    elif args.json:
        print(json.dumps({k: answer[k] for k in ("days", "balance", "loads")}, indent=2))
    elif not args.check:
        print(f"{'day':10} {'stock':8} {'loaded':>7} {'issued':>7} {'spoiled':>7} {'test':>5} "
              f"{'removed':>7} {'ribbon':>7} {'film':>6}")
        for d in answer["days"]:
            print(f"{d['day']:10} {d['stock']:8} {d['loaded']:7} {d['issued']:7} "
                  f"{d['spoiled']:7} {d['test']:5} {d['removed']:7} {d['ribbon_used']:7} "
                  f"{d['film_used']:6}")
    if args.check or not (args.csv and str(args.csv) == "-"):
        print(answer["check"], file=sys.stderr if args.csv or args.report else sys.stdout)
    return 0 if not args.check or answer["balance"]["balanced"] else 1


def add_parsers(sub: Any) -> None:
    note = ("Talks to the running agent through its control socket; the action is recorded "
            "with your user name.")
    p = sub.add_parser("load", help="record a ribbon, film roll or blanks just loaded",
                       description="Record what you just put in the printer. A ribbon or film "
                       "roll replaces the last one; blanks are added to what is in the "
                       "feeder. A ribbon type the printer cannot use, or a card stock no job "
                       "at this station asks for, is refused. " + note)
    p.add_argument("kind", choices=["ribbon", "film", "cards"])
    p.add_argument("--type", help="ribbon type (YMCKO, YMCKK, ...) or film type")
    p.add_argument("--capacity", type=int, help="ribbon prints or film panels on a full roll")
    p.add_argument("--remaining", type=int, help="for a partly used roll: what is left")
    p.add_argument("--count", type=int, help="blanks put in the feeder")
    p.add_argument("--stock", help="the blanks' stock (ektp, kia, ...; default the "
                                   "station's card_stock)")
    p.add_argument("--serial", help="the roll's serial number, where the printer does not "
                                    "read it (on the box or the core)")
    p.add_argument("--lot", help="the roll's production lot, where the printer does not "
                                 "read it")
    p.add_argument("--why", help="a note, recorded in the journal")
    settings_flags(p)
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("stock", help="what is loaded and left, and how many cards it allows",
                       description="Consumables, the blank ledger's balance, cleaning and the "
                       "forecast: cards that can still be printed, which runs out first and "
                       "when. " + note)
    p.add_argument("--json", action="store_true")
    settings_flags(p)
    p.set_defaults(func=cmd_stock)

    p = sub.add_parser("clean", help="record that the printer was cleaned",
                       description="Record a cleaning: the cards-since-cleaning counter "
                       "starts again. " + note)
    p.add_argument("--why", help="a note, recorded in the journal")
    settings_flags(p)
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser("ledger", help="the blank ledger per day and stock; --check, --csv, "
                                      "--report, --spoiled",
                       description="Every blank the station was given and where it went, "
                       "per day and stock. --check exits 1 unless loaded = issued + spoiled "
                       "+ test + removed + in the feeder. --spoiled lists every spoiled or "
                       "removed blank of a month (--csv, --json too). " + note)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--csv", metavar="FILE", help="write the ledger as CSV ('-': stdout)")
    what.add_argument("--report", action="store_true",
                      help="the daily report an office head hands in")
    what.add_argument("--json", action="store_true")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when the ledger does not balance")
    p.add_argument("--day", help="the report's day, YYYY-MM-DD (default today)")
    p.add_argument("--spoiled", action="store_true",
                   help="the spoiled-card register: every spoiled or removed blank of a month")
    p.add_argument("--month", help="the register's month, YYYY-MM (default this month)")
    settings_flags(p)
    p.set_defaults(func=cmd_ledger)
