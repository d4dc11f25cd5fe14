"""What every station-side subcommand shares: the configuration flags, loading the
settings from them, and a call to the running agent's control socket."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from printstation.agent.config import Settings


def settings_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration (flags override PRINTSTATION_* variables, "
                             "which override the --config file)")
    g.add_argument("--config", type=Path, help="TOML file, see printstation.example.toml")
    g.add_argument("--station-id", help="this station's id (a-z 0-9 - _, 1-64)")
    g.add_argument("--broker-url", help="amqp:// or amqps:// URL of the broker")
    g.add_argument("--pool", action="append", dest="pools", metavar="POOL",
                   help="join this pool queue (repeat for several)")
    g.add_argument("--printer-url", help="printer URL, e.g. sim://?print_time=0.5")
    g.add_argument("--state-dir", type=Path, help="journal and state folder (made 0700)")
    g.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    g.add_argument("--web-listen", metavar="HOST:PORT",
                   help='where the operator page is served (web_listen; "" switches it off)')
    g.add_argument("--metrics-listen", metavar="HOST:PORT",
                   help='where /metrics and /healthz are served (metrics_listen; "" switches '
                        "them off)")


def load(args: argparse.Namespace) -> Settings:
    from printstation.agent import i18n
    from printstation.agent.config import load_settings

    settings = load_settings(args.config, station_id=args.station_id,
                             broker_url=args.broker_url, pools=args.pools,
                             printer_url=args.printer_url, state_dir=args.state_dir,
                             log_level=args.log_level, web_listen=args.web_listen,
                             metrics_listen=args.metrics_listen)
    i18n.use(settings.language)  # from here on the command speaks the configured language
    return settings


def call(args: argparse.Namespace, request: dict[str, Any]) -> dict[str, Any]:
    from printstation.agent.surfaces.control_socket import call

    return call(load(args).socket_path(), request)
