"""`printstation unload | correct | rolls`, and `ledger --spoiled`: putting the books right,
and the reports offices owe on rolls and on every blank that did not become a card.

Each asks the running agent over its control socket (the agent owns the journal); what an
operator records is kept with their user name and why. The text forms are in the
configuration's language (else the locale's); the CSV is data, its columns and codes English.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from printstation.agent.i18n import N_, _, labels, ngettext
from printstation.agent.surfaces.cliargs import call, settings_flags
from printstation.agent.surfaces.csvtext import write_csv

ROLL_FIELDS = ("id", "kind", "type", "serial", "lot", "capacity", "started_with", "unit",
               "loaded_at", "who", "replaced_at", "good_cards", "good_use", "spoiled_cards",
               "spoiled_use", "used", "left", "yield_pct", "summary")
REGISTER_FIELDS = ("card_no", "at", "outcome", "reason", "job_id", "reference", "chip_uid",
                   "stock")
#: The spoiled-card register's parts, in the order the text form lists them.
SECTIONS = ((N_("Failed prints"), lambda c: c["outcome"] == "spoiled" and
             c["reason"] != "encode_failed"),
            (N_("Failed encodes"), lambda c: c["outcome"] == "spoiled" and
             c["reason"] == "encode_failed"),
            (N_("Taken out of the feeder unprinted"), lambda c: c["outcome"] == "removed"))


def cmd_unload(args: argparse.Namespace) -> int:
    answer = call(args, {"cmd": "unload", "kind": args.kind, "count": args.count,
                         "why": args.why})
    numbers = answer["removed"]
    span = f"{numbers[0]}" if len(numbers) == 1 else f"{numbers[0]}-{numbers[-1]}"
    print(ngettext("recorded {n} blank taken out unprinted (card no. {numbers}); {left} now "
                   "counted in the feeder",
                   "recorded {n} blanks taken out unprinted (card no. {numbers}); {left} now "
                   "counted in the feeder", len(numbers)).format(
        n=len(numbers), numbers=span, left=answer["in_feeder"]))
    return 0


def cmd_correct(args: argparse.Namespace) -> int:
    fixed = call(args, {"cmd": "correct", "kind": args.kind, "remaining": args.remaining,
                        "why": args.why})["corrected"]
    from printstation.agent.station.consumables import unit_name

    figures = {"what": labels.consumable(fixed["kind"]), "type": fixed["type"] or "",
               "remaining": fixed["remaining"], "capacity": fixed["capacity"],
               "unit": unit_name(fixed["unit"])}
    if fixed["capacity"]:
        print(_("{what} {type} count corrected: {remaining} of {capacity} {unit} "
                "left").format(**figures))
    else:
        print(_("{what} {type} count corrected: {remaining} {unit} left").format(**figures))
    return 0


def format_rolls(rolls: list[dict[str, Any]]) -> str:
    """One block per roll: what it is, when it went in and out, what it gave."""
    from printstation.agent.station.consumables import unit_name

    if not rolls:
        return _("no ribbon or film roll recorded yet (`printstation load ribbon`)") + "\n"
    lines = []
    for r in rolls:
        name = " ".join(x for x in (labels.consumable(r["kind"]), r["type"] or "") if x)
        until = (_("until {at}").format(at=_minute(r["replaced_at"])) if r["finished"] else
                 _("in the printer"))
        lines.append(f"#{r['id']} " + _("{name}, serial {serial}, lot {lot}: loaded {at} by "
                                        "{who}, {until}").format(
            name=name, serial=r["serial"] or "-", lot=r["lot"] or "-",
            at=_minute(r["loaded_at"]), who=r["who"], until=until))
        lines.append(f"    {r['summary']}")
        lines.append("    " + ngettext(
            "{good_use} {unit} to {n} good card; {spoiled_use} to {spoiled} spoiled",
            "{good_use} {unit} to {n} good cards; {spoiled_use} to {spoiled} spoiled",
            r["good_cards"]).format(good_use=r["good_use"], unit=unit_name(r["unit"]),
                                    n=r["good_cards"], spoiled_use=r["spoiled_use"],
                                    spoiled=r["spoiled_cards"]))
    return "\n".join(lines) + "\n"


def _minute(iso: str) -> str:
    """`2026-11-24 09:15` from an ISO 8601 time."""
    return iso[:16].replace("T", " ")


def cmd_rolls(args: argparse.Namespace) -> int:
    rolls = call(args, {"cmd": "rolls"})["rolls"]
    if args.csv:
        write_csv(rolls, ROLL_FIELDS, args.csv)
    elif args.json:
        print(json.dumps(rolls, indent=2))
    else:
        sys.stdout.write(format_rolls(rolls))
    return 0


def format_register(month: str, cards: list[dict[str, Any]], station: str) -> str:
    """The monthly register: failed prints, failed encodes and removed blanks apart."""
    lines = [_("Spoiled-card register, station {station}, {month}").format(station=station,
                                                                          month=month),
             ngettext("{n} blank did not become a card", "{n} blanks did not become a card",
                      len(cards)).format(n=len(cards))]
    for title, belongs in SECTIONS:
        mine = [c for c in cards if belongs(c)]
        lines += ["", f"{_(title)}: {len(mine)}"]
        for c in mine:
            job = c["job_id"] or "-"
            ref = f" ({c['reference']})" if c["reference"] else ""
            chip = " " + _("chip {uid}").format(uid=c["chip_uid"]) if c["chip_uid"] else ""
            # TRANSLATORS: a line of the register; {reason} is a code, as it is
            lines.append("  " + _("card {number}  {at}  {reason}  job {job}").format(
                number=f"{c['card_no']:>6}", at=_minute(c["at"]), reason=c["reason"] or "-",
                job=job) + f"{ref}{chip}")
    return "\n".join(lines) + "\n"


def spoiled(args: argparse.Namespace) -> int:
    """`ledger --spoiled`: the register of one month (default this month)."""
    request: dict[str, Any] = {"cmd": "spoiled"}
    if args.month:
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", args.month):
            raise ValueError(_("--month {month}: give a month as YYYY-MM, e.g. "
                               "2026-11").format(month=args.month))
        request["month"] = args.month
    answer = call(args, request)
    if args.csv:
        write_csv(answer["cards"], REGISTER_FIELDS, args.csv)
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
