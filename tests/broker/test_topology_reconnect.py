"""A reconnect declares the exchanges and queues again and binds behind, on a connection of
its own (agent/broker/topology.py: a binding waits for a hung cluster node); a queue deleted
under the agent, or a binding lost, is routed to again."""

from __future__ import annotations

import threading

import pika
import pika.exceptions

from printstation.agent.broker import topology
from printstation.agent.central.samples import sample_job
from tests.support import wait_for
from tests.support.broker import close_agent_connections


def _routable(broker_url: str, exchange: str, key: str) -> bool:
    """Whether a message to `key` reaches a queue (published mandatory, with a confirm)."""
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        try:
            ch.basic_publish(exchange, key, b"{}", mandatory=True)
            return True
        except pika.exceptions.UnroutableError:
            return False
    finally:
        conn.close()


def _admin(broker_url: str, act) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        act(conn.channel())
    finally:
        conn.close()


def test_a_station_queue_deleted_under_the_agent_is_declared_and_bound_again(
        make_station, submitter, events, station_id, broker_url):
    """The broker cancels the agent's consumer when its queue goes; the agent starts a new
    session, which declares the queue, and binds it behind."""
    station = make_station(station_id)
    submitter.submit_job(sample_job("TOPO-1", two_sided=False).body, station=station_id)
    events.wait_status(["TOPO-1"], {"printed"})
    s = station.agent.settings
    # An administrator's mistake, or a reset broker.
    _admin(broker_url, lambda ch: ch.queue_delete(s.station_queue()))
    wait_for(lambda: _routable(broker_url, s.names.job_exchange, f"station.{station_id}"), 30,
             "the station queue to be declared and bound again")
    # The probe above left a message that is no job: it is refused and dead-lettered.
    submitter.submit_job(sample_job("TOPO-2", two_sided=False).body, station=station_id)
    events.wait_status(["TOPO-2"], {"printed"})
    assert sorted(station.issued()) == ["TOPO-1", "TOPO-2"]


def test_a_binding_lost_while_the_queue_stays_is_made_again_on_reconnect(
        make_station, submitter, events, station_id, broker_url, vhost):
    station = make_station(station_id)
    submitter.submit_job(sample_job("BIND-1", two_sided=False).body, station=station_id)
    events.wait_status(["BIND-1"], {"printed"})
    s = station.agent.settings
    key = f"station.{station_id}"
    # The queue stays, its binding goes (an unbind, or the exchange deleted and re-made).
    _admin(broker_url, lambda ch: ch.queue_unbind(s.station_queue(), s.names.job_exchange,
                                                  routing_key=key))
    assert not _routable(broker_url, s.names.job_exchange, key)
    close_agent_connections(vhost)
    wait_for(lambda: not station.agent.station.broker.all_up, 20,
             "the agent to notice its connections closed")
    wait_for(lambda: station.agent.station.broker.all_up, 30, "the agent to connect again")
    wait_for(lambda: _routable(broker_url, s.names.job_exchange, key), 30,
             "the station queue to be bound again behind the new session")


def test_a_binding_round_that_fails_is_tried_again_while_the_session_stays_up(
        make_station, station_id, broker_url, vhost, monkeypatch):
    station = make_station(station_id)
    s = station.agent.settings
    key = f"station.{station_id}"
    real_bind = topology.bind
    rounds: list[str] = []

    def lost_once(conn, settings):
        rounds.append(threading.current_thread().name)
        if len(rounds) == 1:  # the node it was on went down mid-bind, say
            raise pika.exceptions.StreamLostError("connection lost mid-bind")
        return real_bind(conn, settings)

    monkeypatch.setattr(topology, "bind", lost_once)
    _admin(broker_url, lambda ch: ch.queue_unbind(s.station_queue(), s.names.job_exchange,
                                                  routing_key=key))
    close_agent_connections(vhost)
    wait_for(lambda: not station.agent.station.broker.all_up, 20, "connections closed")
    wait_for(lambda: station.agent.station.broker.all_up, 30, "connected again")
    wait_for(lambda: _routable(broker_url, s.names.job_exchange, key), 30,
             "the station queue to be bound again after a failed round")
    assert len(rounds) >= 2 and set(rounds) == {"consumer-binder"}, rounds
