"""The ipp tier's fixtures: one cupsd of the tests' own for the session, and for each test a
fresh card printer (ippeveprinter with the simulator's print command) behind a queue of its
own (tests/support/cups.py).

A machine without cups, cups-ipp-utils, libcups2-dev, dbus, poppler-utils or pycups fails
here in one line saying how to install them: these tests never skip.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cups import CardPrinter, Cupsd, folder, missing


def _need_cups() -> None:
    lack = missing()
    if lack:
        pytest.fail(lack, pytrace=False)


@pytest.fixture(scope="session")
def cupsd() -> Iterator[Cupsd]:
    """cupsd on a free port of 127.0.0.1 for the whole session, every folder its own."""
    _need_cups()
    path = folder("printstation-cupsd-")
    daemon: Cupsd | None = None
    try:
        daemon = Cupsd(path)
        yield daemon
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class CardQueue:
    """A card printer behind a CUPS queue: what an agent's `ipp://` printer is."""

    printer: CardPrinter
    #: The queue's name at cupsd.
    name: str
    #: The agent's URL for it: ipp://127.0.0.1:PORT/printers/NAME.
    url: str


@pytest.fixture
def card_queue(cupsd: Cupsd, tmp_path: Path) -> Iterator[CardQueue]:
    """A fresh card printer and a queue of its own name at the session's cupsd; both gone
    after the test (the queue removed, the printer and its D-Bus stopped)."""
    printer = CardPrinter(tmp_path / "card-printer")
    name = f"card-{uuid.uuid4().hex[:8]}"
    try:
        url = cupsd.add_queue(name, printer)
        yield CardQueue(printer, name, url)
    finally:
        if cupsd.running():
            cupsd.remove_queue(name)
        printer.stop()


@pytest.fixture
def own_cupsd() -> Iterator[Callable[[], Cupsd]]:
    """Make a cupsd for this test alone (for tests that kill or stop it); stopped and
    removed after the test."""
    _need_cups()
    made: list[tuple[Cupsd | None, Path]] = []

    def make() -> Cupsd:
        path = folder("printstation-cupsd-")
        made.append((None, path))
        daemon = Cupsd(path)
        made[-1] = (daemon, path)
        return daemon

    yield make
    for daemon, path in made:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(path, ignore_errors=True)
