"""Shared by the benchmarks: an agent on the in-process simulator, signed sample jobs, and
one way of printing a figure beside its baseline measured in the same run.

A benchmark leaves nothing behind: the folders it makes (`scratch`) are removed and the
processes it starts (`child`) ended when it exits, however it exits (SIGTERM included),
and one that uses RabbitMQ works in a vhost of its own (`own_vhost`), deleted at the end
with every queue and dead-lettered event in it, so that nothing lands in the default
vhost and no other run's messages are counted.
"""

from __future__ import annotations

import atexit
import base64
import io
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from printstation.agent.central.samples import sample_job
from printstation.agent.config import Settings
from printstation.agent.signing import Verifier, sign_headers
from printstation.agent.station.agent import Agent
from printstation.agent.surfaces import logs

KEY_ID = "bench"
KEY = Ed25519PrivateKey.generate()

logs.configure("error")

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/%2F"

_SCRATCH: list[Path] = []
_CHILDREN: list[subprocess.Popen] = []


def scratch(prefix: str = "printstation-bench-") -> Path:
    """A new folder in the temporary directory, removed when the benchmark exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _SCRATCH.append(path)
    return path


def child(args: list[str], **kwargs: Any) -> subprocess.Popen:
    """A process the benchmark starts (an agent, a bare client): if it is still running
    when the benchmark exits, however it exits, it is ended then."""
    proc = subprocess.Popen(args, **kwargs)
    _CHILDREN.append(proc)
    return proc


def _end_children() -> None:
    for proc in _CHILDREN:
        if proc.poll() is None:
            proc.terminate()
    for proc in _CHILDREN:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@atexit.register
def _clean_up() -> None:
    _end_children()
    for path in _SCRATCH:
        shutil.rmtree(path, ignore_errors=True)


def _terminated(signum: int, _frame: object) -> None:
    sys.exit(128 + signum)  # unwinds: `finally` blocks and atexit run, as on Ctrl-C


signal.signal(signal.SIGTERM, _terminated)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


@contextmanager
def own_vhost(broker_url: str) -> Iterator[str]:
    """A vhost for this run alone on the local broker (`rabbitmqctl`, so the broker must be
    this machine's), with the URL's user given every permission in it; yields the URL
    pointing at it. The vhost is deleted on the way out, whatever happened, and with it
    every queue, binding and dead-lettered event the run made."""
    parts = urlsplit(broker_url)
    name = f"printstation-bench-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, unquote(parts.username or "guest"),
                    ".*", ".*", ".*")
        yield urlunsplit(parts._replace(path="/" + quote(name, safe="")))
    finally:
        _end_children()  # before their vhost goes: they end as asked, not cut off
        rabbitmqctl("delete_vhost", name)


NATIVE = (1016, 648)


def at_native(png: bytes, mode: str) -> bytes:
    """A sample image (1012 x 638) redrawn at the printer's native 1016 x 648."""
    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert(mode).resize(NATIVE).save(out, "PNG")
    return out.getvalue()


def _b64_at_native(b64: str, mode: str) -> str:
    return base64.b64encode(at_native(base64.b64decode(b64), mode)).decode()


def _native_body(body: dict) -> dict:
    sides = {}
    for name, side in body["sides"].items():
        if side is None:
            continue
        sides[name] = dict(side, image=_b64_at_native(side["image"], "RGB"))
        if side.get("black"):
            sides[name]["black"] = _b64_at_native(side["black"], "1")
    return dict(body, sides=sides)


def iter_signed_jobs(n: int, prefix: str, *, to: str, two_sided: bool = True,
                     native: bool = False, chip: bool = False
                     ) -> Iterator[tuple[str, bytes, dict]]:
    """(job_id, body, headers) for `n` sample jobs signed for station `to`, made one at a
    time (8 images, reused), so that a benchmark's own memory does not grow with the number
    of jobs. `native`: images at the printer's 1016 x 648 instead of the samples' 1012 x
    638. `chip`: each with a chip section."""
    base = [sample_job(f"{prefix}-seed-{i}", seed=i, two_sided=two_sided,
                       destination=f"station.{to}", chip=chip).body for i in range(8)]
    if native:
        base = [_native_body(b) for b in base]
    for i in range(n):
        body = dict(base[i % 8], job_id=f"{prefix}-{i:05d}")
        raw = json.dumps(body).encode()
        yield body["job_id"], raw, sign_headers(KEY, KEY_ID, raw)


def signed_jobs(n: int, prefix: str, *, to: str, two_sided: bool = True,
                native: bool = False, chip: bool = False) -> list[tuple[str, bytes, dict]]:
    return list(iter_signed_jobs(n, prefix, to=to, two_sided=two_sided, native=native,
                                 chip=chip))


def make_agent(sim: str, *, root: Path | None = None, **settings: Any) -> Agent:
    root = root or scratch()
    station = f"bench-{uuid.uuid4().hex[:8]}"
    s = Settings(station_id=station, state_dir=root / "state",
                 printer_url=f"sim://?{sim}&render=0&out={root / 'cards'}",
                 web_listen="", metrics_listen="", **settings)
    return Agent(s, verifier=Verifier({KEY_ID: KEY.public_key()}))


class Finals:
    """Collects terminal statuses from an embedded sink; `wait(n)` until n have come.

    Only each job's status is kept, not the event: the RSS benchmark runs 10,000 jobs in
    the agent's own process and must not measure its own records."""

    def __init__(self) -> None:
        self.done: dict[str, str] = {}
        self._cond = threading.Condition()

    def __call__(self, event: dict) -> None:
        from printstation.agent.contract import TERMINAL_STATUSES

        if event.get("schema") == "printstation.status/1" and \
                event["status"] in TERMINAL_STATUSES:
            with self._cond:
                self.done[event["job_id"]] = event["status"]
                self._cond.notify_all()

    def wait(self, n: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.done) >= n, timeout)


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(name: str, value: float, unit: str, baseline: float | None = None,
           baseline_name: str = "", target: str = "", higher_is_better: bool = True) -> dict:
    """Print one figure, its baseline from the same run and the ratio; return it as data."""
    line = f"{name:44} {value:10.3f} {unit:10}"
    ratio = None
    if baseline is not None:
        ratio = value / baseline if baseline else None
        shown = f"{ratio:6.3f}" if ratio is not None else "   n/a"
        line += f" baseline {baseline:10.3f} ({baseline_name}) ratio {shown}"
    if target:
        line += f"  target {target}"
    print(line, flush=True)
    return {"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio,
            "target": target}


def timed_runs(runs: int, one: Callable[[], float]) -> list[float]:
    return [one() for _ in range(runs)]


def start_agents(root: Path, stations: list[str], broker_url: str, print_time: float,
                 extra: str = "") -> list[subprocess.Popen]:
    """A `printstation run` process per station, each on its own `sim://` printer (its
    ledger in ROOT/STATION/cards) and state folder under `root`, trusting this run's key;
    `extra`: more TOML settings."""
    from cryptography.hazmat.primitives import serialization

    keys = root / "central.pub"
    keys.write_bytes(KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    procs = []
    for station in stations:
        cfg = root / f"{station}.toml"
        cfg.write_text(
            f'station_id = "{station}"\nbroker_url = "{broker_url}"\n'
            f'printer_url = "sim://?print_time={print_time}&render=0&out='
            f'{root / station / "cards"}"\nstate_dir = "{root / station / "state"}"\n'
            f'web_listen = ""\nmetrics_listen = ""\n{extra}'
            f'[trusted_keys]\n{KEY_ID} = "{keys}"\n')
        procs.append(child(
            [sys.executable, "-m", "printstation.agent", "run", "--config", str(cfg)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def wait_telemetry(events: Callable[[float], Iterator[dict]], stations: list[str],
                   timeout: float = 300) -> None:
    """Until every station has published telemetry (it runs and reached the broker), read
    from `events` (an EventTap's)."""
    import time

    ready: set[str] = set()
    ours = set(stations)
    deadline = time.monotonic() + timeout
    while len(ready) < len(stations) and time.monotonic() < deadline:
        for e in events(1.0):
            if e.get("station_id") in ours and e["schema"] == "printstation.telemetry/1":
                ready.add(e["station_id"])
            if len(ready) == len(stations):
                break
