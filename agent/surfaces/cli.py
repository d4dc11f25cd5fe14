"""The `printstation` command, composed from the subcommands each part contributes.

Each module in COMMAND_GROUPS has `add_parsers(sub)`, adding its subcommands with their
`func`; its imports are light, and what a command needs is imported when it runs, so
`printstation run` starts no slower for the tools it does not use."""

from __future__ import annotations

import argparse
import importlib
import os
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


#: The exit status of a command whose reader went away (`printstation jobs | head -1`): what
#: a shell reports for any tool that SIGPIPE ended (128 + 13), as `seq 1 99999 | head -1`
#: does; the output was cut short, and `set -o pipefail` sees it as it sees theirs.
EXIT_BROKEN_PIPE = 141


def main(argv: list[str] | None = None) -> int:
    """Run one command. Whatever goes wrong is one line on stderr, exit 2, never a
    traceback: an error printstation raises on purpose, bad input (ValueError), a file or
    socket error, or the broker's (explained by `broker.reasons`)."""
    from printstation.drivers.errors import PrintstationError

    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside: a reader that left is seen here, not at exit
        return code
    except BrokenPipeError:
        # Python's recipe: stdout goes to devnull so the flush at exit finds no pipe either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        return 130
    except (PrintstationError, ValueError) as exc:
        return _one_line(str(exc))
    except Exception as exc:
        from printstation.agent.broker.reasons import BROKER_ERRORS, explain

        if not isinstance(exc, BROKER_ERRORS):
            raise  # a bug: its traceback is what a developer needs
        if isinstance(exc, OSError) and exc.filename is not None:
            return _one_line(f"{exc.filename}: {exc.strerror}")
        return _one_line(explain(exc).text)


def _one_line(text: str) -> int:
    print(f"printstation: {text}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
