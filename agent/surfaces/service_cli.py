"""`printstation run | config | demo | probe`: the service itself, its configuration, the
demo on the simulated printer, and a look at a printer as the agent would reach it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from printstation.agent.surfaces.cliargs import config_file, load, settings_flags

if TYPE_CHECKING:
    from printstation.agent.config import Settings


def cmd_run(args: argparse.Namespace) -> int:
    from printstation.agent.station.agent import Agent
    from printstation.agent.surfaces import logs

    settings = load(args)  # and the agent speaks its `language` from here (i18n.use)
    logs.configure(settings.log_level)
    _broker_password_at_start(args, settings)
    agent = Agent(settings)
    stop, reload, wake = threading.Event(), threading.Event(), threading.Event()

    def on_signal(flag: threading.Event) -> None:
        flag.set()
        wake.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: on_signal(stop))
    signal.signal(signal.SIGHUP, lambda *_: on_signal(reload))
    agent.start()
    while not stop.is_set() and not agent.stopped.is_set():
        wake.wait(2.0)  # a signal wakes it at once; a fatal error is seen within 2 s
        wake.clear()
        if reload.is_set():
            reload.clear()
            _reload(args, agent)
    agent.stop()
    if agent.fatal is not None:
        print(f"printstation: {agent.fatal}", file=sys.stderr)
        return 3
    return 0


def _reload(args: argparse.Namespace, agent) -> None:
    """SIGHUP: read the configuration again; a bad one is refused and the old one kept."""
    import structlog

    from printstation.agent.config import ConfigError
    from printstation.agent.signing import KeyFileError

    log = structlog.get_logger("printstation.agent")
    try:
        agent.reload(load(args, speak=False))  # the language takes a restart
    except (ConfigError, KeyFileError) as exc:
        log.error("config_reload_rejected", error=str(exc),
                  detail="the running configuration is kept")


def _broker_password_at_start(args: argparse.Namespace, settings: Settings) -> None:
    """Start-up: a broker password the service cannot have stops it here in one line (exit
    2) rather than in a retry loop; one in a config file others can read gets a warning."""
    import structlog

    from printstation.agent.config import exposed_password_warning

    settings.broker_connection_url()
    warning = exposed_password_warning(settings, config_file(args.config))
    if warning is not None:
        structlog.get_logger("printstation.agent").warning(
            "broker_password_in_readable_config", config_file=str(config_file(args.config)),
            detail=warning)


def cmd_config(args: argparse.Namespace) -> int:
    """Print the effective configuration with every URL's password as *** (the output is
    pasted into tickets; password files are named, never read out).

    A password only the service's user may read, or one systemd passes only to the
    service, is noted on stderr and does not fail the check: an operator or an
    administrator's shell runs this without them.
    """
    from printstation.agent.config import ConfigError, exposed_password_warning, mask_secrets

    settings = load(args)
    print(json.dumps(mask_secrets(settings.model_dump(mode="json")), indent=2))
    warning = exposed_password_warning(settings, config_file(args.config))
    if warning is not None:
        print(f"printstation: warning: {warning}", file=sys.stderr)
    try:
        settings.broker_connection_url()
    except ConfigError as exc:
        print(f"printstation: note: {exc}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from printstation.agent import i18n
    from printstation.agent.config import load_settings
    from printstation.agent.surfaces import logs
    from printstation.agent.surfaces.demo import run_demo

    # The demo runs a station of its own; from a configuration it takes only the language.
    i18n.use(load_settings(args.config).language)
    logs.configure("error" if not args.verbose else "info")
    return run_demo(count=args.count, out=args.out, broker=args.broker,
                    print_time=args.print_time, jam_at=args.jam_at, chip=args.chip,
                    dead_chip_at=args.dead_chip_at)


def cmd_probe(args: argparse.Namespace) -> int:
    import tempfile

    from printstation.agent.surfaces.probe import run_probe

    with tempfile.TemporaryDirectory(prefix="printstation-probe-") as tmp:
        return run_probe(args.url, Path(tmp), args.json)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("run", help="run the agent (the service)",
                       description="Run the station agent until SIGTERM: consume jobs and "
                                   "control commands, print, publish statuses.")
    settings_flags(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("config", help="print the effective configuration and exit",
                       description="Validate the configuration (file, environment, flags) "
                                   "and print the result; exits 2 naming a bad key.")
    settings_flags(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("demo", help="print sample cards on the simulated printer",
                       description="Run the real agent core on the simulated printer with "
                                   "an embedded job source (no broker), or through RabbitMQ "
                                   "with --broker, and print a batch of sample cards.")
    p.add_argument("--count", type=int, default=6, help="sample cards to print (default 6)")
    p.add_argument("--out", type=Path, help="output folder (default: a new temporary one)")
    p.add_argument("--broker", metavar="URL", help="go through RabbitMQ at this amqp:// URL")
    p.add_argument("--print-time", type=float, default=0.4, help="seconds per card")
    p.add_argument("--jam-at", type=int, default=3,
                   help="simulate a jam at this card (0: none); it clears after 1 s")
    p.add_argument("--chip", action="store_true",
                   help="chip cards: each card's chip is written (apdu-script/1) at the "
                        "simulated printer's contactless station before it prints")
    p.add_argument("--dead-chip-at", type=int, default=None, metavar="N",
                   help="with --chip: the blank the printer draws as card N has a dead chip "
                        "(default 2; 0: none)")
    p.add_argument("--verbose", action="store_true", help="show the agent's log lines")
    p.add_argument("--config", type=Path,
                   help="a station's TOML file: the demo speaks its `language` (else the "
                        "locale's: LANG=id_ID.UTF-8 is Indonesian)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("probe", help="show a printer's identity, state and consumables",
                       description="Reach the printer at URL as the agent would and show its "
                                   "identity, state, faults and consumables, or why it cannot "
                                   "be reached. Exit 0: ready, 1: faults, 2: unreachable.",
                       epilog="URLs: sim://, evolis+usb://0f49[:PRODUCT]?serial=SN, "
                              "evolis+serial:///dev/ttyUSB0, evolis+tcp://10.0.0.5:9100")
    p.add_argument("url", help="printer URL")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_probe)
