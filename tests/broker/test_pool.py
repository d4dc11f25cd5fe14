"""Pool queues: competing stations, claims in a transaction, redeliveries never printed."""

from __future__ import annotations

import uuid

import pika
import pytest

from printstation.agent.central.samples import sample_job
from printstation.agent.central.tools import EventTap
from tests.support import wait_for
from tests.support.broker import Events


@pytest.fixture
def pool() -> str:
    return f"pool-{uuid.uuid4().hex[:8]}"


def _print_in_pool(submitter, broker_url: str, pool: str, job_ids: list[str]) -> dict[str, dict]:
    """Submit one-sided jobs to the pool; each job's final status, whichever station sent it."""
    with EventTap(broker_url, binding="status.#") as tap:
        events = Events(tap)
        for job_id in job_ids:
            submitter.submit_job(sample_job(job_id, two_sided=False).body, pool=pool)
        return events.wait_final(job_ids, timeout=60)


def test_each_pool_job_is_printed_by_exactly_one_station(make_station, submitter, broker_url,
                                                         pool):
    a = make_station(f"pa-{pool}", pools=[pool])
    b = make_station(f"pb-{pool}", pools=[pool])
    job_ids = [f"POOL-{pool}-{i}" for i in range(10)]
    finals = _print_in_pool(submitter, broker_url, pool, job_ids)
    assert {f["status"] for f in finals.values()} == {"printed"}
    printed = a.issued() + b.issued()
    assert sorted(printed) == sorted(job_ids)
    by_station = {f["station_id"] for f in finals.values()}
    assert by_station <= {f"pa-{pool}", f"pb-{pool}"}


def test_a_paused_station_leaves_pool_jobs_to_the_others(make_station, submitter, broker_url,
                                                         pool):
    a = make_station(f"pa-{pool}", pools=[pool])
    a.agent.station.pause("test", "paused station")
    b = make_station(f"pb-{pool}", pools=[pool])
    job_ids = [f"PAUSE-{pool}-{i}" for i in range(4)]
    _print_in_pool(submitter, broker_url, pool, job_ids)
    assert a.issued() == [] and sorted(b.issued()) == sorted(job_ids)


def test_a_redelivered_pool_job_is_released_and_dead_lettered_not_printed(
        make_station, submitter, broker_url, pool):
    a = make_station(f"pa-{pool}", pools=[pool])
    a.agent.station.pause("test", "hold pool jobs")
    job = sample_job(f"REDELIVER-{pool}", two_sided=False).body
    with EventTap(broker_url, binding="status.#") as tap:
        events = Events(tap)
        submitter.submit_job(job, pool=pool)
        # Another consumer takes it and gives it back: the broker marks it redelivered.
        conn = pika.BlockingConnection(pika.URLParameters(broker_url))
        ch = conn.channel()
        method = wait_for(lambda: ch.basic_get(f"printstation.pool.{pool}")[0],
                          what="the pool job")
        ch.basic_nack(method.delivery_tag, requeue=True)
        conn.close()
        a.agent.station.resume("test", "go")
        final = wait_for(lambda: [e for e in events.statuses(job["job_id"])
                                  if e["status"] == "released"], what="released")[0]
    assert final["reason"]["code"] == "redelivered"
    assert a.issued() == []
    assert a.agent.journal.jobs.known(job["job_id"]) is None
