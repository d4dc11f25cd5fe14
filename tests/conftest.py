"""What every tier shares: quiet logs, keys, station ids, simulated printers, a small disk;
and the tiers themselves, told apart by folder.

    tests/unit/    no broker: the inner loop (`make unit`)
    tests/broker/  the real RabbitMQ (marked `broker`; tests/broker/fixtures.py owns the
                   broker fixtures, registered here once for it and the system tier)
    tests/pcsc/    a pcscd of the tests' own with vpcd's virtual readers (marked `pcsc`)
    tests/ipp/     a cupsd of the tests' own with ippeveprinter as the card printer (marked
                   `ipp`)
    tests/cluster/ a three-node RabbitMQ cluster of the tests' own beside the system broker:
                   broker failover (marked `cluster`)
    tests/system/  end to end: the command, device processes, the chaos run (marked `broker`
                   and `system`)

A test in tests/unit/ that asks for a broker fixture is an error at collection, so the
quick tier stays quick and runs where no broker is.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from printstation.agent import i18n
from printstation.agent.surfaces import logs
from tests.support.sim import SimProcess, SmallDisk

logs.configure("warning")
# Many agents run at once here, in this process and as subprocesses (which inherit this):
# each serves its operator page and metrics on a port of its own.
os.environ.setdefault("PRINTSTATION_WEB_LISTEN", "127.0.0.1:0")
os.environ.setdefault("PRINTSTATION_METRICS_LISTEN", "127.0.0.1:0")
# The tests read the agent's English whatever the developer's locale, in this process and in
# the commands they run; tests/unit/test_i18n.py asks for Indonesian where it wants it.
os.environ["PRINTSTATION_LANGUAGE"] = "en"
i18n.use("en")

#: The broker fixtures, one registration for the broker and system tiers (one vhost a run).
pytest_plugins = ["tests.broker.fixtures"]

TESTS = Path(__file__).parent
#: The broker tier's fixtures (tests/broker/fixtures.py), which no unit test may use.
BROKER_FIXTURES = frozenset({"vhost", "broker_url", "make_station", "submitter", "raw_publish",
                             "central_relay", "events"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(item.path).relative_to(TESTS).parts[0]
        if tier in ("broker", "system"):
            item.add_marker(pytest.mark.broker)
        if tier == "system":
            item.add_marker(pytest.mark.system)
        if tier == "pcsc":
            item.add_marker(pytest.mark.pcsc)
        if tier == "ipp":
            item.add_marker(pytest.mark.ipp)
        if tier == "cluster":
            item.add_marker(pytest.mark.cluster)
        if tier == "unit":
            wanted = BROKER_FIXTURES & set(getattr(item, "fixturenames", ()))
            if wanted:
                raise pytest.UsageError(
                    f"{item.nodeid} is in the unit tier but uses the broker "
                    f"({', '.join(sorted(wanted))}): move it to tests/broker/")


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def station_id() -> str:
    return f"st-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def sim_process(tmp_path: Path) -> Iterator[Callable[..., SimProcess]]:
    made: list[SimProcess] = []

    def make(*settings: str, name: str = "sim", pty: bool = True,
             args: list[str] | None = None) -> SimProcess:
        sim = SimProcess(tmp_path / name, *settings, pty=pty, extra_args=args)
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 32 MiB tmpfs of this test's own: a disk that really fills (ENOSPC)."""
    path = tmp_path / "small-disk"
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs",
                              str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail("this test mounts a small tmpfs to fill a disk for real and needs root "
                    f"(mount said: {mounted.stderr.strip()}); run the suite as root",
                    pytrace=False)
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)
