"""`printstation unload | correct | rolls`, and `ledger --spoiled`: putting the books right,
and the reports offices owe on rolls and on every blank that did not become a card.

Each asks the running agent over its control socket (the agent owns the journal); what an
operator records is kept with their user name and why.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

from printstation.agent.surfaces.cliargs import call, settings_flags

ROLL_FIELDS = ("id", "kind", "type", "serial", "lot", "capacity", "started_with", "unit",
               "loaded_at", "who", "replaced_at", "good_cards", "good_use", "spoiled_cards",
               "spoiled_use", "used", "left", "yield_pct", "summary")
REGISTER_FIELDS = ("card_no", "at", "outcome", "reason", "job_id", "reference", "chip_uid",
                   "stock")
#: The spoiled-card register's parts, in the order the text form lists them.
SECTIONS = (("Failed prints", lambda c: c["outcome"] == "spoiled" and
             c["reason"] != "encode_failed"),
            ("Failed encodes", lambda c: c["outcome"] == "spoiled" and
             c["reason"] == "encode_failed"),
            ("Taken out of the feeder unprinted", lambda c: c["outcome"] == "removed"))


def write(text: str, where: str | None) -> None:
    """To stdout for '-', else to the file named."""
    if where is None or where == "-":
        sys.stdout.write(text)
    else:
        Path(where).write_text(text)


def to_csv(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def cmd_unload(args: argparse.Namespace) -> int:
    answer = call(args, {"cmd": "unload", "kind": args.kind, "count": args.count,
                         "why": args.why})
    numbers = answer["removed"]
    span = f"{numbers[0]}" if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}"
    print(f"recorded {len(numbers)} blank{'s' if len(numbers) != 1 else ''} taken out "
          f"unprinted (card no. {span}); {answer['in_feeder']} now counted in the feeder")
    return 0


def cmd_correct(args: argparse.Namespace) -> int:
    fixed = call(args, {"cmd": "correct", "kind": args.kind, "remaining": args.remaining,
                        "why": args.why})["corrected"]
    of = f" of {fixed['capacity']}" if fixed["capacity"] else ""
    print(f"{fixed['kind']} {fixed['type'] or ''} count corrected: {fixed['remaining']}{of} "
          f"{fixed['unit']} left")
    return 0


def format_rolls(rolls: list[dict[str, Any]]) -> str:
    """One block per roll: what it is, when it went in and out, what it gave."""
    if not rolls:
        return "no ribbon or film roll recorded yet (`printstation load ribbon`)\n"
    lines = []
    for r in rolls:
        name = " ".join(x for x in (r["kind"], r["type"] or "") if x)
        ident = f"serial {r['serial'] or '-'}, lot {r['lot'] or '-'}"
        until = f"until {r['replaced_at'][:16].replace('T', ' ')}" if r["finished"] else \
            "in the printer"
        lines.append(f"#{r['id']} {name}, {ident}: loaded {r['loaded_at'][:16].replace('T', ' ')}"
                     f" by {r['who']}, {until}")
        lines.append(f"    {r['summary']}")
        lines.append(f"    {r['good_use']} {r['unit']} to {r['good_cards']} good cards; "
                     f"{r['spoiled_use']} to {r['spoiled_cards']} spoiled")
    return "\n".join(lines) + "\n"


def cmd_rolls(args: argparse.Namespace) -> int:
    rolls = call(args, {"cmd": "rolls"})["rolls"]
    if args.csv:
        write(to_csv(rolls, ROLL_FIELDS), args.csv)
    elif args.json:
        print(json.dumps(rolls, indent=2))
    else:
        sys.stdout.write(format_rolls(rolls))
    return 0


def format_register(month: str, cards: list[dict[str, Any]], station: str) -> str:
    """The monthly register: failed prints, failed encodes and removed blanks apart."""
    lines = [f"Spoiled-card register, station {station}, {month}",
             f"{len(cards)} blank{'s' if len(cards) != 1 else ''} did not become a card"]
    for title, belongs in SECTIONS:
        mine = [c for c in cards if belongs(c)]
        lines += ["", f"{title}: {len(mine)}"]
        for c in mine:
            job = c["job_id"] or "-"
            ref = f" ({c['reference']})" if c["reference"] else ""
            chip = f" chip {c['chip_uid']}" if c["chip_uid"] else ""
            lines.append(f"  card {c['card_no']:>6}  {c['at'][:16].replace('T', ' ')}  "
                         f"{c['reason'] or '-'}  job {job}{ref}{chip}")
    return "\n".join(lines) + "\n"


def spoiled(args: argparse.Namespace) -> int:
    """`ledger --spoiled`: the register of one month (default this month)."""
    request: dict[str, Any] = {"cmd": "spoiled"}
    if args.month:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", args.month):
            raise ValueError(f"--month {args.month}: give a month as YYYY-MM, e.g. 2026-11")
        request["month"] = args.month
    answer = call(args, request)
    if args.csv:
        write(to_csv(answer["cards"], REGISTER_FIELDS), args.csv)
    elif args.json:
        print(json.dumps({"month": answer["month"], "cards": answer["cards"]}, indent=2))
    else:
        sys.stdout.write(format_register(answer["month"], answer["cards"], answer["station_id"]))
    return 0


def add_parsers(sub: Any) -> None:
    note = ("Talks to the running agent through its control socket; the action is recorded "
            "with your user name.")
    p = sub.add_parser("unload", help="record blanks taken out of the feeder unprinted",
                       description="Record blanks taken out of the feeder without printing "
                       "them (to another printer, back to the safe, found missing): each is a "
                       "ledger row, outcome removed, off the agent's count, so `printstation "
                       "ledger --check` balances. " + note)
    p.add_argument("kind", choices=["cards"])
    p.add_argument("--count", type=int, required=True, help="blanks taken out")
    p.add_argument("--why", required=True, help="where they went, recorded in the journal")
    settings_flags(p)
    p.set_defaults(func=cmd_unload)

    p = sub.add_parser("correct", help="put the agent's count of a ribbon or film right",
                       description="Say how much is really left on the ribbon or film roll "
                       "in the printer (the roll stays the same; a new roll is recorded with "
                       "`printstation load`). Where the printer reads the level, its reading "
                       "still wins; the correction clears a count that drifted from it. "
                       + note)
    p.add_argument("kind", choices=["ribbon", "film"])
    p.add_argument("--remaining", type=int, required=True,
                   help="prints (ribbon) or panels (film) really left")
    p.add_argument("--why", required=True, help="how you know, recorded in the journal")
    settings_flags(p)
    p.set_defaults(func=cmd_correct)

    p = sub.add_parser("rolls", help="every ribbon and film roll and what it really gave",
                       description="Per roll: its serial and lot, rated capacity, what good "
                       "cards and (apart) spoiled cards used, and what a finished roll gave "
                       "against its rating. " + note)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--csv", metavar="FILE", help="write the rolls as CSV ('-': stdout)")
    what.add_argument("--json", action="store_true")
    settings_flags(p)
    p.set_defaults(func=cmd_rolls)
