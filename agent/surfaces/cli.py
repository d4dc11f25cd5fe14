"""The `printstation` command: the agent, its demo, and the central side's reference tools."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from printstation.agent import __version__

if TYPE_CHECKING:
    from printstation.agent.config import Settings

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
  printstation web                           open the operator page (--print-url: its address)
"""


def _settings_flags(p: argparse.ArgumentParser) -> None:
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


def _load(args: argparse.Namespace):
    from printstation.agent.config import load_settings

    return load_settings(args.config, station_id=args.station_id, broker_url=args.broker_url,
                         pools=args.pools, printer_url=args.printer_url,
                         state_dir=args.state_dir, log_level=args.log_level)


def cmd_run(args: argparse.Namespace) -> int:
    from printstation.agent.station.agent import Agent
    from printstation.agent.surfaces import logs

    settings = _load(args)
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


def _call(args: argparse.Namespace, request: dict[str, Any]) -> dict[str, Any]:
    from printstation.agent.surfaces.control_socket import call

    return call(_load(args).socket_path(), request)


def cmd_local(args: argparse.Namespace) -> int:
    """Operator commands, answered by the running agent over its control socket."""
    request: dict[str, Any] = {"cmd": args.command}
    for key in ("job_id", "why", "limit"):
        if getattr(args, key, None) is not None:
            request[key] = getattr(args, key)
    if args.command == "resolve":
        request["printed"] = args.printed
    answer = _call(args, request)
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

    settings = _load(args)
    if not settings.web_listen:
        raise ControlError("the operator page is switched off (web_listen is empty)")
    url = _call(args, {"cmd": "web-login"})["url"]
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


def _reload(args: argparse.Namespace, agent) -> None:
    """SIGHUP: read the configuration again; a bad one is refused and the old one kept."""
    import structlog

    from printstation.agent.config import ConfigError
    from printstation.agent.signing import KeyFileError

    log = structlog.get_logger("printstation.agent")
    try:
        agent.reload(_load(args))
    except (ConfigError, KeyFileError) as exc:
        log.error("config_reload_rejected", error=str(exc),
                  detail="the running configuration is kept")


def _broker_password_at_start(args: argparse.Namespace, settings: Settings) -> None:
    """Start-up: a broker password the service cannot have stops it here in one line (exit
    2) rather than in a retry loop; one in a config file others can read gets a warning."""
    import structlog

    from printstation.agent.config import exposed_password_warning

    settings.broker_connection_url()
    warning = exposed_password_warning(settings, args.config)
    if warning is not None:
        structlog.get_logger("printstation.agent").warning(
            "broker_password_in_readable_config", config_file=str(args.config),
            detail=warning)


def cmd_config(args: argparse.Namespace) -> int:
    """Print the effective configuration with every URL's password as *** (the output is
    pasted into tickets; password files are named, never read out).

    A password only the service's user may read, or one systemd passes only to the
    service, is noted on stderr and does not fail the check: an operator or an
    administrator's shell runs this without them.
    """
    from printstation.agent.config import ConfigError, exposed_password_warning, mask_secrets

    settings = _load(args)
    print(json.dumps(mask_secrets(settings.model_dump(mode="json")), indent=2))
    warning = exposed_password_warning(settings, args.config)
    if warning is not None:
        print(f"printstation: warning: {warning}", file=sys.stderr)
    try:
        settings.broker_connection_url()
    except ConfigError as exc:
        print(f"printstation: note: {exc}", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from printstation.agent.surfaces import logs
    from printstation.agent.surfaces.demo import run_demo

    logs.configure("error" if not args.verbose else "info")
    return run_demo(count=args.count, out=args.out, broker=args.broker,
                    print_time=args.print_time, jam_at=args.jam_at)


def cmd_probe(args: argparse.Namespace) -> int:
    import tempfile

    from printstation.agent.surfaces.probe import run_probe

    with tempfile.TemporaryDirectory(prefix="printstation-probe-") as tmp:
        return run_probe(args.url, Path(tmp), args.json)


def cmd_schema(args: argparse.Namespace) -> int:
    from printstation.agent.central.schema import write_all

    for path in write_all(args.out):
        print(path)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from printstation.agent.signing import generate_keypair

    priv, pub = generate_keypair(args.out, args.id)
    print(f"private key (keep on the central system, 0600): {priv}")
    print(f"public key (give to stations as trusted_keys.{args.id}): {pub}")
    return 0


def cmd_sample_jobs(args: argparse.Namespace) -> int:
    from printstation.agent.central.samples import sample_job

    args.out.mkdir(parents=True, exist_ok=True, mode=0o700)
    destination = f"station.{args.station}" if args.station else \
        f"pool.{args.pool}" if args.pool else None
    for i in range(1, args.count + 1):
        job_id = f"{args.prefix}-{i:06d}"
        job = sample_job(job_id, card_stock=args.stock, two_sided=not args.one_sided,
                         destination=destination)
        path = args.out / f"{job_id}.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(job.body))
        print(path)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from printstation.agent.central.tools import Submitter

    with Submitter.from_key_file(args.broker_url, args.key, args.key_id) as sub:
        for path in args.jobs:
            body = Path(path).read_bytes()
            job_id = sub.submit_job(body, station=args.station, pool=args.pool)
            print(f"published {job_id} ({len(body)} bytes, confirmed)")
    return 0


def cmd_control(args: argparse.Namespace) -> int:
    from printstation.agent.central.tools import Submitter

    fields: dict[str, Any] = {}
    if args.job_id:
        fields["job_id"] = args.job_id
    if args.reason:
        fields["reason"] = args.reason
    with Submitter.from_key_file(args.broker_url, args.key, args.key_id) as sub:
        command_id = sub.control(args.station, args.command, command_id=args.command_id,
                                 **fields)
    print(f"sent {args.command} to {args.station} as command {command_id} (confirmed)")
    return 0


def format_event(e: dict) -> str:
    schema = e.get("schema", "?").split("/")[0].removeprefix("printstation.")
    head = f"{e.get('at', '')[:19]} {e.get('station_id')} #{e.get('seq')} {schema:9}"
    if schema == "status":
        reason = e.get("reason") or {}
        card = e.get("card") or {}
        extra = f" card {card['card_no']}" if card else ""
        why = f" ({reason.get('code')}: {reason.get('detail')})" if reason else ""
        return f"{head} {e['job_id']} {e['status']}{extra}{why}"
    if schema == "card":
        return f"{head} card {e['card_no']} {e['outcome']} job={e['job_id']} {e['reason'] or ''}"
    if schema == "telemetry":
        stock = ", ".join(f"{c['kind']} {c['remaining']}/{c['capacity']}"
                          for c in e.get("consumables", []))
        why = f" ({e['blocked_reason']})" if e.get("blocked_reason") else ""
        left = (f"; {e['cards_left']} cards left ({e['first_to_run_out']} first"
                + (f", ~{e['runs_out_at'][:16]}" if e.get("runs_out_at") else "") + ")"
                if e.get("cards_left") is not None else "")
        return f"{head} {e['state']}{why}; {stock}{left}; queued {e.get('queued_jobs')}"
    if schema == "alert":
        return f"{head} {e['severity']} {e['condition']}: {e['message']}" + (
            " [cleared]" if e.get("cleared") else "")
    return f"{head} {json.dumps(e)[:200]}"


def cmd_watch(args: argparse.Namespace) -> int:
    from printstation.agent.central.tools import EventTap

    binding = f"*.{args.station}.#" if args.station else "#"
    with EventTap(args.broker_url, binding=binding) as tap:
        print(f"watching {binding} on printstation.events (Ctrl-C to stop)", file=sys.stderr)
        try:
            for event in tap.events(args.timeout or 1e9):
                print(json.dumps(event) if args.json else format_event(event), flush=True)
        except KeyboardInterrupt:
            pass
    return 0


def cmd_permissions(args: argparse.Namespace) -> int:
    from printstation.agent.broker.permissions import rabbitmqctl_lines

    settings = _load(args)
    for line in rabbitmqctl_lines(settings, args.vhost, args.user or settings.station_id):
        print(line)
    return 0


def cmd_declare_shared(args: argparse.Namespace) -> int:
    import pika

    from printstation.agent.broker.topology import TlsFiles, connection_parameters, declare_shared

    settings = _load(args)
    conn = pika.BlockingConnection(connection_parameters(
        settings.broker_connection_url(), name="printstation-admin",
        tls=TlsFiles.of(settings)))
    try:
        declare_shared(conn, settings)
    finally:
        conn.close()
    print("declared the exchanges and the dead-letter queue of contract section 1")
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    from printstation.agent.central.fleet import run

    output = "json" if args.json else "csv" if args.csv else "live"
    return run(args.broker_url, pattern=args.stations, duration=args.duration, output=output)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="printstation", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="ID-card print-station agent: takes signed print jobs from RabbitMQ, "
                    "prints them on the card printer, reports every status back.",
        epilog=EXAMPLES)
    parser.add_argument("--version", action="version", version=f"printstation {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the agent (the service)",
                       description="Run the station agent until SIGTERM: consume jobs and "
                                   "control commands, print, publish statuses.")
    _settings_flags(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("config", help="print the effective configuration and exit",
                       description="Validate the configuration (file, environment, flags) "
                                   "and print the result; exits 2 naming a bad key.")
    _settings_flags(p)
    p.set_defaults(func=cmd_config)

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
        _settings_flags(p)
        p.set_defaults(func=cmd_local)

    p = sub.add_parser("web", help="open the operator page in your browser",
                       description="Open the running agent's operator page in a browser, "
                       "logged in with the token the agent writes next to its control socket "
                       "(readable by the agent's group only). Exit 2 if it cannot be read.")
    p.add_argument("--print-url", action="store_true",
                   help="only print the page's address (it holds the token: keep it private)")
    _settings_flags(p)
    p.set_defaults(func=cmd_web)

    from printstation.agent.surfaces.stock_cli import add_parsers as add_stock_parsers

    add_stock_parsers(sub, _settings_flags, _call)

    p = sub.add_parser("broker-permissions",
                       help="the rabbitmqctl lines that give a station its own broker user",
                       description="Print the rabbitmqctl lines that create this station's "
                       "broker user with exactly the permissions it needs (its own queues; "
                       "write on the event, hand-back and dead-letter exchanges, never on the "
                       "job exchange; read on the job and control exchanges; topic "
                       "permissions that keep its events in its own name).")
    p.add_argument("--vhost", default="/", help="the vhost (default /)")
    p.add_argument("--user", help="the user name (default: the station id)")
    _settings_flags(p)
    p.set_defaults(func=cmd_permissions)

    p = sub.add_parser("declare-shared",
                       help="declare the exchanges and dead-letter queue (administrators)",
                       description="Declare, with an administrator's --broker-url, what all "
                       "stations share: the job, event, control, hand-back and dead-letter "
                       "exchanges, the dead-letter queue and the central system's hand-back "
                       "queue. Station users may not; their agents only check that these "
                       "exist.")
    _settings_flags(p)
    p.set_defaults(func=cmd_declare_shared)

    p = sub.add_parser("fleet", help="every station's state and consumables, first to run "
                                     "out first",
                       description="For technicians: listens to the telemetry and alerts all "
                       "stations publish on printstation.events and shows each station's "
                       "state, faults, consumables, cards left and run-out time, sorted by "
                       "what runs out first; live, or once as --json or --csv.")
    p.add_argument("--broker-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    p.add_argument("--stations", default="*", help="only stations matching this pattern, "
                                                   "e.g. 'bogor-*'")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the table once as JSON")
    out.add_argument("--csv", action="store_true", help="print the table once as CSV")
    p.add_argument("--duration", type=float, help="listen this many seconds, print, exit "
                                                  "(default for --json/--csv: 35, one "
                                                  "telemetry interval and a margin)")
    p.set_defaults(func=cmd_fleet)

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
    p.add_argument("--verbose", action="store_true", help="show the agent's log lines")
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

    p = sub.add_parser("schema", help="write JSON Schemas and the AsyncAPI document",
                       description="Write a JSON Schema for every contract message and an "
                                   "AsyncAPI document of the broker topology.")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("keys", help="signing keys for the central side",
                       description="Manage Ed25519 signing keys.")
    ksub = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    k = ksub.add_parser("generate", help="make a key pair: ID.key (private) and ID.pub",
                        description="Generate an Ed25519 key pair for signing jobs.")
    k.add_argument("--id", required=True, help="key id, sent as x-key-id")
    k.add_argument("--out", type=Path, default=Path("."), help="folder for the two files")
    k.set_defaults(func=cmd_keys)

    p = sub.add_parser("sample-jobs", help="write synthetic e-KTP-like job files",
                       description="Write sample job bodies (fake names and numbers, drawn "
                                   "with Pillow) as JSON files, unsigned.")
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--prefix", default="SAMPLE")
    p.add_argument("--stock", default="ektp")
    p.add_argument("--one-sided", action="store_true")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--station", help="destination station.<id> (default: none; "
                                          "`submit` fills it in)")
    target.add_argument("--pool", help="destination pool.<pool>")
    p.set_defaults(func=cmd_sample_jobs)

    for name, func, helptext in [
        ("submit", cmd_submit, "sign and publish job files (central side)"),
        ("control", cmd_control, "send a signed control command to a station"),
    ]:
        p = sub.add_parser(name, help=helptext, description=helptext + ", with publisher "
                           "confirms and mandatory routing.")
        p.add_argument("--broker-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
        p.add_argument("--key", type=Path, help="private key file; without it, unsigned")
        p.add_argument("--key-id", help="x-key-id (default: the key file's name)")
        if name == "submit":
            p.add_argument("jobs", nargs="+", help="job JSON files")
            target = p.add_mutually_exclusive_group(required=True)
            target.add_argument("--station", help="publish to station.<id> (sets the job's "
                                                  "destination before signing)")
            target.add_argument("--pool", help="publish to pool.<pool> (likewise)")
        else:
            p.add_argument("station")
            p.add_argument("command", choices=["cancel", "pause", "resume", "telemetry"])
            p.add_argument("--job-id")
            p.add_argument("--reason")
            p.add_argument("--command-id", help="the command's id (default: a new one); a "
                                                "station acts on each id once")
        p.set_defaults(func=func)

    p = sub.add_parser("watch", help="follow the events stations publish",
                       description="Tail printstation.events in a readable form.")
    p.add_argument("--broker-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    p.add_argument("--station", help="only this station")
    p.add_argument("--json", action="store_true", help="one JSON event per line")
    p.add_argument("--timeout", type=float, help="stop after this many idle seconds")
    p.set_defaults(func=cmd_watch)
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
