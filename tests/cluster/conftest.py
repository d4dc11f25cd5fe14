"""The cluster tier's fixtures: a three-node RabbitMQ cluster of the tests' own for the
session (tests/support/cluster.py), and in-process agents whose broker_url names its nodes.

A machine where the cluster cannot start fails here in one line saying why: these tests
never skip. Nothing here touches the system broker at 5672.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from printstation.agent.config import Settings
from printstation.agent.signing import Verifier
from printstation.agent.station.agent import Agent
from tests.support import KEY_ID, wait_for
from tests.support.broker import Station
from tests.support.cluster import Cluster, missing


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    lack = missing()
    if lack:
        pytest.fail(lack, pytrace=False)
    made = Cluster(Path(tmp_path_factory.mktemp("rabbitmq-cluster")))
    try:
        try:
            made.start()
        except (RuntimeError, OSError) as error:
            pytest.fail(f"the three-node RabbitMQ cluster did not start: "
                        f"{str(error).splitlines()[0]}", pytrace=False)
        yield made
    finally:
        made.stop()


@pytest.fixture
def live_cluster(cluster: Cluster) -> Cluster:
    """The cluster with every node running: one a test killed is started again (it
    rejoins by itself) before the next test, and one a failed test left frozen is killed
    first."""
    for node in cluster.nodes:
        if cluster.frozen(node):
            cluster.kill(node)
        if cluster._own_pid(node) is None:
            cluster.restart(node)
    running = cluster.ctl(cluster.nodes[0], "eval", "length(rabbit_nodes:all_running()).")
    assert running.strip() == str(len(cluster.nodes)), "a restarted node did not rejoin"
    return cluster


@pytest.fixture
def make_cluster_station(tmp_path: Path, signing_key: Ed25519PrivateKey
                         ) -> Iterator[Callable[..., Station]]:
    """An in-process agent on a simulated printer, its broker_url given by the test."""
    started: list[Agent] = []

    def make(station_id: str, broker_url: str, **settings: Any) -> Station:
        cards = tmp_path / f"cards-{station_id}"
        s = Settings(station_id=station_id, state_dir=tmp_path / f"state-{station_id}",
                     printer_url=f"sim://?print_time=0.05&render=0&out={cards}",
                     broker_url=broker_url, quorum_group_size=3, heartbeat=10,
                     reconnect_max_delay=2.0, **settings)
        agent = Agent(s, verifier=Verifier({KEY_ID: signing_key.public_key()}))
        agent.start()
        started.append(agent)
        wait_for(lambda: agent.station.broker.all_up or agent.fatal, 30,
                 "the agent to connect to the cluster")
        assert agent.fatal is None, agent.fatal
        return Station(agent, cards)

    yield make
    for agent in started:
        agent.stop()
