"""Reconnect backoff ends as soon as a broker whose port was closed listens again."""

from __future__ import annotations

import threading
import time

from printstation.agent.broker import reconnect


def test_a_port_that_opens_again_ends_the_backoff(monkeypatch):
    answers = iter([False, False, True])
    monkeypatch.setattr(reconnect, "port_open", lambda url: next(answers, True))
    started = time.monotonic()
    reconnect.wait_or_port_back(threading.Event(), 30.0, "amqp://broker:5672/")
    assert time.monotonic() - started < 5  # two probes, not the 30 s of backoff


def test_a_broker_that_listens_but_refuses_is_not_hammered(monkeypatch):
    probes = []
    monkeypatch.setattr(reconnect, "port_open", lambda url: probes.append(url) or True)
    started = time.monotonic()
    reconnect.wait_or_port_back(threading.Event(), 0.6, "amqp://broker:5672/")
    assert time.monotonic() - started >= 0.6 and probes  # the whole backoff was kept
