"""Jobs per second through the real broker at zero print time, against the bare pika loop.

Both sides get the same signed two-sided 1016 x 648 jobs from the same broker in the same
run. The agent: consume, verify, validate, store, acknowledge, print on the simulator with
print time 0, and publish `accepted`, `printing`, `printed`, the card event and telemetry
with confirms. The baseline: a bare pika loop that consumes with prefetch 1, publishes one
status with a confirm and acknowledges. Target: the agent at least 50% of the bare loop.
A second baseline, the same bare loop doing the image work no agent can skip (decoding
each image in full to refuse a broken one, then the panels for the printer), shows what
the agent costs beyond that work. Rates run from the first job done to the last, so the
agent's start is not in them. The run works in a RabbitMQ vhost of its own, deleted at the
end with its queues and events.

    .venv/bin/python bench/message_path.py [--jobs 300] [--runs 3]
        [--broker-url amqp://guest:guest@127.0.0.1:5672/%2F]
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

import pika
from common import (
    DEFAULT_BROKER,
    KEY,
    KEY_ID,
    NATIVE,
    make_agent,
    median,
    own_vhost,
    report,
    signed_jobs,
)

from printstation.agent import contract
from printstation.agent.broker.topology import declare
from printstation.agent.central.tools import EventTap, Submitter
from printstation.drivers.panels import prepare_side


def agent_run(broker_url: str, jobs: int) -> float:
    agent = make_agent(f"print_time=0&cards={jobs + 10}&ribbon={2 * jobs + 10}"
                       f"&film={2 * jobs + 10}", broker_url=broker_url)
    station = agent.settings.station_id
    batch = signed_jobs(jobs, f"MSG-{uuid.uuid4().hex[:6]}", to=station, native=True)
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    declare(conn, agent.settings)  # the station queue exists: the jobs wait in it
    conn.close()
    with EventTap(broker_url, binding=f"status.{station}.printed") as tap, \
            Submitter(broker_url, key=KEY, key_id=KEY_ID) as sub:
        for job_id, body, headers in batch:
            sub.publish_raw("printstation.jobs", f"station.{station}", body, headers=headers,
                            message_id=job_id)
        agent.start()
        done: list[float] = []
        for _event in tap.events(60):
            done.append(time.monotonic())
            if len(done) == jobs:
                break
    agent.stop()
    if len(done) != jobs:
        raise SystemExit(f"message_path: only {len(done)} of {jobs} printed")
    return (jobs - 1) / (done[-1] - done[0])


def image_work(body: bytes) -> None:
    """What any agent must do with a job's images: check them in full, make the panels."""
    job = contract.Job.model_validate_json(body)  # intake's own check: decodes every image
    for side in (job.sides.front, job.sides.back):
        if side is not None:
            prepare_side(side.image_bytes(), side.black_bytes(), side.overlay, NATIVE)


def bare_run(broker_url: str, jobs: int, *, with_images: bool = False) -> float:
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    ch.confirm_delivery()
    queue = f"bench.bare.{uuid.uuid4().hex[:8]}"
    ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    ch.exchange_declare("printstation.events", "topic", durable=True)
    for job_id, body, headers in signed_jobs(jobs, "BARE", to="bare", native=True):
        ch.basic_publish("", queue, body, pika.BasicProperties(
            delivery_mode=2, headers=headers, message_id=job_id))
    ch.basic_qos(prefetch_count=1)
    done: list[float] = []
    for method, props, body in ch.consume(queue, inactivity_timeout=30):
        if method is None:
            break
        if with_images:
            image_work(body)
        status = json.dumps({"schema": "printstation.status/1", "job_id": props.message_id,
                             "status": "printed"}).encode()
        ch.basic_publish("printstation.events", "status.bare.printed", status,
                         pika.BasicProperties(delivery_mode=2))
        ch.basic_ack(method.delivery_tag)
        done.append(time.monotonic())
        if len(done) == jobs:
            break
    ch.cancel()
    ch.queue_delete(queue)
    conn.close()
    return (len(done) - 1) / (done[-1] - done[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=300)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--broker-url", default=DEFAULT_BROKER)
    args = p.parse_args()
    mine, bare, imaging = [], [], []
    with own_vhost(args.broker_url) as broker_url:
        for _ in range(args.runs):
            mine.append(agent_run(broker_url, args.jobs))
            bare.append(bare_run(broker_url, args.jobs))
            imaging.append(bare_run(broker_url, args.jobs, with_images=True))
    name = f"message path, {args.jobs} two-sided jobs, print time 0"
    report(name, median(mine), "jobs/s", median(bare), "bare pika loop",
           ">= 50 % of the bare loop")
    report(name, median(mine), "jobs/s", median(imaging), "bare loop + image work")
    print("  agent runs " + ", ".join(f"{x:.1f}" for x in mine) + "; bare runs "
          + ", ".join(f"{x:.1f}" for x in bare) + "; bare + image work runs "
          + ", ".join(f"{x:.1f}" for x in imaging))


if __name__ == "__main__":
    main()
