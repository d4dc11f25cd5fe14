"""The bounded local backlog (README, "A bounded local backlog"): a station holds at most
`max_held_jobs` jobs with their images; the rest of its station queue waits at the broker
and is taken as cards print, every job printed once."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Callable

import pika
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from printstation.agent.broker.consumer import AmqpSource
from printstation.agent.central.samples import sample_job
from tests.support import signed, wait_for
from tests.support.broker import ready_messages

JOBS = 500
BOUND = 50


def small_jobs(station_id: str, n: int) -> list[dict]:
    """`n` one-sided jobs for the station whose photo is one flat colour: 7 KB each instead
    of 100 (what is held is counted in jobs, not bytes), made from one sample, as drawing
    each sample's face takes longer than printing its card here."""
    template = sample_job("BL-0", two_sided=False, destination=f"station.{station_id}").body
    out = io.BytesIO()
    Image.new("RGB", (1012, 638), "white").save(out, "PNG", optimize=True)
    template["sides"]["front"]["image"] = base64.b64encode(out.getvalue()).decode()
    return [{**template, "job_id": f"BL-{station_id}-{i:03d}", "reference": f"BL-{i:03d}"}
            for i in range(n)]


class HeldSampler(threading.Thread):
    """Reads the journal's held count as often as it can, from a thread of its own."""

    def __init__(self, read: Callable[[], int]):
        super().__init__(daemon=True)
        self.read = read
        self.most = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.most = max(self.most, self.read())
            self.samples += 1
            self.done.wait(0.002)


def publish_all(broker_url: str, station_id: str, key: Ed25519PrivateKey,
                bodies: list[dict]) -> None:
    """Signed jobs to the station, published back to back (the test counts them at the
    broker and in the ledger rather than waiting for a confirm after each)."""
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        for body in bodies:
            raw, headers = signed(key, body)
            ch.basic_publish("printstation.jobs", f"station.{station_id}", raw,
                             pika.BasicProperties(content_type="application/json",
                                                  delivery_mode=2, headers=headers,
                                                  message_id=body["job_id"]))
    finally:
        conn.close()


def test_a_500_job_station_queue_is_held_50_at_a_time_and_all_printed_once(
        make_station, signing_key, broker_url, station_id):
    # A telemetry interval of 1 s: the consumer counts what waits at the broker that often.
    station = make_station(station_id, sim="print_time=0.01&render=0&cards=1000",
                           max_held_jobs=BOUND, telemetry_interval=1)
    agent = station.agent
    jobs = agent.journal.jobs
    sampler = HeldSampler(jobs.held)
    sampler.start()
    try:
        # Paused, the station stores what fits and prints nothing: the bound must stop it.
        agent.station.pause("test", "fill the station queue first")
        bodies = small_jobs(station_id, JOBS)
        ids = [b["job_id"] for b in bodies]
        publish_all(broker_url, station_id, signing_key, bodies)
        queue = agent.settings.station_queue()
        wait_for(lambda: jobs.held() == BOUND and ready_messages(broker_url, queue) == JOBS - BOUND,
                 30, f"{BOUND} jobs held and {JOBS - BOUND} waiting at the broker")
        assert station.ledger() == []
        telemetry = agent.view.telemetry()
        assert (telemetry["held_jobs"], telemetry["max_held_jobs"], telemetry["queued_jobs"]) == \
            (BOUND, BOUND, BOUND)
        wait_for(lambda: agent.view.telemetry()["waiting_jobs"] == JOBS - BOUND, 10,
                 f"the telemetry to count {JOBS - BOUND} jobs waiting at the broker")
        agent.station.resume("test", "print them")
        wait_for(lambda: len(station.ledger()) >= JOBS, 60, f"{JOBS} cards printed")
        wait_for(lambda: jobs.held() == 0, 10, "the last images erased")
    finally:
        sampler.done.set()  # before the fixture closes the journal, pass or fail
        sampler.join(5)

    issued = station.issued()
    assert sorted(issued) == sorted(ids) and len(issued) == len(set(issued)) == JOBS
    assert [c["outcome"] for c in station.ledger()] == ["issued"] * JOBS
    assert ready_messages(broker_url, queue) == 0
    wait_for(lambda: agent.view.telemetry()["waiting_jobs"] == 0, 10,
             "the telemetry to count no job waiting at the broker")
    assert jobs.ended()["printed"] == JOBS
    consumer = next(c for c in agent.components if isinstance(c, AmqpSource))
    # The consumer reads the count after every job it takes; the sampler from outside.
    assert consumer.most_held == BOUND, consumer.most_held
    assert sampler.samples > 100 and sampler.most == BOUND, (sampler.samples, sampler.most)


def test_a_full_backlog_still_hears_a_cancel_and_takes_the_next_job_in_its_place(
        make_station, signing_key, submitter, broker_url, station_id):
    """The control queue is consumed while the station queue waits: a cancel ends a held
    job, and the room it leaves is filled from the broker."""
    bound, n = 5, 12
    station = make_station(station_id, sim="print_time=0.01&render=0", max_held_jobs=bound)
    agent = station.agent
    jobs = agent.journal.jobs
    queue = agent.settings.station_queue()
    agent.station.pause("test", "fill the station queue first")
    bodies = small_jobs(station_id, n)
    publish_all(broker_url, station_id, signing_key, bodies)
    wait_for(lambda: jobs.held() == bound and ready_messages(broker_url, queue) == n - bound,
             20, f"{bound} held and {n - bound} at the broker")
    first = bodies[0]["job_id"]
    submitter.control(station_id, "cancel", job_id=first)
    wait_for(lambda: jobs.known(first) == "cancelled" and jobs.held() == bound
             and ready_messages(broker_url, queue) == n - bound - 1, 20,
             "the cancel, and one more job taken in its place")
    agent.station.resume("test", "print them")
    rest = [b["job_id"] for b in bodies[1:]]
    wait_for(lambda: len(station.ledger()) >= n - 1, 30, f"{n - 1} cards printed")
    assert sorted(station.issued()) == sorted(rest)
