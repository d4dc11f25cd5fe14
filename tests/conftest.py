"""Fixtures: a private vhost on the real broker, signing keys, agents on the simulator.

Every test run gets its own vhost (so two runs at once never see each other's queues) and
every test its own station id. A broker that cannot be reached fails the test with a
message saying how to start it; it never skips.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pika
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from printstation.agent.central.tools import EventTap, HandbackRelay, Submitter
from printstation.agent.config import Settings
from printstation.agent.signing import Verifier, sign_headers
from printstation.agent.station.agent import Agent
from printstation.agent.surfaces import logs

BROKER_HOST = os.environ.get("PRINTSTATION_TEST_BROKER_HOST", "127.0.0.1")
BROKER_PORT = int(os.environ.get("PRINTSTATION_TEST_BROKER_PORT", "5672"))
KEY_ID = "central-test"
START_BROKER = (
    f"RabbitMQ is not reachable at {BROKER_HOST}:{BROKER_PORT}. These tests need the real "
    "broker: start it with `rabbitmq-server -detached` (or `systemctl start rabbitmq-server`), "
    "check it with `rabbitmqctl status`, then run the tests again."
)

logs.configure("warning")
# Many agents run at once here, in this process and as subprocesses (which inherit this):
# each serves its operator page and metrics on a port of its own.
os.environ.setdefault("PRINTSTATION_WEB_LISTEN", "127.0.0.1:0")
os.environ.setdefault("PRINTSTATION_METRICS_LISTEN", "127.0.0.1:0")


def wait_for(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `cond` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def rabbitmqctl(*args: str) -> str:
    proc = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def close_agent_connections(vhost: str, *, reason: str = "test: network loss",
                            spare: Callable[[], bool] = lambda: False) -> int:
    """Close the agents' AMQP connections in `vhost`, as a network loss would; `spare`
    keeps some open (the chaos run closes about half). One gone meanwhile is skipped."""
    out = rabbitmqctl("list_connections", "-q", "pid", "vhost", "client_properties")
    closed = 0
    for line in out.splitlines():
        pid, _, rest = line.partition("\t")
        conn_vhost, _, props = rest.partition("\t")
        agent = "printstation-consumer" in props or "printstation-publisher" in props
        if conn_vhost != vhost or not agent or spare():
            continue
        try:
            rabbitmqctl("close_connection", pid, reason)
            closed += 1
        except RuntimeError:
            pass  # already gone
    return closed


@pytest.fixture(scope="session")
def vhost() -> Iterator[str]:
    try:
        socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=3).close()
    except OSError:
        pytest.fail(START_BROKER, pytrace=False)
    # RabbitMQ 3.10 loses the supervisor of at-least-once dead-lettering when a vhost with
    # quorum queues is deleted within seconds of a restart (another run's chaos test on
    # the same broker, say); every quorum queue declared after fails with INTERNAL_ERROR.
    if rabbitmqctl("eval", "whereis(rabbit_fifo_dlx_sup).").strip() == "undefined":
        pytest.fail("the broker's dead-letter supervisor (rabbit_fifo_dlx_sup) is down, so no "
                    "quorum queue can be declared: restart the broker's application with "
                    "`rabbitmqctl stop_app && rabbitmqctl start_app`", pytrace=False)
    name = f"printstation-test-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", name)
    rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield name
    rabbitmqctl("delete_vhost", name)


@pytest.fixture(scope="session")
def broker_url(vhost: str) -> str:
    return f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}/{quote(vhost, safe='')}"


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def station_id() -> str:
    return f"st-{uuid.uuid4().hex[:10]}"


class Station:
    """One in-process agent on a simulated printer, with helpers for tests."""

    def __init__(self, agent: Agent, cards_dir: Path):
        self.agent = agent
        self.cards_dir = cards_dir

    @property
    def printer(self):
        return self.agent.driver.printer  # type: ignore[attr-defined]

    def ledger(self) -> list[dict]:
        from printstation.simulator.printer import read_ledger

        return read_ledger(self.cards_dir)

    def issued(self) -> list[str]:
        return [c["job_id"] for c in self.ledger() if c["outcome"] == "issued"]


@pytest.fixture
def make_station(tmp_path: Path, broker_url: str,
                 signing_key: Ed25519PrivateKey) -> Iterator[Callable[..., Station]]:
    started: list[Agent] = []

    def make(station_id: str, *, sim: str = "print_time=0.05&render=0", start: bool = True,
             state_dir: Path | None = None, printer_url: str | None = None,
             **settings: Any) -> Station:
        cards = tmp_path / f"cards-{station_id}"
        settings.setdefault("broker_url", broker_url)
        s = Settings(station_id=station_id,
                     state_dir=state_dir or tmp_path / f"state-{station_id}",
                     printer_url=printer_url or f"sim://?{sim}&out={cards}", heartbeat=10,
                     reconnect_max_delay=2.0, **settings)
        agent = Agent(s, verifier=Verifier({KEY_ID: signing_key.public_key()}))
        if start:
            agent.start()
            started.append(agent)
            wait_for(lambda: all(agent.station.broker.up.values()) or agent.fatal, 20,
                     "the agent to connect to the broker")
        return Station(agent, cards)

    yield make
    for agent in started:
        agent.stop()


@pytest.fixture
def submitter(broker_url: str, signing_key: Ed25519PrivateKey) -> Iterator[Submitter]:
    with Submitter(broker_url, key=signing_key, key_id=KEY_ID) as sub:
        yield sub


@pytest.fixture
def raw_publish(broker_url: str) -> Iterator[Callable[..., None]]:
    """Publish arbitrary bytes and headers to a station, as a misbehaving sender would."""
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    ch.confirm_delivery()

    def publish(station: str, body: bytes, headers: dict | None = None,
                message_id: str | None = None, exchange: str = "printstation.jobs") -> None:
        ch.basic_publish(exchange, f"station.{station}", body,
                         pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                              headers=headers, message_id=message_id),
                         mandatory=True)

    yield publish
    conn.close()


class Events:
    """Every event one station published, collected from a private queue."""

    def __init__(self, tap: EventTap):
        self.tap = tap
        self.all: list[dict] = []

    def pump(self) -> list[dict]:
        self.all.extend(self.tap.drain(0.05))
        return self.all

    def statuses(self, job_id: str | None = None) -> list[dict]:
        self.pump()
        return [e for e in self.all if e["schema"] == "printstation.status/1"
                and (job_id is None or e["job_id"] == job_id)]

    def final(self, job_id: str) -> dict | None:
        from printstation.agent.contract import TERMINAL_STATUSES

        ends = [e for e in self.statuses(job_id) if e["status"] in TERMINAL_STATUSES]
        return ends[-1] if ends else None

    def wait_status(self, job_ids: list[str], wanted: set[str],
                    timeout: float = 30.0) -> dict[str, dict]:
        """The latest status of each job once every one has reached one of `wanted`."""
        def latest() -> dict[str, dict] | None:
            last = {}
            for job_id in job_ids:
                mine = [e for e in self.statuses(job_id) if e["status"] in wanted]
                if not mine:
                    return None
                last[job_id] = mine[-1]
            return last
        return wait_for(latest, timeout, f"{len(job_ids)} jobs to reach {sorted(wanted)}")

    def wait_final(self, job_ids: list[str], timeout: float = 30.0,
                   meanwhile: Callable[[], object] = lambda: None) -> dict[str, dict]:
        """Wait for every job's terminal status; `meanwhile` runs each round (the central
        system's hand-back relay, say)."""
        def done() -> bool:
            meanwhile()
            return all(self.final(j) for j in job_ids)
        wait_for(done, timeout, f"a terminal status for {len(job_ids)} jobs")
        return {j: self.final(j) for j in job_ids}  # type: ignore[misc]


@pytest.fixture
def central_relay(broker_url: str) -> Iterator[HandbackRelay]:
    """The central system's hand-back relay (contract 7.1): call `.relay()` to send the jobs
    stations handed back to their pool again. Every station here logs in as guest, so the
    sender is not checked (test_broker_security.py checks it)."""
    with HandbackRelay(broker_url, check_sender=False) as relay:
        yield relay


@pytest.fixture
def events(broker_url: str, station_id: str) -> Iterator[Events]:
    with EventTap(broker_url, binding=f"*.{station_id}.#") as tap:
        yield Events(tap)


def signed(signing_key: Ed25519PrivateKey, body: dict | bytes) -> tuple[bytes, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw, sign_headers(signing_key, KEY_ID, raw)


class SimProcess:
    """`printstation-sim` as its own process, with its control port for tests."""

    def __init__(self, out: Path, *settings: str, pty: bool = True,
                 extra_args: list[str] | None = None):
        self.out = out
        self.settings = settings
        self.pty = pty
        self.tcp_port: int | None = None
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None
        self.endpoints: dict[str, str] = {}
        self.start()

    def start(self) -> None:
        import sys

        args = [sys.executable, "-m", "printstation.simulator.server", "--out", str(self.out),
                "--tcp", str(self.tcp_port or 0), "--control", "0"]
        if self.pty:
            args += ["--pty", str(self.out / "ttySIM")]
        for s in self.settings:
            args += ["--set", s]
        args += self.extra_args
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("printstation-sim did not start")
        self.endpoints = json.loads(line)
        self.tcp_port = int(self.endpoints["tcp"].rsplit(":", 1)[1])

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    @property
    def tcp_url(self) -> str:
        return f"evolis+tcp://{self.endpoints['tcp']}"

    @property
    def serial_url(self) -> str:
        return f"evolis+serial://{self.endpoints['pty']}"

    def control(self, **cmd: Any) -> dict:
        host, port = self.endpoints["control"].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(json.dumps(cmd).encode() + b"\n")
            answer = sock.makefile("rb").readline()
        result = json.loads(answer)
        assert result["ok"], result
        return result

    def ledger(self) -> list[dict]:
        from printstation.simulator.printer import read_ledger

        return read_ledger(self.out)


@pytest.fixture
def sim_process(tmp_path: Path) -> Iterator[Callable[..., SimProcess]]:
    made: list[SimProcess] = []

    def make(*settings: str, name: str = "sim", pty: bool = True,
             args: list[str] | None = None) -> SimProcess:
        sim = SimProcess(tmp_path / name, *settings, pty=pty, extra_args=args)
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.stop()


def job_fingerprint(body: dict) -> str:
    """The fingerprint the simulated printer writes in its ledger for this job's card."""
    from printstation.agent.station.journal import JobRow
    from printstation.agent.station.printing import build_card
    from printstation.simulator.printer import fingerprint

    raw = json.dumps({"destination": "station.any", **body}).encode()
    row = JobRow(body["job_id"], None, body["card_stock"], "station", "queued", 0, 1, None, raw,
                 None, None, None)
    return fingerprint(build_card(row, (1016, 648)).front.black)


def control_answers(state_dir: Path) -> bool:
    """True once the running agent answers on its control socket."""
    from printstation.agent.surfaces.control_socket import ControlError, call

    try:
        return call(state_dir, {"cmd": "status"}, timeout=5)["ok"]
    except ControlError:
        return False


class SmallDisk:
    """A small tmpfs the test mounts, that `fill` makes return ENOSPC to every writer."""

    def __init__(self, path: Path):
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        """Write until the disk says ENOSPC, in large pieces and then small ones, unbuffered
        (a buffered file would raise again on closing)."""
        with self.filler.open("ab", buffering=0) as fh:
            for size in (1 << 20, 65536, 4096, 512):
                try:
                    while True:
                        fh.write(b"\0" * size)
                except OSError as exc:
                    assert exc.errno == 28, exc  # ENOSPC

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 32 MiB tmpfs of this test's own: a disk that really fills (ENOSPC)."""
    path = tmp_path / "small-disk"
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs",
                              str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail("this test mounts a small tmpfs to fill a disk for real and needs root "
                    f"(mount said: {mounted.stderr.strip()}); run the suite as root",
                    pytrace=False)
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
