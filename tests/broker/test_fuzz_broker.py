"""Arbitrary messages through the real broker: the agent never crashes and dead-letters each one.

Unlike `test_intake.py`, which calls the intake directly, every message here travels the
whole path: published to the job or control exchange, consumed by the running agent,
rejected, and found again in `printstation.dead` with the broker's `x-death` header. A
valid job sent after them all is still printed: nothing blocked the queue.
"""

from __future__ import annotations

import json
import uuid

import pika
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from printstation.agent.central.samples import sample_job
from tests.support import signed, wait_for

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
header_values = st.one_of(text, st.binary(max_size=60), st.integers(-2**31, 2**31 - 1),
                          st.none(), st.booleans())
json_values = st.recursive(st.none() | st.booleans() | st.integers() | text,
                           lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(text, inner, max_size=4), max_leaves=12)
job_like = st.fixed_dictionaries(
    {"schema": st.sampled_from(["printstation.job/2", "printstation.control/2",
                                "printstation.job/1", "x/1"])},
    optional={"job_id": text, "command": text, "card_stock": json_values,
              "sides": json_values, "created_at": json_values})


bodies = st.one_of(
    st.binary(max_size=3000),
    json_values.map(lambda v: json.dumps(v).encode()),
    job_like.map(lambda v: json.dumps(v).encode()),
)


def test_arbitrary_messages_through_the_broker_are_dead_lettered(
        make_station, raw_publish, broker_url, station_id, signing_key, events):
    station = make_station(station_id)
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    ch = conn.channel()
    watch = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(watch, "printstation.dead")
    seen: dict[str, dict] = {}

    def drain() -> None:
        while True:
            method, props, _ = ch.basic_get(watch, auto_ack=True)
            if method is None:
                return
            tag = (props.headers or {}).get("x-test-tag")
            if isinstance(tag, bytes):
                tag = tag.decode()
            seen[str(tag)] = props.headers or {}

    sent = 0

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(body=bodies,
           headers=st.dictionaries(st.sampled_from(["x-signature", "x-key-id", "x-other",
                                                    "x-delivery-count"]), header_values),
           message_id=st.one_of(st.none(), text),
           sign=st.booleans(),
           to_control=st.booleans())
    def one(body, headers, message_id, sign, to_control):
        nonlocal sent
        if sign:  # a valid signature over an invalid body: refused for what it says
            headers = {**headers, **signed(signing_key, body)[1]}
        tag = uuid.uuid4().hex
        raw_publish(station_id, body, {**headers, "x-test-tag": tag}, message_id=message_id,
                    exchange="printstation.control" if to_control else "printstation.jobs")
        sent += 1
        death = wait_for(lambda: drain() or seen.get(tag), 15, "the message to be dead-lettered")
        assert death.get("x-death"), "dead-lettered without the broker's x-death header"
        assert station.agent.fatal is None

    one()
    assert sent >= 20

    job = sample_job(f"FUZZ-{station_id}-ok", two_sided=False,
                     destination=f"station.{station_id}")
    raw, headers = signed(signing_key, job.body)
    raw_publish(station_id, raw, headers, message_id=job.body["job_id"])
    final = events.wait_final([job.body["job_id"]])[job.body["job_id"]]
    assert final["status"] == "printed"
    assert station.agent.printer.alive() and station.agent.fatal is None
    rejected = [e for e in events.statuses() if e["status"] == "rejected"]
    assert all(e["reason"] and e["reason"]["code"] for e in rejected)
    conn.close()
