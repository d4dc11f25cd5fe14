"""The pcsc tier's fixtures: one pcscd of the tests' own for the session (tests/support/pcsc.py)
and a card slot in front of its first virtual reader for each test.

A machine without pcscd, vpcd or pyscard fails here in one line saying how to install them:
these tests never skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from printstation.simulator.vpcd import VpcdCard
from tests.support.pcsc import Pcscd, missing


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    lack = missing()
    if lack:
        pytest.fail(lack, pytrace=False)
    daemon = Pcscd(Path(tmp_path_factory.mktemp("pcscd")))
    # The client library reads (and keeps) the socket's name at its first context.
    before = os.environ.get("PCSCLITE_CSOCK_NAME")
    os.environ["PCSCLITE_CSOCK_NAME"] = str(daemon.socket)
    try:
        try:
            daemon.wait_ready()
        except AssertionError as error:
            pytest.fail(f"pcscd did not start (it runs as root in a mount namespace of its "
                        f"own): {str(error).splitlines()[0]}", pytrace=False)
        yield daemon
    finally:
        daemon.stop()
        if before is None:
            os.environ.pop("PCSCLITE_CSOCK_NAME", None)
        else:
            os.environ["PCSCLITE_CSOCK_NAME"] = before


@pytest.fixture
def card_slot(pcscd: Pcscd) -> Iterator[VpcdCard]:
    """The card side of the reader `Virtual PCD 00 00`; empty until a test inserts a chip."""
    slot = VpcdCard(port=pcscd.port)
    yield slot
    slot.close()
