"""Idle and slow connections cannot take the agent's threads, nor keep others from an answer.

A local user once held 115 threads in the agent with idle connections to the operator page,
the metrics and the control socket. Each server now has one thread (its gate) that holds
connections until their request is whole, closes those that stay idle, and serves complete
requests on at most `MAX_WORKERS` threads.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from printstation.agent.surfaces.control_socket import BUSY, ControlError, LocalControlServer, call
from printstation.agent.surfaces.metrics import MetricsServer
from tests.support import http_get, wait_for


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

    view = SimpleNamespace(health=health, state=lambda: "ready")  # a StationView's two calls
    server = MetricsServer(view, "127.0.0.1:0", workers=2)
    server.start()
    statuses: list[int] = []
    callers = [threading.Thread(target=lambda: statuses.append(
        http_get(server.url, "/healthz", {}, timeout=5).status)) for _ in range(2)]
    try:
        for t in callers:
            t.start()
        for _ in callers:
            assert entered.acquire(timeout=10), "a request did not reach its handler"
        assert http_get(server.url, "/healthz", {}, timeout=5).status == 503
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
