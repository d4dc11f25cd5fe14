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
           Baseline: a bare pika loop publishing as many messages of the same size to the
           same exchange with a confirm each. A quorum queue bound to the event exchange
           (as the central system's is) takes both, so the broker routes and keeps every
           message of either; without it the agent's events would come back unroutable and
           be dead-lettered while the bare loop's were dropped. Target >= 500 events/s.

Each run works in a RabbitMQ vhost of its own, deleted at the end.

    .venv/bin/python bench/recovery.py [reconnect drain] [--outage 20] [--events 5000]
"""

from __future__ import annotations

import argparse
import threading
import time

import pika
from common import DEFAULT_BROKER, make_agent, own_vhost, rabbitmqctl, report

from printstation.agent import contract
from printstation.agent.broker.topology import declare, queue_arguments


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
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    declare(conn, agent.settings)
    ch = conn.channel()
    events_queue = "bench.central.events"  # the central system's queue, as it would be
    ch.queue_declare(events_queue, durable=True, arguments=queue_arguments(agent.settings))
    ch.queue_bind(events_queue, agent.settings.names.event_exchange, routing_key="#")
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
    routed = ch.queue_declare(events_queue, passive=True).method.message_count
    ch.confirm_delivery()
    body = b"x" * 330
    started = time.monotonic()
    for i in range(events):
        ch.basic_publish(agent.settings.names.event_exchange,
                         f"alert.{agent.settings.station_id}.bench_{i}", body,
                         pika.BasicProperties(delivery_mode=2), mandatory=True)
    bare = events / (time.monotonic() - started)
    both = ch.queue_declare(events_queue, passive=True).method.message_count
    conn.close()
    if routed < events or both - routed != events:
        raise SystemExit(f"drain: the events queue got {routed} of the agent's {events} "
                         f"events and {both - routed} of the bare loop's")
    report(f"outbox drain, {events} stored events", rate, "events/s", bare,
           "bare pika, a confirm each", ">= 500 /s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="*", default=["reconnect", "drain"])
    p.add_argument("--broker-url", default=DEFAULT_BROKER)
    p.add_argument("--outage", type=float, default=20)
    p.add_argument("--events", type=int, default=5000)
    args = p.parse_args()
    with own_vhost(args.broker_url) as broker_url:
        if "drain" in args.what:
            drain(broker_url, args.events)
        if "reconnect" in args.what:
            reconnect(broker_url, args.outage)


if __name__ == "__main__":
    main()
