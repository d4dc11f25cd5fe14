"""`printstation load | stock | clean | ledger`: consumables and blanks, for operators
(`books_cli` has unload, correct, rolls and the spoiled-card register).

Each asks the running agent over its control socket (the agent owns the journal); loads and
cleanings are recorded with the operator's user name. What they print is in the language of
the configuration (`language`), else the locale's; the lines the agent writes (the ledger's
check and report, a refusal) are in the agent's, the same when both read one configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from printstation.agent.i18n import N_, _, labels, ngettext
from printstation.agent.surfaces.cliargs import call, load, settings_flags

#: Where a level comes from, after its figure: "(printer)" or "(agent)".
SOURCES = {
    # TRANSLATORS: after a level: the printer read it
    "printer": N_("(printer)"),
    # TRANSLATORS: after a level: the agent counted it (the printer does not read it)
    "agent": N_("(agent)"),
}
#: The ledger table's columns: (key, heading, width); a heading wider than its width widens
#: the column.
LEDGER_COLUMNS = (
    # TRANSLATORS: the headings of `printstation ledger`'s table, one word each if you can
    ("day", N_("day"), -10), ("stock", N_("stock"), -8), ("loaded", N_("loaded"), 7),
    ("issued", N_("issued"), 7), ("spoiled", N_("spoiled"), 7), ("test", N_("test"), 5),
    ("removed", N_("removed"), 7), ("ribbon_used", N_("ribbon"), 7),
    ("film_used", N_("film"), 6))


#: A consumable in a sentence, for "the ribbon and the blanks run out together" (the
#: operator page's words too).
THE_KIND = {"ribbon": N_("the ribbon"), "film": N_("the film"), "cards": N_("the blanks")}


def runs_out_first(kind: str | None, cards: int, together: list[str] | None = None) -> str:
    """`can print 120 more cards; the ribbon runs out first`, or, when several allow as
    many cards (a new ribbon, film and box), that they run out together: none is first."""
    if together and len(together) > 1:
        names = [_(THE_KIND[k]) if k in THE_KIND else k for k in together]
        joined = _("{first} and {last}").format(first=", ".join(names[:-1]), last=names[-1])
        return ngettext("can print {n} more card; {rest}", "can print {n} more cards; {rest}",
                        cards).format(n=cards, rest=_("{names} run out together").format(
                            names=joined))
    if kind == "ribbon":
        return ngettext("can print {n} more card; the ribbon runs out first",
                        "can print {n} more cards; the ribbon runs out first", cards).format(
            n=cards)
    if kind == "film":
        return ngettext("can print {n} more card; the film runs out first",
                        "can print {n} more cards; the film runs out first", cards).format(
            n=cards)
    if kind == "cards":
        return ngettext("can print {n} more card; the blanks run out first",
                        "can print {n} more cards; the blanks run out first", cards).format(
            n=cards)
    return ngettext("can print {n} more card", "can print {n} more cards", cards).format(
        n=cards)


def clock(iso: str, now: str | None = None) -> str:
    """A run-out time as an operator reads it, in this PC's time: `14:30 today`, `09:10
    tomorrow`, `10:05 Mon 30 Nov`; `now` (ISO 8601, for tests) stands in for the clock."""
    from datetime import datetime

    from printstation.agent.station.forecast import when_said

    at = datetime.fromisoformat(iso)
    return when_said(at, datetime.fromisoformat(now) if now else datetime.now().astimezone())


def format_stock(answer: dict[str, Any]) -> str:
    """What is loaded and left, how many cards that allows, and when it runs out (or that
    there is no pace to say when yet)."""
    from printstation.agent.station.consumables import unit_name
    from printstation.agent.station.forecast import NO_PACE

    lines = []
    for c in answer["consumables"]:
        left = _("unknown") if c["remaining"] is None else f"{c['remaining']}"
        of = f"/{c['capacity']}" if c["capacity"] else ""
        source = _(SOURCES[c["source"]]) if c["source"] in SOURCES else f"({c['source']})"
        cards = (ngettext("~{n} card", "~{n} cards", c["cards_left"]).format(n=c["cards_left"])
                 if c.get("cards_left") is not None else "")
        when = (_(", runs out ~{when}").format(when=clock(c["runs_out_at"]))
                if c.get("runs_out_at") else "")
        lines.append(f"{labels.consumable(c['kind']):7} {c['type'] or '-':10} {left}{of} "
                     f"{unit_name(c['unit'])} {source} {cards}{when}")
        if c.get("disagreement"):
            lines.append(f"        ! {c['disagreement']}")
    if answer.get("cards_left") is not None:
        line = runs_out_first(answer.get("first_to_run_out"), answer["cards_left"],
                              answer.get("run_out_together"))
        if answer.get("runs_out_at"):
            line += _(" at about {when}").format(when=clock(answer["runs_out_at"]))
            rate = answer.get("print_rate_per_hour")
            if rate:
                line += _(" (at {rate} cards/hour)").format(rate=f"{rate:.0f}")
        elif answer["cards_left"] > 0:
            line += "; " + _(NO_PACE)
        lines.append(line)
    b = answer.get("blanks")
    if b:
        lines.append(f"{labels.consumable('cards'):7} " + _(
            "loaded {loaded}, issued {issued}, spoiled {spoiled}, test {test}, removed "
            "{removed}, in the feeder {in_feeder}").format(**{"removed": 0, **b}))
    m = answer.get("maintenance")
    if m:
        since = ngettext("{n} card since the last (every {every})",
                         "{n} cards since the last (every {every})",
                         m["cards_since_cleaning"]).format(n=m["cards_since_cleaning"],
                                                           every=m["cleaning_interval"])
        due = " - " + _("cleaning due") if m["cleaning_due"] else ""
        lines.append(f"{labels.consumable('cleaning')} {since}{due}")
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
    from printstation.agent.station.consumables import unit_name

    print(_("loaded {what} {type}: {remaining} {unit} now counted").format(
        what=labels.consumable(loaded["kind"]), type=loaded["type"] or "",
        remaining=loaded["remaining"], unit=unit_name(loaded["unit"])))
    if answer.get("printer_told") is False:
        print(_("the printer is told once the card in it is finished"), file=sys.stderr)
    return 0


def cmd_stock(args: argparse.Namespace) -> int:
    answer = call(args, {"cmd": "stock"})
    answer.pop("ok", None)
    print(json.dumps(answer, indent=2) if args.json else format_stock(answer))
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    answer = call(args, {"cmd": "clean", "why": args.why or "cleaning done"})
    every = answer["maintenance"]["cleaning_interval"]
    print(ngettext("cleaning recorded; next due after {n} card",
                   "cleaning recorded; next due after {n} cards", every).format(n=every))
    return 0


def cmd_ledger(args: argparse.Namespace) -> int:
    load(args)  # the language of a wrong option's message
    if args.spoiled:
        from printstation.agent.surfaces.books_cli import spoiled

        if args.report or args.check or args.day:
            raise ValueError(_("--spoiled is the monthly register: it takes --month, --csv or "
                               "--json, not --report, --check or --day"))
        return spoiled(args)
    if args.month:
        raise ValueError(_("--month goes with --spoiled (the monthly register); the daily "
                           "report takes --day"))
    request: dict[str, Any] = {"cmd": "ledger"}
    if args.day:
        request["day"] = args.day
    answer = call(args, request)
    from printstation.agent.station.ledger import CSV_FIELDS
    from printstation.agent.surfaces.csvtext import write_csv

    if args.csv:
        write_csv(answer["days"], CSV_FIELDS, args.csv)
    elif args.report:
        sys.stdout.write(answer["report"])
    elif args.json:
        print(json.dumps({k: answer[k] for k in ("days", "balance", "loads")}, indent=2))
    elif not args.check:
        sys.stdout.write(format_ledger(answer["days"]))
    if args.check or not (args.csv and str(args.csv) == "-"):
        print(answer["check"], file=sys.stderr if args.csv or args.report else sys.stdout)
    return 0 if not args.check or answer["balance"]["balanced"] else 1


def format_ledger(days: list[dict[str, Any]]) -> str:
    """The ledger per day and stock, one row each, under headings in the process's language
    (a column is as wide as its heading where that is wider)."""
    columns = [(key, _(heading), width) for key, heading, width in LEDGER_COLUMNS]
    widths = [max(abs(width), len(heading)) for _key, heading, width in columns]

    def row(cells: list[Any]) -> str:
        return " ".join(f"{cell:{'<' if width < 0 else '>'}{size}}" for cell, size, (
            _key, _heading, width) in zip(cells, widths, columns, strict=True)).rstrip()

    lines = [row([heading for _key, heading, _width in columns])]
    lines += [row([d[key] for key, _heading, _width in columns]) for d in days]
    return "\n".join(lines) + "\n"


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
