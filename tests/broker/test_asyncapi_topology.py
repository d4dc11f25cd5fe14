"""The AsyncAPI document against the real RabbitMQ: what a central system built from it
declares is what the agent declares, and what it publishes as documented reaches the queue
the document names."""

from __future__ import annotations

import json
from pathlib import Path

import pika
import pika.exceptions
import pytest

from printstation.agent.broker.topology import declare, declare_shared, queue_arguments
from printstation.agent.config import Settings
from tests.support import run

#: Each channel the central system sends to, and the queue channel its messages land in.
REACHES = {"stationJobs": "stationQueue", "poolJobs": "poolQueue", "control": "controlQueue"}


@pytest.fixture
def api(tmp_path: Path) -> dict:
    done = run("schema", "--out", str(tmp_path / "schema"))
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / "schema" / "asyncapi.json").read_text())


def _amqp(api: dict, channel_id: str) -> dict:
    return api["channels"][channel_id]["bindings"]["amqp"]


def test_a_topology_declared_as_documented_is_the_agents_and_its_keys_route(
        api, broker_url, station_id, tmp_path):
    values = {"station_id": station_id, "pool": f"pool-{station_id}"}
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        # 1. Everything exactly as the document says, before any agent ran here.
        ch = conn.channel()
        for channel in api["channels"].values():
            exchange = channel["bindings"]["amqp"].get("exchange")
            if exchange:
                ch.exchange_declare(exchange["name"], exchange["type"],
                                    durable=exchange["durable"],
                                    auto_delete=exchange["autoDelete"])
        documented = {}
        for channel_id, channel in api["channels"].items():
            queue = channel["bindings"]["amqp"].get("queue")
            if queue:
                name = channel["address"].format(**values)
                ch.queue_declare(name, durable=queue["durable"], exclusive=queue["exclusive"],
                                 auto_delete=queue["autoDelete"],
                                 arguments=queue["x-arguments"])
                documented[channel_id] = name
        # 2. The agent declares its topology over it: no mismatch, and its own arguments
        # are accepted for every queue (a difference would be PRECONDITION_FAILED).
        settings = Settings(station_id=station_id, pools=[values["pool"]],
                            state_dir=tmp_path / "state", broker_url=broker_url)
        declare_shared(conn, settings)
        declare(conn, settings)
        for name in documented.values():
            conn.channel().queue_declare(name, durable=True,
                                         arguments=queue_arguments(settings))
        # 3. The central system's send operations, as documented: each routes (mandatory,
        # confirmed; NO_ROUTE would raise) to the queue the document names.
        ch = conn.channel()
        ch.confirm_delivery()
        for op_id, op in api["operations"].items():
            if op["action"] != "send":
                continue
            channel_id = op["channel"]["$ref"].rsplit("/", 1)[1]
            amqp = op["bindings"]["amqp"]
            body = json.dumps({"operation": op_id}).encode()
            ch.basic_publish(_amqp(api, channel_id)["exchange"]["name"],
                             api["channels"][channel_id]["address"].format(**values), body,
                             pika.BasicProperties(delivery_mode=amqp["deliveryMode"]),
                             mandatory=amqp["mandatory"])
            _, _, got = ch.basic_get(documented[REACHES[channel_id]], auto_ack=True)
            assert got == body, (op_id, documented[REACHES[channel_id]])
        assert {op_id for op_id, op in api["operations"].items() if op["action"] == "send"} \
            == {"sendStationJob", "sendPoolJob", "sendControl"}
        # What the earlier document said does fail, so the checks above can: its control
        # routing key is unroutable and its text delivery limit refused.
        with pytest.raises(pika.exceptions.UnroutableError):
            ch.basic_publish("printstation.control", f"control.station.{station_id}", b"{}",
                             mandatory=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            conn.channel().queue_declare(
                documented["controlQueue"], durable=True,
                arguments={**queue_arguments(settings),
                           "x-delivery-limit": "configurable, default 20"})
        assert refused.value.reply_code == 406  # PRECONDITION_FAILED
    finally:
        cleanup = conn.channel() if conn.is_open else None
        if cleanup:
            for name in (f"printstation.station.{station_id}",
                         f"printstation.control.{station_id}",
                         f"printstation.pool.pool-{station_id}"):
                cleanup.queue_delete(name)
        conn.close()
