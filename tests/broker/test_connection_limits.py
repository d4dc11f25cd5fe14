"""Idle and slow connections cannot take the agent's threads, nor keep others from an answer.

A local user once held 115 threads in the agent with idle connections to the operator page,
the metrics and the control socket. Each server now has one thread (its gate) that holds
connections until their request is whole, closes those that stay idle, and serves complete
requests on at most `MAX_WORKERS` threads.
"""

from __future__ import annotations

import socket
import threading
import time

from printstation.agent.surfaces import httpbase
from printstation.agent.surfaces.control_socket import call
from printstation.agent.surfaces.web import token_path
from tests.support import host_port, http_get, wait_for


def _idle(station, count: int) -> list[socket.socket]:
    """`count` connections to each server; every other one sends half a request, then stops."""
    held = []
    for url in (station.agent.url("web"), station.agent.url("metrics")):
        for i in range(count):
            conn = socket.create_connection(host_port(url), timeout=10)
            if i % 2:
                conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            held.append(conn)
    for i in range(count):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(10)
        conn.connect(str(station.agent.settings.socket_path()))
        if i % 2:
            conn.sendall(b'{"cmd": "pause", ')
        held.append(conn)
    return held


def _gates(station) -> list[httpbase.ConnectionGate]:
    return [s.gate for s in station.agent.servers] + [station.agent.control.gate]


def test_idle_connections_hold_no_threads_and_requests_still_answer(make_station, station_id,
                                                                    monkeypatch):
    monkeypatch.setattr(httpbase, "IDLE_TIMEOUT", 60.0)  # no idle one expires during the test
    station = make_station(station_id)
    before = threading.active_count()
    held = _idle(station, 50)
    try:
        wait_for(lambda: all(g.waiting == 50 for g in _gates(station)), 20,
                 "each server to hold its 50 idle connections")
        assert threading.active_count() <= before + 2, threading.enumerate()
        # Every server answers a whole request at once, with all those connections open.
        started = time.monotonic()
        secret = token_path(station.agent.settings).read_text().strip()
        assert http_get(station.agent.url("web"), "/api/state",
                            {"X-Printstation-Token": secret}, timeout=5).status == 200
        assert http_get(station.agent.url("metrics"), "/metrics", {}, timeout=5).status == 200
        assert call(station.agent.settings.socket_path(), {"cmd": "status"}, timeout=5)["ok"]
        assert time.monotonic() - started < 15  # far from the idle timeout of 60 s
        assert threading.active_count() <= before + 2, threading.enumerate()
        assert not station.agent.station.paused()  # the half-sent pause was never carried out
    finally:
        for conn in held:
            conn.close()


def test_a_connection_that_stays_idle_is_closed(make_station, station_id, monkeypatch):
    monkeypatch.setattr(httpbase, "IDLE_TIMEOUT", 0.5)
    station = make_station(station_id)
    held = _idle(station, 3)
    try:
        started = time.monotonic()
        for conn in held:  # each blocks until the agent closes it, at most 10 s
            assert conn.recv(1024) == b""
        assert time.monotonic() - started < 10
        wait_for(lambda: all(g.waiting == 0 for g in _gates(station)), 10,
                 "the servers to let the idle connections go")
    finally:
        for conn in held:
            conn.close()
