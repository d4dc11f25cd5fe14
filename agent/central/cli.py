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
                         destination=destination, chip=args.chip)
        path = args.out / f"{job_id}.json"
        path.touch(mode=0o600)
        path.write_text(json.dumps(job.body))
        print(path)
    return 0


def read_job(path: Path, *, station: str | None, pool: str | None,
             check: bool = True) -> tuple[str, bytes]:
    """A job file's id and body, or ValueError naming the file and what is wrong with it.

    Checked as the station's intake will check it, with the contract's own models, after
    its destination is set as `submit` sets it: a job the station would refuse is refused
    here, before anything is published (`check=False` skips the contract).
    """
    from pydantic import ValidationError

    from printstation.agent import contract

    try:
        body = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror}") from None
    try:
        doc = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column "
                         f"{exc.colno}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("job_id"), str):
        raise ValueError(f"{path}: not a job: a job is a JSON object with a job_id")
    if check:
        if len(body) > contract.MAX_BODY_BYTES:
            raise ValueError(f"{path}: {len(body)} bytes, more than a job may be "
                             f"({contract.MAX_BODY_BYTES})")
        destination = f"station.{station}" if station else f"pool.{pool}"
        try:
            contract.Job.model_validate({**doc, "destination": destination})
        except ValidationError as exc:
            raise ValueError(f"{path}: not a valid job: {contract.describe_errors(exc)} "
                             "(--no-check sends it anyway)") from None
    return doc["job_id"], body


def _unroutable(url: str, routing_key: str, exchange: str, what: str) -> str:
    """Why the broker returned a message: nothing is bound there yet."""
    from printstation.agent.broker.reasons import BrokerAddress

    at = BrokerAddress.of(url)
    vhost = f" in vhost {at.vhost!r}" if at else ""
    return (f"nothing takes {routing_key!r} on {exchange!r}{vhost} (returned unroutable): "
            f"{what}; or the id or the vhost is wrong")


def _no_queue(station: str | None, pool: str | None) -> str:
    if station:
        return (f"station {station!r} has no queue yet: its agent declares it when it first "
                "connects to this broker (start `printstation run` there once)")
    return (f"pool {pool!r} has no queue yet: an agent with {pool!r} in its pools declares it "
            "when it first connects to this broker")


def cmd_submit(args: argparse.Namespace) -> int:
    """Check every file first; publish only when all are good (a batch is never half sent
    because its third file has a typo)."""
    import pika.exceptions

    from printstation.agent.broker.reasons import BrokerUnusable, explained
    from printstation.agent.central.tools import Submitter

    jobs, bad = [], []
    for path in map(Path, args.jobs):
        try:
            jobs.append((path, *read_job(path, station=args.station, pool=args.pool,
                                         check=not args.no_check)))
        except ValueError as exc:
            bad.append(str(exc))
    if bad:
        for line in bad:
            print(f"printstation: {line}", file=sys.stderr)
        print(f"printstation: nothing published ({len(bad)} of {len(jobs) + len(bad)} files "
              "refused)", file=sys.stderr)
        return 2
    rk = f"station.{args.station}" if args.station else f"pool.{args.pool}"
    with explained(args.broker_url), \
            Submitter.from_key_file(args.broker_url, args.key, args.key_id) as sub:
        for path, _job_id, body in jobs:
            try:
                job_id = sub.submit_job(body, station=args.station, pool=args.pool)
            except pika.exceptions.UnroutableError:
                raise BrokerUnusable(f"{path}: not published: " + _unroutable(
                    args.broker_url, rk, sub.names.job_exchange,
                    _no_queue(args.station, args.pool))) from None
            except pika.exceptions.NackError:
                raise BrokerUnusable(f"{path}: not published: the broker refused it (nack): "
                                     f"the queue for {rk!r} is full or unavailable; try "
                                     "again later") from None
            print(f"published {job_id} ({len(body)} bytes, confirmed)", flush=True)
    return 0


def cmd_control(args: argparse.Namespace) -> int:
    import pika.exceptions

    from printstation.agent.broker.reasons import BrokerUnusable, explained
    from printstation.agent.central.tools import Submitter

    fields: dict[str, Any] = {}
    if args.job_id:
        fields["job_id"] = args.job_id
    if args.reason:
        fields["reason"] = args.reason
    with explained(args.broker_url), \
            Submitter.from_key_file(args.broker_url, args.key, args.key_id) as sub:
        try:
            command_id = sub.control(args.station, args.command, command_id=args.command_id,
                                     **fields)
        except pika.exceptions.UnroutableError:
            raise BrokerUnusable(f"{args.command} not sent: " + _unroutable(
                args.broker_url, f"station.{args.station}", sub.names.control_exchange,
                f"station {args.station!r} has no control queue yet: its agent declares it "
                "when it first connects to this broker (start `printstation run` there "
                "once)")) from None
    print(f"sent {args.command} to {args.station} as command {command_id} (confirmed)")
    return 0


def _level(c: dict) -> str:
    """A consumable's level in words: `unknown` where the printer did not say."""
    if c.get("remaining") is None:
        return f"{c.get('kind', '?')} unknown"
    capacity = f"/{c['capacity']}" if c.get("capacity") is not None else ""
    return f"{c.get('kind', '?')} {c['remaining']}{capacity}"


def format_event(e: dict) -> str:
    from printstation.agent.station.forecast import NO_PACE
    from printstation.agent.surfaces.stock_cli import clock

    """One event on one line; a field an event leaves out is left out, never `None`."""
    schema = str(e.get("schema", "?")).split("/")[0].removeprefix("printstation.")
    head = f"{str(e.get('at', ''))[:19]} {e.get('station_id')} #{e.get('seq')} {schema:9}"
    if schema == "status":
        reason = e.get("reason") or {}
        card = e.get("card") or {}
        extra = f" card {card['card_no']}" if card.get("card_no") is not None else ""
        detail = f": {reason['detail']}" if reason.get("detail") else ""
        why = f" ({reason.get('code')}{detail})" if reason else ""
        return f"{head} {e.get('job_id')} {e.get('status')}{extra}{why}"
    if schema == "card":
        why = f" {e['reason']}" if e.get("reason") else ""
        return f"{head} card {e.get('card_no')} {e.get('outcome')} job={e.get('job_id')}{why}"
    if schema == "telemetry":
        stock = ", ".join(_level(c) for c in e.get("consumables") or [])
        why = f" ({e['blocked_reason']})" if e.get("blocked_reason") else ""
        left = ""
        if e.get("cards_left") is not None:
            together = e.get("run_out_together") or []
            first = (f"{' and '.join(together)} together" if len(together) > 1 else
                     f"{e['first_to_run_out']} first" if e.get("first_to_run_out") else "")
            when = f", ~{clock(e['runs_out_at'])}" if e.get("runs_out_at") else f"; {NO_PACE}"
            left = f"; {e['cards_left']} cards left ({first or 'run out'}{when})"
        queued = f"; queued {e['queued_jobs']}" if e.get("queued_jobs") is not None else ""
        return f"{head} {e.get('state')}{why}; {stock or 'consumables unknown'}{left}{queued}"
    if schema == "alert":
        return f"{head} {e.get('severity')} {e.get('condition')}: {e.get('message')}" + (
            " [cleared]" if e.get("cleared") else "")
    return f"{head} {json.dumps(e)[:200]}"


def cmd_watch(args: argparse.Namespace) -> int:
    from printstation.agent.broker.reasons import explained
    from printstation.agent.central.tools import EventTap

    binding = f"*.{args.station}.#" if args.station else "#"
    with explained(args.broker_url), EventTap(args.broker_url, binding=binding) as tap:
        print(f"watching {binding} on printstation.events (Ctrl-C to stop)", file=sys.stderr)
        try:
            for event in tap.events(args.timeout or 1e9):
                print(json.dumps(event) if args.json else format_event(event), flush=True)
        except KeyboardInterrupt:
            pass
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    from printstation.agent.broker.reasons import explained
    from printstation.agent.central.fleet import run

    output = "json" if args.json else "csv" if args.csv else "live"
    with explained(args.broker_url):
        return run(args.broker_url, pattern=args.stations, duration=args.duration,
                   output=output)


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
    p.add_argument("--chip", action="store_true",
                   help="personalise the card's chip too (apdu-script/1, contract v2 §3)")
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
            p.add_argument("--no-check", action="store_true",
                           help="publish without checking each job against the contract "
                                "first (to test a station's refusals)")
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
