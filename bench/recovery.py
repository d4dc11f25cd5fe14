"""Recovery: how soon a station consumes again once the broker is back, and how fast its
outbox drains after an outage.

reconnect  `rabbitmqctl stop_app`, --outage seconds, `start_app`; then the time until the
           agent's consumer and publisher are connected again, counted from the moment
           `start_app` is run, beside a bare pika client retrying every 0.1 s timed the
           same way (which is the broker's own start). The figure with the target (<= 2 s)
           is the agent's delay after that client got in: the broker was back. (Stops the
           broker's application for every client: run it on a broker of its own.)
drain      --events events stored while the broker was away (alerts of about 300 bytes);
           the rate at which the agent publishes them with confirms once it connects.
           Baseline: a bare pika loop publishing as many messages of the same size with a
           confirm each. Target >= 500 events/s.

    .venv/bin/python bench/recovery.py [reconnect drain] [--outage 20] [--events 5000]
"""

from __future__ import annotations

import argparse
import subprocess
import threading
import time

import pika
from common import make_agent, report

from printstation.agent import contract


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def reconnect(broker_url: str, outage: float) -> None:
    agent = make_agent("print_time=0", broker_url=broker_url, reconnect_max_delay=30)
    agent.start()
    deadline = time.monotonic() + 30
    while not agent.station.broker.all_up and time.monotonic() < deadline:
        time.sleep(0.05)
    bare_back: list[float] = []
    stop = threading.Event()

    def bare() -> None:  # the fastest a client could notice: try every 0.1 s
        while not stop.is_set():
            try:
                pika.BlockingConnection(pika.URLParameters(broker_url)).close()
                bare_back.append(time.monotonic())
                return
            except pika.exceptions.AMQPError:
                time.sleep(0.1)

    rabbitmqctl("stop_app")
    try:
        time.sleep(outage)  # the outage itself, not a synchronisation
        thread = threading.Thread(target=bare, daemon=True)
        thread.start()
    finally:
        back = time.monotonic()  # both clocks start when the broker is asked to come back
        rabbitmqctl("start_app")
    while not agent.station.broker.all_up and time.monotonic() < back + 120:
        time.sleep(0.01)
    agent_back = time.monotonic() - back
    thread.join(60)
    stop.set()
    agent.stop()
    if not bare_back:
        raise SystemExit("reconnect: the bare client never connected again")
    broker_back = bare_back[0] - back
    report(f"consuming again, {outage:.0f} s outage, from start_app", agent_back, "s",
           broker_back, "bare client retrying every 0.1 s", higher_is_better=False)
    # The broker is back when a client can connect: the agent's own delay is what follows.
    report("consuming again, from the broker accepting clients", agent_back - broker_back,
           "s", target="<= 2 s", higher_is_better=False)


def drain(broker_url: str, events: int) -> None:
    agent = make_agent("print_time=0", broker_url=broker_url)
    message = "ribbon low: 42 prints left, about 21 cards; " * 6
    for i in range(events):
        agent.journal.outbox.emit_now(contract.AlertFields(
            severity="info", condition=f"bench_{i}", message=message))
    start = time.monotonic()
    agent.start()
    while agent.journal.outbox.backlog() > 0 and time.monotonic() < start + 600:
        time.sleep(0.01)
    rate = events / (time.monotonic() - start)
    agent.stop()
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    ch.confirm_delivery()
    body = b"x" * 330
    started = time.monotonic()
    for _ in range(events):
        ch.basic_publish("printstation.events", "bench.drain", body,
                         pika.BasicProperties(delivery_mode=2))
    bare = events / (time.monotonic() - started)
    conn.close()
    report(f"outbox drain, {events} stored events", rate, "events/s", bare,
           "bare pika, a confirm each", ">= 500 /s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="*", default=["reconnect", "drain"])
    p.add_argument("--broker-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    p.add_argument("--outage", type=float, default=20)
    p.add_argument("--events", type=int, default=5000)
    args = p.parse_args()
    if "drain" in args.what:
        drain(args.broker_url, args.events)
    if "reconnect" in args.what:
        reconnect(args.broker_url, args.outage)


if __name__ == "__main__":
    main()
