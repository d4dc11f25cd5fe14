"""A reconnect checks the topology rather than declaring it again (agent/broker/topology.py:
a binding waits for a hung cluster node), and declares it in full when a queue is gone."""

from __future__ import annotations

import pika

from printstation.agent.central.samples import sample_job
from tests.support import wait_for
from tests.support.broker import close_agent_connections


def test_a_station_queue_deleted_under_the_agent_is_declared_and_bound_again(
        make_station, submitter, events, station_id, broker_url, vhost):
    station = make_station(station_id)
    submitter.submit_job(sample_job("TOPO-1", two_sided=False).body, station=station_id)
    events.wait_status(["TOPO-1"], {"printed"})
    queue = station.agent.settings.station_queue()

    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        conn.channel().queue_delete(queue)  # an administrator's mistake, or a reset broker
    finally:
        conn.close()
    close_agent_connections(vhost)
    wait_for(lambda: not station.agent.station.broker.all_up, 20,
             "the agent to notice its connections closed")
    wait_for(lambda: station.agent.station.broker.all_up, 30, "the agent to connect again")

    # Routed to the station only if the queue is there and bound again.
    submitter.submit_job(sample_job("TOPO-2", two_sided=False).body, station=station_id)
    events.wait_status(["TOPO-2"], {"printed"})
    assert sorted(station.issued()) == ["TOPO-1", "TOPO-2"]
