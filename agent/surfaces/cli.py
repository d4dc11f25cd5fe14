"""The `printstation` command, composed from the subcommands each part contributes.

Each module in COMMAND_GROUPS has `add_parsers(sub)`, adding its subcommands with their
`func`; its imports are light, and what a command needs is imported when it runs, so
`printstation run` starts no slower for the tools it does not use."""

from __future__ import annotations

import argparse
import importlib
import sys

from printstation.agent import __version__

#: Where the subcommands come from, in the order `--help` lists them.
COMMAND_GROUPS = (
    "printstation.agent.surfaces.service_cli",   # run, config, demo, probe
    "printstation.agent.surfaces.operator_cli",  # status, pause, ..., web
    "printstation.agent.surfaces.stock_cli",     # load, stock, clean, ledger
    "printstation.agent.surfaces.books_cli",     # unload, correct, rolls
    "printstation.agent.broker.cli",             # broker-permissions, declare-shared
    "printstation.agent.central.cli",            # keys, sample-jobs, submit, control, watch, ...
)

EXAMPLES = """\
examples:
  printstation demo                          print 6 sample cards on the simulated printer
  printstation run --config /etc/printstation/printstation.toml
  printstation keys generate --id central-2026 --out keys/
  printstation sample-jobs --count 5 --out jobs/
  printstation submit jobs/*.json --key keys/central-2026.key --station bogor-kota-01
  printstation watch --station bogor-kota-01
  printstation load ribbon --type YMCKO --capacity 250
  printstation load cards --count 500 --stock ektp
  printstation stock
  printstation ledger --check
  printstation unload cards --count 20 --why "to the KIA printer"
  printstation rolls                         each ribbon and film roll against its rating
  printstation web                           open the operator page (--print-url: its address)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="printstation", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="ID-card print-station agent: takes signed print jobs from RabbitMQ, "
                    "prints them on the card printer, reports every status back.",
        epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"printstation {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for group in COMMAND_GROUPS:
        importlib.import_module(group).add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; any error printstation raises on purpose is one line, exit 2."""
    from printstation.drivers.errors import PrintstationError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (PrintstationError, ValueError) as exc:
        print(f"printstation: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
