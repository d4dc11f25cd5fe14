"""The chaos suite: contract section 7 under kills, broker loss, stalls and printer faults.

Three agents run as processes (`printstation run`), each with its own `printstation-sim`
printer process, on one station queue and one pool, through stallable TCP proxies to the
real broker. While signed jobs flow, the suite kills agents (from outside and at the
dangerous moments inside, through failpoints), closes and stalls their broker connections,
restarts the broker, and jams, empties, opens and unplugs printers. A central system
played by the test re-sends pool jobs that come back `released`. Then, from the printers'
own ledgers and every event published: no job printed twice, every job in exactly one
terminal status, no gap in any station's `seq`, the card ledger reconciles, and every
`needs_check` is resolvable.

PRINTSTATION_CHAOS_JOBS sets the number of jobs (default 300; 1000 for the long run).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import pika
import pytest
from cryptography.hazmat.primitives import serialization

from printstation.agent.central.samples import sample_job
from printstation.agent.central.tools import HandbackRelay, Submitter
from printstation.agent.contract import TERMINAL_STATUSES
from printstation.agent.surfaces.control_socket import call
from tests.support import KEY_ID, control_answers, job_fingerprint
from tests.support.broker import BROKER_HOST, BROKER_PORT, close_agent_connections, rabbitmqctl
from tests.support.sim import SimProcess
from tests.support.tcpproxy import StallingProxy

JOBS = int(os.environ.get("PRINTSTATION_CHAOS_JOBS", "300"))
FAILPOINTS = "after_store=0.01,after_ack=0.01,mid_card=0.01,after_card=0.01"


class AgentProcess:
    def __init__(self, root: Path, station: str, broker_url: str, printer_url: str, pool: str,
                 key_file: Path):
        self.station = station
        self.state = root / f"state-{station}"
        self.log = root / f"{station}.log"
        self.config = root / f"{station}.toml"
        self.config.write_text(
            f'station_id = "{station}"\nbroker_url = "{broker_url}"\npools = ["{pool}"]\n'
            f'printer_url = "{printer_url}"\nstate_dir = "{self.state}"\nheartbeat = 4\n'
            f'reconnect_max_delay = 2\nhandback_after = 3\nmax_attempts = 10\n'
            f'[trusted_keys]\n{KEY_ID} = "{key_file}"\n')
        self.proc: subprocess.Popen | None = None
        self.kills = 0

    def start(self, failpoints: bool = True) -> None:
        env = {**os.environ, "PRINTSTATION_FAILPOINTS": FAILPOINTS if failpoints else ""}
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "printstation.agent", "run", "--config",
                 str(self.config)], stdout=log, stderr=subprocess.STDOUT, env=env)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            self.proc.wait(60)


class Collector:
    """Every event of the run, from a durable queue declared before any agent started."""

    def __init__(self, broker_url: str):
        self.broker_url = broker_url
        self.queue = f"chaos-collector-{uuid.uuid4().hex[:8]}"
        self.reconnect()
        self.ch.exchange_declare("printstation.events", "topic", durable=True)
        self.ch.queue_declare(self.queue, durable=True)
        self.ch.queue_bind(self.queue, "printstation.events", routing_key="#")
        self.events: dict[tuple[str, int], dict] = {}  # deduplicated on station + seq
        self.duplicates = 0

    def reconnect(self) -> None:
        """After a broker restart; the durable queue kept every persistent event."""
        self.conn = pika.BlockingConnection(pika.URLParameters(self.broker_url))
        self.ch = self.conn.channel()

    def pump(self) -> None:
        while True:
            method, _props, body = self.ch.basic_get(self.queue, auto_ack=True)
            if method is None:
                return
            event = json.loads(body)
            key = (event["station_id"], event["seq"])
            if key in self.events:
                self.duplicates += 1
                assert self.events[key] == event, f"seq {key} reused for another event"
            self.events[key] = event

    def statuses(self) -> dict[str, list[dict]]:
        by_job: dict[str, list[dict]] = defaultdict(list)
        for _key, e in sorted(self.events.items()):
            if e["schema"] == "printstation.status/1":
                by_job[e["job_id"]].append(e)
        for events in by_job.values():
            events.sort(key=lambda e: e["at"])
        return by_job


#: How long the central system waits after a job's last status before it re-sends it:
#: a station's `accepted` can be late (its broker link stalled) while another's `released`
#: is already in.
RESEND_GRACE = 15.0


def _resend_needed(history: list[dict], now: datetime) -> bool:
    """The central system's rule: re-send a pool job once no station reports it accepted.

    Every station that reported the job must have released it last, and nothing may have
    been heard of the job for RESEND_GRACE seconds. Hand-backs (contract 7.1, v2) reach the
    central system, never the pool: each `released` is answered by one new copy.
    """
    latest: dict[str, dict] = {}
    for event in history:
        latest[event["station_id"]] = event
    if not latest or any(e["status"] != "released" for e in latest.values()):
        return False
    last = history[-1]
    return (now - datetime.fromisoformat(last["at"])).total_seconds() > RESEND_GRACE


@pytest.fixture
def cleanup():
    """Whatever the outcome, no agent, simulator or proxy outlives the test."""
    things: list = []
    yield things
    for thing in reversed(things):
        if isinstance(thing, AgentProcess | SimProcess):
            thing.kill()
        else:
            thing.close()


@pytest.mark.timeout(900)
def test_chaos(tmp_path, broker_url, vhost, signing_key, cleanup):
    random.seed(int(os.environ.get("PRINTSTATION_CHAOS_SEED", time.time())))
    run = uuid.uuid4().hex[:6]
    pool = f"chaos-{run}"
    key_file = tmp_path / "central.pub"
    key_file.write_bytes(signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    collector = Collector(broker_url)
    sims, agents, proxies = [], [], []
    counts: Counter[str] = Counter()
    for i in range(3):
        sim = SimProcess(tmp_path / f"sim{i}", "print_time=0.02", "render=0", "cards=100000",
                         "ribbon=100000", "film=100000", pty=False)
        proxy = StallingProxy((BROKER_HOST, BROKER_PORT))
        url = broker_url.replace(f"{BROKER_HOST}:{BROKER_PORT}", f"127.0.0.1:{proxy.port}")
        agent = AgentProcess(tmp_path, f"chaos{i}-{run}", url, sim.tcp_url + "?timeout=2",
                             pool, key_file)
        sims.append(sim)
        proxies.append(proxy)
        agents.append(agent)
        cleanup.extend([sim, proxy, agent])
    for agent in agents:
        agent.start()

    bodies = {}
    for n in range(JOBS):
        body = sample_job(f"CHAOS-{run}-{n:04d}", two_sided=False, with_mask=True).body
        bodies[body["job_id"]] = body
    station_jobs = set(list(bodies)[: JOBS // 3])
    fingerprints = {job_fingerprint(b): j for j, b in bodies.items()}
    assert len(fingerprints) == JOBS

    submitter = Submitter(broker_url, key=signing_key, key_id=KEY_ID)
    _wait(lambda: _queues_exist(broker_url, agents[0].station, pool), 60, "the agents' queues")

    def submit_all() -> None:
        for job_id, body in bodies.items():
            target = {"station": agents[0].station} if job_id in station_jobs else {"pool": pool}
            submitter.submit_job(body, **target)
            time.sleep(0.01)

    feeder = threading.Thread(target=submit_all)
    feeder.start()
    chaos_until = time.monotonic() + max(20.0, JOBS * 0.08)
    broker_restarted = False
    central_conn = Submitter(broker_url, key=signing_key, key_id=KEY_ID)
    handbacks = HandbackRelay(broker_url)
    cleanup.append(handbacks)
    last_resend: dict[str, str] = {}

    def restart_broker(pause: float) -> None:
        """Stop and start the broker's application; the central side connects again."""
        nonlocal central_conn, handbacks
        rabbitmqctl("stop_app")
        time.sleep(pause)  # the broker stays down this long: chaos, not synchronisation
        rabbitmqctl("start_app")
        counts["broker_restarts"] += 1
        central_conn = Submitter(broker_url, key=signing_key, key_id=KEY_ID)
        handbacks = HandbackRelay(broker_url)
        cleanup.append(handbacks)
        collector.reconnect()

    def central() -> None:
        collector.pump()
        counts["handbacks"] += len(handbacks.relay(forward=False))
        now = datetime.now().astimezone()
        for job_id, history in collector.statuses().items():
            if job_id not in bodies or job_id in station_jobs:
                continue
            # Once per release: a release heard before the last re-send is already answered.
            if _resend_needed(history, now) and history[-1]["at"] > last_resend.get(job_id, ""):
                central_conn.submit_job(bodies[job_id], pool=pool)
                last_resend[job_id] = now.isoformat()
                counts["resent"] += 1

    while time.monotonic() < chaos_until:
        time.sleep(random.uniform(0.3, 1.0))
        for agent in agents:  # failpoints kill agents from inside: bring them back
            if not agent.alive():
                counts["failpoint_deaths"] += 1
                agent.start()
        action = random.choice(["kill", "kill", "close", "stall", "fault", "fault", "broker"])
        target = random.randrange(3)
        if action == "kill":
            agents[target].kill()
            counts["kills"] += 1
            time.sleep(random.uniform(0.1, 0.8))
            agents[target].start()
        elif action == "close":
            counts["connections_closed"] += close_agent_connections(
                vhost, reason="chaos", spare=lambda: random.random() < 0.5)
        elif action == "stall":
            proxies[target].stall(random.uniform(5, 9))
            counts["stalls"] += 1
        elif action == "fault":
            _printer_fault(sims[target], counts)
        elif action == "broker" and not broker_restarted and not feeder.is_alive():
            # Only once no job is being published: a publisher cut off before its confirm
            # cannot know whether the broker has the job, and a second copy in a pool could
            # be printed by two stations. That is the central system's care, not the agent's.
            broker_restarted = True
            restart_broker(pause=1.0)
        central()
    feeder.join(300)
    submitter.close()
    if not broker_restarted:  # the run was too short to draw it: restart the broker now
        restart_broker(pause=0.0)

    # Calm: restart anything dead without failpoints, clear printers, let it settle.
    for sim in sims:
        sim.control(cmd="clear")
        sim.control(cmd="load", ribbon=100000)
    for agent in agents:
        if not agent.alive():
            agent.start(failpoints=False)
        else:
            agent.kill()
            agent.start(failpoints=False)

    def settled() -> bool:
        central()
        histories = collector.statuses()
        for job_id in bodies:
            history = histories.get(job_id, [])
            if not any(h["status"] in TERMINAL_STATUSES or h["status"] == "needs_check"
                       for h in history):
                return False
        return True

    try:
        _wait(settled, 240, "every job to end or need a check")
    except AssertionError:
        histories = collector.statuses()
        stuck = {j: [(h["station_id"], h["status"], (h["reason"] or {}).get("code"))
                     for h in histories.get(j, [])] for j in bodies
                 if not any(h["status"] in TERMINAL_STATUSES or h["status"] == "needs_check"
                            for h in histories.get(j, []))}
        raise AssertionError(f"{len(stuck)} jobs never ended: {dict(list(stuck.items())[:8])}"
                             ) from None
    ledgers = [sim.ledger() for sim in sims]
    issued_by_sim = [Counter(c["fingerprint"] for c in ledger if c["outcome"] == "issued")
                     for ledger in ledgers]

    # Operators resolve every needs_check by looking at what their printer produced.
    histories = collector.statuses()
    for job_id, history in histories.items():
        if job_id not in bodies or any(h["status"] in TERMINAL_STATUSES for h in history):
            continue
        check = [h for h in history if h["status"] == "needs_check"][-1]
        index = next(i for i, a in enumerate(agents) if a.station == check["station_id"])
        printed = issued_by_sim[index][job_fingerprint(bodies[job_id])] > 0
        _wait(lambda a=agents[index]: control_answers(a.state), 60, "the agent's control socket")
        call(agents[index].state, {"cmd": "resolve", "job_id": job_id, "printed": printed,
                                   "why": "checked the output hopper"})
        counts["needs_check_resolved"] += 1
    _wait(lambda: (central(), all(any(h["status"] in TERMINAL_STATUSES for h in hs)
                                  for j, hs in collector.statuses().items() if j in bodies))[1],
          120, "the resolutions")
    for agent in agents:
        agent.stop()
    collector.pump()

    histories = collector.statuses()
    terminal = {j: [h for h in hs if h["status"] in TERMINAL_STATUSES]
                for j, hs in histories.items() if j in bodies}
    all_issued = Counter()
    for issued in issued_by_sim:
        all_issued.update(issued)
    duplicates = sum(n - 1 for n in all_issued.values() if n > 1)
    counts.update({
        "jobs": JOBS, "printed": sum(1 for t in terminal.values() if t[0]["status"] == "printed"),
        "duplicates": duplicates,
        "losses": sum(1 for j in bodies if not terminal.get(j)),
        "event_duplicates_deduplicated": collector.duplicates,
        "kills_total": sum(a.kills for a in agents) + counts["failpoint_deaths"],
    })
    print("\nchaos:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

    assert duplicates == 0, f"{duplicates} cards printed twice"
    assert counts["losses"] == 0
    for job_id, ends in terminal.items():
        assert len({(e["station_id"], e["seq"]) for e in ends}) == 1, (job_id, ends)
        end = ends[0]
        issued = all_issued[job_fingerprint(bodies[job_id])]
        assert issued == (1 if end["status"] == "printed" else 0), (job_id, end, issued)
    for station in {s for s, _ in collector.events}:
        seqs = sorted(q for s, q in collector.events if s == station)
        assert seqs == list(range(1, seqs[-1] + 1)), f"a gap in {station}'s seq"
    for i, agent in enumerate(agents):
        cards = [e for (s, _), e in collector.events.items()
                 if s == agent.station and e["schema"] == "printstation.card/1"]
        issued_events = Counter(e["outcome"] for e in cards)["issued"]
        assert issued_events == sum(issued_by_sim[i].values()), agent.station
        assert sims[i].control(cmd="status")["counter"] == len(ledgers[i])
    for sim in sims:
        sim.stop()
    for proxy in proxies:
        proxy.close()
    central_conn.close()


def _printer_fault(sim: SimProcess, counts: Counter) -> None:
    kind = random.choice(["jam", "ribbon", "cover", "unplug"])
    counts[f"printer_{kind}"] += 1
    if kind == "jam":
        sim.control(cmd="inject", fault="jam")
        threading.Timer(1.0, lambda: sim.control(cmd="clear", fault="jam")).start()
    elif kind == "ribbon":
        sim.control(cmd="load", ribbon=0)
        threading.Timer(1.0, lambda: sim.control(cmd="load", ribbon=100000)).start()
    elif kind == "cover":
        sim.control(cmd="inject", fault="cover_open")
        threading.Timer(1.0, lambda: sim.control(cmd="clear", fault="cover_open")).start()
    else:
        sim.control(cmd="unplug", seconds=1.0)


def _queues_exist(broker_url: str, station: str, pool: str) -> bool:
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        for q in (f"printstation.station.{station}", f"printstation.pool.{pool}"):
            ch = conn.channel()
            try:
                ch.queue_declare(q, passive=True)
            except pika.exceptions.ChannelClosedByBroker:
                return False
        return True
    finally:
        conn.close()



def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)
