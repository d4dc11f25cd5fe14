"""Idle and slow connections cannot take the agent's threads, nor keep others from an answer.

A local user once held 115 threads in the agent with idle connections to the operator page,
the metrics and the control socket. Each server now has one thread (its gate) that holds
connections until their request is whole, closes those that stay idle, and serves complete
requests on at most `MAX_WORKERS` threads.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import wait_for

from printstation.agent.surfaces import httpbase
from printstation.agent.surfaces.control_socket import BUSY, ControlError, LocalControlServer, call
from printstation.agent.surfaces.metrics import MetricsServer
from printstation.agent.surfaces.web import token_path


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)


def _idle(station, count: int) -> list[socket.socket]:
    """`count` connections to each server; every other one sends half a request, then stops."""
    held = []
    for url in (station.agent.url("web"), station.agent.url("metrics")):
        for i in range(count):
            conn = socket.create_connection(_address(url), timeout=10)
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


def _get(url: str, path: str, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection(*_address(url), timeout=5)
    try:
        conn.request("GET", path, headers=headers)
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()


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
        assert _get(station.agent.url("web"), "/api/state",
                    {"X-Printstation-Token": secret}) == 200
        assert _get(station.agent.url("metrics"), "/metrics", {}) == 200
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


def test_requests_beyond_the_workers_are_refused_at_once(tmp_path):
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow(_request: dict, _who: str) -> dict:
        entered.release()
        release.wait(30)
        return {}

    server = LocalControlServer(tmp_path / "control.sock", {"slow": slow}, workers=3)
    server.start()
    before = threading.active_count()
    answers: list[dict] = []
    callers = [threading.Thread(target=lambda: answers.append(
        call(tmp_path / "control.sock", {"cmd": "slow"}, timeout=30))) for _ in range(3)]
    try:
        for t in callers:
            t.start()
        for _ in callers:
            assert entered.acquire(timeout=10), "a request did not reach its handler"
        assert threading.active_count() <= before + 6  # 3 callers, 3 workers
        with pytest.raises(ControlError, match="busy"):
            call(tmp_path / "control.sock", {"cmd": "slow"}, timeout=5)
        assert json.loads(BUSY)["ok"] is False
    finally:
        release.set()
        for t in callers:
            t.join(10)
        server.stop()
    assert answers == [{"ok": True}] * 3


def test_the_http_servers_refuse_beyond_their_workers_with_503():
    release = threading.Event()
    entered = threading.Semaphore(0)

    def health() -> list[str]:
        entered.release()
        release.wait(30)
        return []

    agent = SimpleNamespace(health=health,
                            station_state=lambda: SimpleNamespace(state="ready"))
    server = MetricsServer(agent, "127.0.0.1:0", workers=2)
    server.start()
    statuses: list[int] = []
    callers = [threading.Thread(target=lambda: statuses.append(
        _get(server.url, "/healthz", {}))) for _ in range(2)]
    try:
        for t in callers:
            t.start()
        for _ in callers:
            assert entered.acquire(timeout=10), "a request did not reach its handler"
        assert _get(server.url, "/healthz", {}) == 503
    finally:
        release.set()
        for t in callers:
            t.join(10)
        server.stop()
    assert statuses == [200, 200]


def test_when_too_many_wait_the_oldest_goes_and_a_new_request_is_answered(tmp_path: Path):
    path = tmp_path / "control.sock"
    server = LocalControlServer(path, {"status": lambda _r, _w: {"state": "ready"}}, waiting=8)
    server.start()
    held = []
    try:
        for _ in range(50):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(10)
            conn.connect(str(path))
            held.append(conn)
        wait_for(lambda: server.gate.waiting == 8, 10, "the gate to keep 8 waiting")
        assert held[0].recv(1) == b""  # the oldest was let go
        assert call(path, {"cmd": "status"}, timeout=5) == {"ok": True, "state": "ready"}
    finally:
        for conn in held:
            conn.close()
        server.stop()
