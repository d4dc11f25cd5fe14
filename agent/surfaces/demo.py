"""`printstation demo`: the real agent core printing sample cards on the simulated printer.

Without `--broker` the jobs go in through the embedded source (no RabbitMQ needed); with
it they are signed and published to the broker and the agent consumes them as in
production. Either way the agent verifies signatures, journals, prints on its printer
thread and reports every status; the demo shows progress and ends with a summary read
from the simulator's ledger, which is what the "printer" really produced.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from printstation.agent.broker.embedded import EmbeddedSource
from printstation.agent.central.samples import SampleJob, sample_job
from printstation.agent.config import Settings, mask_url
from printstation.agent.contract import TERMINAL_STATUSES
from printstation.agent.i18n import _, labels, ngettext
from printstation.agent.signing import Verifier, sign_headers
from printstation.agent.station.agent import Agent
from printstation.simulator.chip import digest_of_writes
from printstation.simulator.printer import read_ledger

KEY_ID = "demo"


def run_demo(*, count: int, out: Path | None, broker: str | None, print_time: float,
             jam_at: int | None, console: Console | None = None, timeout: float = 600,
             chip: bool = False, dead_chip_at: int | None = None) -> int:
    """Print `count` sample cards; returns the process exit code (0 when all printed).

    With `chip`, every job personalises its card's chip: the simulated printer parks each
    blank at its contactless station and the `sim://` encoder writes it (no pcscd needed);
    the blank drawn as card `dead_chip_at` (default 2) has a dead chip and is spoiled.
    """
    console = console or Console(stderr=False)
    out = out or Path(tempfile.mkdtemp(prefix="printstation-demo-"))
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    cards_dir = out / "cards"
    station = f"demo-{uuid.uuid4().hex[:8]}"
    jam = f"&jam_at={jam_at}&clear_after=1" if jam_at else ""
    dead = (2 if dead_chip_at is None else dead_chip_at) if chip else 0
    if dead:
        jam += f"&chip_faults={dead}:dead"
    settings = Settings(
        station_id=station,
        state_dir=out / "state",
        printer_url=f"sim://?print_time={print_time}&out={cards_dir}{jam}",
        encoder_url="sim://" if chip else None,
        # No operator page or metrics: the demo runs beside a station's own agent, whose
        # ports it must not take (an agent stops at start on a taken port).
        web_listen="", metrics_listen="",
        **({"broker_url": broker} if broker else {}),
    )
    key = Ed25519PrivateKey.generate()
    agent = Agent(settings, verifier=Verifier({KEY_ID: key.public_key()}))

    final: dict[str, dict] = {}
    last_telemetry: dict = {}
    seen_status: Counter[str] = Counter()
    done = threading.Event()
    lock = threading.Lock()
    job_ids = [f"DEMO-{station[5:]}-{i:04d}" for i in range(1, count + 1)]
    jobs = {job_id: sample_job(job_id, destination=f"station.{station}", chip=chip)
            for job_id in job_ids}

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                        TimeElapsedColumn(), console=console)
    # TRANSLATORS: the progress bar's title while the demo prints its cards.
    task = progress.add_task(_("printing cards"), total=count, note="")

    def on_event(event: dict) -> None:
        schema = event.get("schema")
        if schema == "printstation.status/1" and event["job_id"] in job_ids:
            with lock:
                seen_status[event["status"]] += 1
                if event["status"] in TERMINAL_STATUSES:
                    final[event["job_id"]] = event
                    progress.update(task, completed=len(final))
                elif event["status"] == "printing":
                    progress.update(task, note=_("card {job} in the printer").format(
                        job=event["job_id"]))
                if len(final) == count:
                    done.set()
        elif schema == "printstation.telemetry/1":
            last_telemetry.update(event)
            if event.get("blocked_reason"):
                progress.update(task, note=f"[red]{event['blocked_reason']}")

    source = (_("broker {url}").format(url=mask_url(broker)) if broker
              else _("embedded job source (no broker)"))
    # TRANSLATORS: the demo's first line, after "printstation demo:".
    console.print("[bold]printstation demo[/]: " + ngettext(
        "{count} sample card, station {station}, printer {printer}, {source}",
        "{count} sample cards, station {station}, printer {printer}, {source}", count).format(
            count=count, station=station, printer=settings.printer_url.split("?")[0],
            source=source))
    started = time.monotonic()
    with progress:
        if broker:
            at_end = _demo_through_broker(agent, settings, key, jobs, on_event, done,
                                          timeout)
        else:
            agent.start(embedded_sink=on_event)
            source = EmbeddedSource(agent.station.intake)
            for job_id in job_ids:
                body = json.dumps(jobs[job_id].body).encode()
                source.submit(body, sign_headers(key, KEY_ID, body), message_id=job_id)
            done.wait(timeout)
            at_end = _stop(agent)
    elapsed = time.monotonic() - started
    return _summary(console, out, cards_dir, final, count, elapsed, at_end or last_telemetry,
                    jobs if chip else None)


def _stop(agent: Agent) -> dict:
    """Stop the agent; returns its stock and counters as it holds them at the end.

    Read from the agent itself, not from the last telemetry it published: telemetry goes
    out at most once a second, so the last one heard (through the broker, above all) may
    predate the last cards, and the summary would disagree with the printer's ledger.
    """
    try:
        at_end = agent.telemetry.event()
    finally:
        agent.stop()
    return at_end


def _demo_through_broker(agent: Agent, settings: Settings, key: Ed25519PrivateKey,
                         jobs: dict[str, SampleJob], on_event, done: threading.Event,
                         timeout: float) -> dict:
    from printstation.agent.central.tools import EventTap, Submitter

    url = settings.broker_connection_url()
    with EventTap(url, binding=f"*.{settings.station_id}.#") as tap:
        agent.start()
        if not _wait(lambda: agent.station.broker.all_up or agent.fatal is not None, 30):
            raise SystemExit("demo: " + _("the agent could not reach the broker at {url}")
                             .format(url=mask_url(settings.broker_url)))
        if agent.fatal is not None:
            raise SystemExit(f"demo: {agent.fatal}")
        with Submitter(url, key=key, key_id=KEY_ID) as submitter:
            for job in jobs.values():
                body = {k: v for k, v in job.body.items() if k != "destination"}
                submitter.submit_job(body, station=settings.station_id)
        deadline = time.monotonic() + timeout
        while not done.is_set() and time.monotonic() < deadline:
            for event in tap.events(0.5):
                on_event(event)
                if done.is_set():
                    break
        return _stop(agent)


def _wait(cond, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def _summary(console: Console, out: Path, cards_dir: Path, final: dict[str, dict],
             count: int, elapsed: float, telemetry: dict,
             chip_jobs: dict[str, SampleJob] | None = None) -> int:
    ledger = read_ledger(cards_dir)
    outcomes = Counter(line["outcome"] for line in ledger)
    statuses = Counter(e["status"] for e in final.values())
    printed_ids = [line["job_id"] for line in ledger if line["outcome"] == "issued"]
    duplicates = len(printed_ids) - len(set(printed_ids))
    console.print()
    console.print("[bold]" + _("Summary after {seconds} s").format(seconds=f"{elapsed:.1f}")
                  + "[/]")
    lines = [
        _("jobs: {count}, ended: {ended} ({statuses})").format(
            count=count, ended=len(final), statuses=_counts(statuses, labels.status)),
        _("cards from the printer: {count} ({outcomes}); printed twice: {twice}").format(
            count=len(ledger), outcomes=_counts(outcomes, labels.outcome), twice=duplicates),
    ]
    chips_ok = True
    if chip_jobs is not None:
        written, chips_ok = _chips_line(ledger, final, chip_jobs)
        lines.append(written)
    for line in lines:
        console.print("  " + line, markup=False)
    if telemetry.get("consumables"):
        from printstation.agent.surfaces.stock_cli import format_stock

        console.print("  " + _("consumables and blanks, as the agent counted them at the end:"),
                      markup=False)
        for line in format_stock(telemetry).splitlines():
            console.print(f"    {line}", markup=False)
    console.print("  " + _("card images and the printer's ledger: {path}").format(
        path=cards_dir), markup=False)
    console.print("  " + _("agent journal: {path}").format(path=out / "state"),
                  markup=False)
    blanks = telemetry.get("blanks") or {}
    counted = {k: blanks.get(k, 0) for k in ("issued", "spoiled")}
    agree = not blanks or counted == {k: outcomes.get(k, 0) for k in counted}
    if not agree:
        console.print("[red]" + _("the agent counted {issued} issued and {spoiled} spoiled "
                                  "blanks; the printer's ledger says otherwise").format(
            issued=counted["issued"], spoiled=counted["spoiled"]) + "[/]")
    ok = statuses.get("printed", 0) == count and duplicates == 0 and chips_ok
    if ok:
        console.print("[green]" + _("all cards printed") + "[/]")
    else:
        console.print("[red]" + _("not every card printed") + "[/]")
    return 0 if ok and agree else 1


def _chips_line(ledger: list[dict], final: dict[str, dict],
                jobs: dict[str, SampleJob]) -> tuple[str, bool]:
    """What the printer's ledger says of the chips, checked against the scripts sent: each
    printed card's chip holds its job's script (by digest) and has the UID the agent
    reported; each spoiled chip card is one whose chip failed."""
    issued = [line for line in ledger if line["outcome"] == "issued"]
    matching = sum(1 for line in issued if line.get("chip_digest") is not None
                   and line["chip_digest"] == digest_of_writes(jobs[line["job_id"]].chip_writes)
                   and line["chip_uid"] == ((final.get(line["job_id"]) or {}).get("card")
                                            or {}).get("chip_uid"))
    rejected = sum(1 for line in ledger if line["outcome"] == "spoiled"
                   and line.get("chip_uid") and line["reason"] == "rejected_by_host")
    text = ngettext(
        "chips: {matching} of {printed} printed cards hold their job's chip data under the "
        "UID reported; {rejected} card rejected unprinted for its chip",
        "chips: {matching} of {printed} printed cards hold their job's chip data under the "
        "UID reported; {rejected} cards rejected unprinted for their chip", rejected).format(
        matching=matching, printed=len(issued), rejected=rejected)
    return text, matching == len(issued)


def _counts(counts: Counter[str], word: Callable[[str], str]) -> str:
    """`printed 6, spoiled 1`: each code's count, in the order of the codes, in words."""
    return ", ".join(f"{word(code)} {n}" for code, n in sorted(counts.items()))
