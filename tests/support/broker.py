"""The real broker, as the broker and system tiers use it: where it is, rabbitmqctl, an
in-process station on it, and the events one station published."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pika

from printstation.agent.central.tools import EventTap
from printstation.agent.station.agent import Agent
from tests.support import wait_for

BROKER_HOST = os.environ.get("PRINTSTATION_TEST_BROKER_HOST", "127.0.0.1")
BROKER_PORT = int(os.environ.get("PRINTSTATION_TEST_BROKER_PORT", "5672"))
START_BROKER = (
    f"RabbitMQ is not reachable at {BROKER_HOST}:{BROKER_PORT}. These tests need the real "
    "broker: start it with `rabbitmq-server -detached` (or `systemctl start rabbitmq-server`), "
    "check it with `rabbitmqctl status`, then run the tests again."
)


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


def ready_messages(broker_url: str, queue: str) -> int:
    """How many messages wait in `queue`, as the broker counts them."""
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


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


def submit_when_queued(submitter, body: dict, station_id: str, timeout: float = 30) -> None:
    """Submit a job once its station's agent has declared its queue: mandatory routing
    refuses it before (UnroutableError), so a test that starts an agent waits here."""
    def submitted() -> bool:
        try:
            submitter.submit_job(body, station=station_id)
        except pika.exceptions.UnroutableError:
            return False
        return True

    wait_for(submitted, timeout, "the station's queue")
