"""The Evolis contactless station end to end: the real driver against the simulated device.

The driver's bytes go straight into a `DeviceSession` of an `EvolisDevice` in this process
(no sockets, no threads), so each test states what the printer model did with them: which
blanks left the feeder, which card was parked, what its ledger line says. The device's
host timeouts run on a clock the test steps, so no test waits for them. The control port's
`chip` command and the scenario's chip settings are tested through `Server.control` and
`load_scenario` themselves; one test runs `printstation-sim` as its own process over TCP.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest
from PIL import Image

from printstation.drivers.base import CardJob, FaultCode, ParkedCard, PrinterError, SidePanels
from printstation.drivers.errors import TransportError
from printstation.drivers.evolis import protocol
from printstation.drivers.evolis.driver import EvolisDriver, EvolisOptions
from printstation.drivers.transport import Transport
from printstation.simulator import evolis_device
from printstation.simulator.chip import ChipFault, digest_of_writes, uid_for
from printstation.simulator.evolis_device import EvolisDevice
from printstation.simulator.printer import SimParams, SimulatedPrinter, read_ledger
from printstation.simulator.server import Server, load_scenario

SERIAL = "SIM-0001"
#: SELECT the application DF, SELECT EF 0101, UPDATE BINARY of 4 bytes at its start: what an
#: encoder writes, sent to the parked chip as its reader would.
ENCODING = [bytes.fromhex("00A4000C027F10"), bytes.fromhex("00A4020C020101"),
            bytes.fromhex("00D6000004DEADBEEF")]
WRITTEN = digest_of_writes([(0x0101, 0, bytes.fromhex("DEADBEEF"))])


class Clock:
    """A clock the test moves by hand: the device's host timeouts are measured on it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class DeviceLink(Transport):
    """The driver's link to a simulated device in this process.

    What the driver writes is fed to a device session at once and the replies wait to be
    read. `cut()` breaks the link as a pulled cable does: the next write or read raises,
    until the driver opens it again. With `host_lost`, the device is told (as the TCP
    server tells it of a closed connection); without, it is not (as over a serial line).
    """

    description = "simulated printer in this process"

    def __init__(self, device: EvolisDevice):
        self.device = device
        self.session = device.session()
        self.incoming: deque[bytes] = deque()
        self.broken = False

    def open(self) -> None:
        self.broken = False
        self.session = self.device.session()

    def close(self) -> None:
        self.incoming.clear()

    def cut(self, *, host_lost: bool) -> None:
        self.broken = True
        if host_lost:
            self.device.host_lost()

    def _write(self, data: bytes, timeout: float) -> None:
        if self.broken:
            raise TransportError("the simulated printer's link is cut")
        self.incoming.extend(self.session.feed(data))

    def _read_some(self, timeout: float) -> bytes:
        if self.broken:
            raise TransportError("the simulated printer's link is cut")
        return self.incoming.popleft() if self.incoming else b""


class Station:
    """A simulated printer, its device on a test clock, and the Evolis driver opened on it."""

    def __init__(self, out: Path, **params):
        self.out = out
        self.printer = SimulatedPrinter(SimParams(serial=SERIAL, print_time=0, render=False,
                                                  **params), out)
        self.clock = Clock()
        self.device = EvolisDevice(self.printer, clock=self.clock)
        self.link = DeviceLink(self.device)
        self.driver = EvolisDriver(self.link, EvolisOptions(timeout=0.2))
        self.driver.open()

    def ledger(self) -> list[dict]:
        return read_ledger(self.out)

    def command(self, text: str) -> bytes:
        """One command sent by hand, outside the driver; the device's reply."""
        [reply] = self.device.session().feed(protocol.ESC + text.encode() + protocol.CR)
        return reply.rstrip(protocol.REPLY_END)

    def encode(self) -> None:
        """Write the parked card's chip as an encoder does, through its reader."""
        chip = self.printer.parked_chip()
        assert chip is not None, "no chip at the contactless station"
        for apdu in ENCODING:
            assert chip.respond(apdu) == b"\x90\x00"


@pytest.fixture
def station(tmp_path):
    return lambda **params: Station(tmp_path / "out", **params)


def white_card() -> CardJob:
    return CardJob(job_id="CHIP-1", front=SidePanels(
        color=Image.new("RGB", (1016, 648), "white"), black=Image.new("1", (1016, 648), 1)))


# ------------------------------------------------------------------ park, then print or reject


def test_a_parked_card_is_encoded_then_printed_without_a_second_blank(station):
    s = station(cards=10)
    parked = s.driver.park_card(white_card())
    assert parked == ParkedCard(card_no=1, reader=None)
    assert s.printer.parked == 1
    s.encode()
    result = s.driver.print_card(white_card())
    assert result.counter == 1
    assert (s.printer.counter, s.printer.cards_in_feeder, s.printer.parked) == (1, 9, None)
    [line] = s.ledger()
    assert (line["card_no"], line["outcome"]) == (1, "issued")
    assert line["chip_uid"] == uid_for(SERIAL, 1).hex()
    assert line["chip_digest"] == WRITTEN


def test_a_card_whose_chip_failed_is_rejected_unprinted(station):
    s = station(cards=10, chip_faults={1: ChipFault.DEAD})
    s.driver.park_card(white_card())
    chip = s.printer.parked_chip()
    assert chip is not None and chip.respond(ENCODING[0]) == b"\x6f\x00"  # a dead chip
    s.driver.reject_card(white_card())
    [line] = s.ledger()
    assert (line["outcome"], line["reason"], line["png"]) == ("spoiled", "rejected_by_host", None)
    assert line["chip_uid"] == uid_for(SERIAL, 1).hex()
    assert line["chip_digest"] == digest_of_writes([])  # nothing was written
    assert (s.printer.counter, s.printer.parked) == (1, None)
    # The station is free: the next card is drawn and printed as ever.
    assert s.driver.print_card(white_card()).counter == 2
    assert [c["outcome"] for c in s.ledger()] == ["spoiled", "issued"]


def test_sic_with_an_empty_feeder_draws_nothing(station):
    s = station(cards=0)
    with pytest.raises(PrinterError) as info:
        s.driver.park_card(white_card())
    assert info.value.fault is FaultCode.FEEDER_EMPTY and info.value.card_drawn is False
    assert (s.printer.counter, s.printer.parked, s.ledger()) == (0, None, [])


def test_a_parked_card_is_not_a_jam_in_the_status(station):
    s = station()
    s.driver.park_card(white_card())
    assert s.driver.status().faults == ()


# ------------------------------------------------------------------ the device's own rules


def test_sic_is_refused_with_a_card_already_in_the_printer(station):
    s = station()
    assert s.command("Ss") == b"OK"
    assert s.command("Sic") == protocol.ERROR_CDE.encode()
    assert s.printer.counter == 1 and s.printer.parked is None


def test_a_parked_card_prints_only_after_ss(station):
    s = station()
    assert s.command("Sic") == b"OK"
    assert s.command("Sr") == protocol.ERROR_CDE.encode()
    assert s.command("Ss") == b"OK"
    assert s.command("Ss") == protocol.ERROR_CDE.encode()  # one card, taken once
    assert s.command("Sr") == b"OK"
    assert s.printer.counter == 1


@pytest.mark.parametrize(("text", "reply", "offset"), [
    ("Poc;=;120", "OK", 120),
    ("Poc;+;5", "OK", 5),
    ("Poc;=;x", "ERROR PARAMETRES", 0),
    ("Poc;120", "ERROR PARAMETRES", 0),
    ("Poc", "ERROR PARAMETRES", 0),
])
def test_poc_sets_the_offset(station, text, reply, offset):
    s = station()
    assert s.command(text) == reply.encode()
    assert s.device.chip_offset == offset


def test_the_driver_sets_the_offset_from_its_url(tmp_path):
    printer = SimulatedPrinter(SimParams(render=False), tmp_path / "out")
    device = EvolisDevice(printer)
    EvolisDriver(DeviceLink(device), EvolisOptions(timeout=0.2, chip_offset=1400)).open()
    assert device.chip_offset == 1400


def test_a_parked_card_waits_longer_than_a_card_being_printed(station):
    s = station()
    s.driver.park_card(white_card())
    s.clock.advance(evolis_device.HOST_TIMEOUT + 1)  # the encoder is still at it
    assert s.driver.status().faults == ()
    assert s.printer.parked == 1 and s.ledger() == []
    s.encode()
    assert s.driver.print_card(white_card()).counter == 1
    assert [c["outcome"] for c in s.ledger()] == ["issued"]


def test_a_parked_card_left_too_long_goes_to_the_reject_box(station):
    s = station()
    s.driver.park_card(white_card())
    s.clock.advance(evolis_device.PARKED_TIMEOUT + 1)
    s.driver.status()  # any command: the printer notices the host went quiet
    [line] = s.ledger()
    assert (line["outcome"], line["reason"]) == ("spoiled", "host_lost")
    assert s.printer.parked is None


def test_a_card_in_the_print_path_still_times_out_after_host_timeout(station):
    s = station()
    assert s.command("Sic") == b"OK"
    assert s.command("Ss") == b"OK"  # no longer parked: the print path's timeout applies
    s.clock.advance(evolis_device.HOST_TIMEOUT + 1)
    s.command("Rlr;p")
    assert [(c["outcome"], c["reason"]) for c in s.ledger()] == [("spoiled", "host_lost")]


# ------------------------------------------------------------------ a link broken while parked


@pytest.mark.parametrize("host_lost", [True, False], ids=["tcp", "serial"])
def test_a_link_broken_while_parked_spoils_that_card_and_never_prints_on_it(station,
                                                                            host_lost):
    s = station(cards=10)
    s.driver.park_card(white_card())
    s.encode()
    s.link.cut(host_lost=host_lost)
    with pytest.raises(PrinterError) as info:
        s.driver.print_card(white_card())
    assert info.value.fault is FaultCode.OFFLINE and info.value.card_drawn is True
    # The next card is a fresh blank: over a serial line the printer still holds the parked
    # one, which is rejected first, so no face is printed on a chip written for another.
    s.link.broken = False
    assert s.driver.print_card(white_card()).counter == 2
    lines = s.ledger()
    assert [(c["card_no"], c["outcome"]) for c in lines] == [(1, "spoiled"), (2, "issued")]
    assert lines[0]["reason"] == ("host_lost" if host_lost else "rejected_by_host")
    assert lines[0]["chip_digest"] == WRITTEN and "chip_uid" not in lines[1]


def test_a_link_broken_and_restored_while_parked_rejects_the_card(station):
    s = station(cards=10)
    s.driver.park_card(white_card())
    s.link.cut(host_lost=False)
    with pytest.raises(PrinterError):
        s.driver.status()  # the driver learns of the broken link while the card is parked
    s.link.broken = False
    s.driver.status()  # reconnected
    with pytest.raises(PrinterError) as info:
        s.driver.print_card(white_card())
    assert info.value.card_drawn is True
    assert [(c["outcome"], c["reason"]) for c in s.ledger()] == [("spoiled", "rejected_by_host")]
    assert s.printer.counter == 1


def test_a_card_parked_before_the_driver_was_closed_is_never_printed(station):
    s = station(cards=10)
    s.driver.park_card(white_card())
    s.driver.close()
    s.driver.open()
    with pytest.raises(PrinterError) as info:
        s.driver.print_card(white_card())  # the print that was meant for the parked card
    assert info.value.card_drawn is True
    assert s.driver.print_card(white_card()).counter == 2
    assert [(c["card_no"], c["outcome"]) for c in s.ledger()] == [(1, "spoiled"), (2, "issued")]


# ------------------------------------------------------------------ control port and scenario


def server(tmp_path: Path, **params) -> Server:
    printer = SimulatedPrinter(SimParams(render=False, **params), tmp_path / "out")
    return Server(EvolisDevice(printer), host="127.0.0.1", tcp_port=None, pty_link=None,
                  control_port=None)


def test_sim_chip_control_sets_one_cards_chip_or_every_later_ones(tmp_path):
    srv = server(tmp_path)
    params = srv.device.printer.params
    answer = srv.control({"cmd": "chip", "fault": "dead", "card": 2})
    assert answer["ok"] and answer["parked"] is None
    assert (params.chip_faults, params.chip_fault) == ({2: ChipFault.DEAD}, ChipFault.NONE)
    srv.control({"cmd": "chip", "fault": "absent"})
    assert params.chip_fault is ChipFault.ABSENT
    printer = srv.device.printer
    printer.park_blank()
    assert printer.parked_chip() is None  # card 1: no chip, as every later blank
    assert srv.control({"cmd": "status"})["parked"] == 1
    printer.reject(1, "test")
    printer.park_blank()
    chip = printer.parked_chip()
    assert chip is not None and chip.fault is ChipFault.DEAD  # card 2's own fault


@pytest.mark.parametrize(("cmd", "error"), [
    ({"cmd": "chip", "fault": "broken"}, "unknown chip fault 'broken'; chip faults: none, "
                                         "absent, dead, mute, wrong, slow"),
    ({"cmd": "chip", "fault": "dead", "card": "five"},
     "chip: card must be a card counter (1 or more), not 'five'"),
    ({"cmd": "chip", "fault": "dead", "card": 0},
     "chip: card must be a card counter (1 or more), not 0"),
])
def test_sim_chip_control_refuses_a_bad_fault_or_card(tmp_path, cmd, error):
    srv = server(tmp_path)
    with pytest.raises(ValueError) as info:
        srv.control(cmd)
    assert str(info.value) == error
    assert srv.device.printer.params.chip_faults == {}


def test_sim_scenario_chip_settings_as_text_or_a_table(tmp_path):
    scenario = tmp_path / "chips.toml"
    scenario.write_text('[printer]\nchip_fault = "slow"\nchip_faults = "3:dead,5:absent"\n')
    params = load_scenario(scenario, [])
    assert params.chip_fault is ChipFault.SLOW
    assert params.chip_faults == {3: ChipFault.DEAD, 5: ChipFault.ABSENT}
    scenario.write_text('[printer.chip_faults]\n"3" = "mute"\n"7" = "wrong"\n')
    params = load_scenario(scenario, ["chip_fault=dead"])
    assert params.chip_faults == {3: ChipFault.MUTE, 7: ChipFault.WRONG}
    assert params.chip_fault is ChipFault.DEAD


@pytest.mark.parametrize(("toml", "error"), [
    ('chip_fault = "fried"', "unknown chip fault 'fried'"),
    ('chip_faults = "3-dead"', "'3-dead': give CARD:FAULT, e.g. 3:dead"),
    ('chip_faults = {"third" = "dead"}', "chip_faults: 'third' is not a card counter"),
    ('chip_faults = {"3" = "fried"}', "unknown chip fault 'fried'"),
])
def test_sim_scenario_with_a_bad_chip_setting_is_one_line(tmp_path, toml, error):
    scenario = tmp_path / "bad.toml"
    scenario.write_text(f"[printer]\n{toml}\n")
    with pytest.raises(ValueError, match=error.replace("(", r"\(")):
        load_scenario(scenario, [])


def test_sim_process_parks_and_rejects_over_tcp(sim_process, tmp_path):
    sim = sim_process("print_time=0.01", "render=0", pty=False)
    sim.control(cmd="chip", fault="wrong", card=1)
    driver = EvolisDriver.from_url(sim.tcp_url, state_dir=tmp_path)
    driver.open()
    assert driver.park_card(white_card()) == ParkedCard(card_no=1, reader=None)
    assert sim.control(cmd="status")["parked"] == 1
    driver.reject_card(white_card())
    assert sim.control(cmd="status")["parked"] is None
    [line] = sim.ledger()
    assert (line["outcome"], line["chip_uid"]) == ("spoiled", uid_for(SERIAL, 1).hex())
    driver.close()
