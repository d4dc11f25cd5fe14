"""`printstation keys | sample-jobs | submit | control | watch | fleet | schema`: the central
side's reference tools, for integrators and technicians (no station configuration).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: The broker the tools talk to unless told otherwise: the one on this machine.
LOCAL_BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"


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
    from printstation.agent.station.forecast import NO_PACE
    from printstation.agent.surfaces.stock_cli import clock

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
                + (f", ~{clock(e['runs_out_at'])}" if e.get("runs_out_at") else f"; {NO_PACE}")
                + ")"
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


def cmd_fleet(args: argparse.Namespace) -> int:
    from printstation.agent.central.fleet import run

    output = "json" if args.json else "csv" if args.csv else "live"
    return run(args.broker_url, pattern=args.stations, duration=args.duration, output=output)


def add_parsers(sub: Any) -> None:
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
        p.add_argument("--broker-url", default=LOCAL_BROKER)
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
    p.add_argument("--broker-url", default=LOCAL_BROKER)
    p.add_argument("--station", help="only this station")
    p.add_argument("--json", action="store_true", help="one JSON event per line")
    p.add_argument("--timeout", type=float, help="stop after this many idle seconds")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("fleet", help="every station's state and consumables, first to run "
                                     "out first",
                       description="For technicians: listens to the telemetry and alerts all "
                       "stations publish on printstation.events and shows each station's "
                       "state, faults, consumables, cards left and run-out time, sorted by "
                       "what runs out first; live, or once as --json or --csv.")
    p.add_argument("--broker-url", default=LOCAL_BROKER)
    p.add_argument("--stations", default="*", help="only stations matching this pattern, "
                                                   "e.g. 'bogor-*'")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the table once as JSON")
    out.add_argument("--csv", action="store_true", help="print the table once as CSV")
    p.add_argument("--duration", type=float, help="listen this many seconds, print, exit "
                                                  "(default for --json/--csv: 35, one "
                                                  "telemetry interval and a margin)")
    p.set_defaults(func=cmd_fleet)
