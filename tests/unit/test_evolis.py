"""The Evolis driver against `printstation-sim` as a separate process, over a pty and TCP."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from printstation.agent.central.samples import sample_job
from printstation.agent.station.journal import JobRow
from printstation.agent.station.printing import build_card
from printstation.drivers.base import CardJob, FaultCode, PrinterError
from printstation.drivers.evolis import protocol
from printstation.drivers.evolis.driver import EvolisDriver
from printstation.drivers.registry import open_driver
from tests.support import REPO, job_fingerprint, wait_for

TRANSPORTS = ["tcp", "serial", "usb"]
USB_ENV = "PRINTSTATION_USB_BACKEND"


@pytest.fixture(autouse=True)
def _no_usb_backend_left_behind(monkeypatch):
    """driver_for sets the simulated USB backend in the environment; undo it after each test."""
    monkeypatch.delenv(USB_ENV, raising=False)


def card_for(body: dict) -> CardJob:
    raw = json.dumps({"destination": "station.test", **body}).encode()
    row = JobRow(body["job_id"], None, "ektp", "station", "queued", 0, 2, None, raw, None, None,
                 None)
    return build_card(row, protocol.CARD_SIZE)


def sim_url(sim, transport: str) -> str:
    """The printer URL of the simulator on one transport; USB goes through its pyusb backend."""
    if transport == "tcp":
        return sim.tcp_url
    if transport == "serial":
        return sim.serial_url
    serial = sim.control(cmd="status")["serial"]
    os.environ[USB_ENV] = (f"printstation.simulator.usb_backend:get_backend"
                           f"?address={sim.endpoints['tcp']}&serial={serial}")
    return f"evolis+usb://0f49:ffff?serial={serial}"


def driver_for(sim, transport: str, tmp_path: Path, **params: str) -> EvolisDriver:
    url = sim_url(sim, transport)
    if params:
        url += ("&" if "?" in url else "?") + "&".join(f"{k}={v}" for k, v in params.items())
    driver = open_driver(url, state_dir=tmp_path)
    assert isinstance(driver, EvolisDriver)
    driver.open()
    return driver


# --------------------------------------------------------------------------- protocol


def test_commands_are_framed_with_esc_and_cr():
    assert protocol.command("Rse", "o") == b"\x1bRse;o\r"
    with pytest.raises(ValueError):
        protocol.command("Rse", "o\r")
    with pytest.raises(ValueError, match="82296"):
        protocol.download("k", 2, b"\0" * 10)


def test_mono_panels_cross_the_wire_bit_exact():
    rng = np.random.default_rng(1)
    ink = rng.random((648, 1016)) < 0.3
    data = protocol.encode_mono(ink)
    assert len(data) == 82296
    assert (protocol.decode_mono(data) == ink).all()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8).flatmap(
    lambda bits: st.tuples(st.just(bits), st.lists(st.integers(0, 2**bits - 1), max_size=40))))
def test_packed_panels_are_the_values_bits_one_after_another(case):
    bits, values = case
    stream = "".join(format(v, f"0{bits}b") for v in values)
    stream += "0" * (-len(stream) % 8)
    expected = bytes(int(stream[i:i + 8], 2) for i in range(0, len(stream), 8))
    assert protocol._pack(np.array(values, dtype=np.uint8), bits) == expected


def test_colour_panels_round_trip_within_quantisation():
    rng = np.random.default_rng(2)
    rgb = Image.fromarray(rng.integers(0, 256, (648, 1016, 3), dtype=np.uint8), "RGB")
    for levels in (32, 64, 128):
        panels = protocol.encode_color(rgb, levels)
        assert {len(v) for v in panels.values()} == {protocol.panel_bytes(levels)}
        back = np.asarray(protocol.decode_color(panels, levels), dtype=int)
        step = 255 / (levels - 1)
        assert np.abs(back - np.asarray(rgb, dtype=int)).max() <= step / 2 + 1


def test_error_replies_map_to_fault_codes():
    assert protocol.reply_fault("CARD JAM") is FaultCode.JAM
    assert protocol.reply_fault("ERR RIB DETECTION") is FaultCode.RIBBON_OUT
    assert protocol.reply_fault("ERROR PARAMETRES") is FaultCode.PROTOCOL
    assert protocol.reply_fault("ERR SOMETHING NEW") is FaultCode.OTHER
    assert protocol.reply_fault("OK") is None
    assert protocol.parse_volts("4,97 Volts") == pytest.approx(4.97)


# ----------------------------------------------------------------- against the device


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_identity_status_and_consumables(sim_process, tmp_path, transport):
    sim = sim_process("ribbon=200", "serial=EV-123", "firmware=2.3.4")
    driver = driver_for(sim, transport, tmp_path)
    ident = driver.identity()
    assert (ident.driver, ident.serial, ident.firmware) == ("evolis", "EV-123", "2.3.4")
    assert "Evolis" in (ident.model or "")
    status = driver.status()
    assert status.state == "ready" and status.faults == () and status.card_counter == 0
    ribbon = status.consumables[0]
    assert (ribbon.kind, ribbon.type, ribbon.capacity, ribbon.remaining) == (
        "ribbon", "YMCKO", 200, 200)
    driver.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_printed_card_matches_the_job(sim_process, tmp_path, transport):
    sim = sim_process("print_time=0.05")
    driver = driver_for(sim, transport, tmp_path)
    body = sample_job(f"EV-{transport}", two_sided=True).body
    # Encoded ahead, as the agent's preparing thread does; other tests send unprepared cards.
    card = driver.prepare(card_for(body))
    assert card.encoded is not None
    result = driver.print_card(card)
    assert result.counter == 1
    [line] = sim.ledger()
    assert line["outcome"] == "issued" and line["fingerprint"] == job_fingerprint(body)
    printed = np.asarray(Image.open(sim.out / line["png"]).convert("RGB"), dtype=float)
    front = Image.open(io.BytesIO(base64.b64decode(body["sides"]["front"]["image"])))
    expected = np.asarray(front.convert("RGB").resize(protocol.CARD_SIZE), dtype=float)
    # Tolerance: 32 colour levels (±4 of 255) plus resampling; the mean error over the card.
    assert np.abs(printed[:, :1016] - expected).mean() < 6.0
    assert driver.status().consumables[0].remaining == 998  # one print per side
    driver.close()


FAULTS = [
    ({"cmd": "inject", "fault": "cover_open"}, FaultCode.COVER_OPEN),
    ({"cmd": "load", "cards": 0}, FaultCode.FEEDER_EMPTY),
    ({"cmd": "load", "ribbon": 0}, FaultCode.RIBBON_OUT),
    ({"cmd": "inject", "fault": "jam"}, FaultCode.JAM),
    ({"cmd": "inject", "fault": "hopper_full"}, FaultCode.HOPPER_FULL),
]


@pytest.mark.parametrize(("control", "fault"), FAULTS, ids=[f.value for _, f in FAULTS])
def test_every_fault_is_reported_and_refuses_a_card_without_drawing_it(
        sim_process, tmp_path, control, fault):
    sim = sim_process("print_time=0.05")
    driver = driver_for(sim, "tcp", tmp_path)
    sim.control(**control)
    assert fault in driver.status().faults
    if fault is not FaultCode.HOPPER_FULL:  # a full hopper is noticed by polling
        with pytest.raises(PrinterError) as info:
            driver.print_card(card_for(sample_job("EV-F", two_sided=False).body))
        assert info.value.fault is fault and info.value.card_drawn is False
        assert sim.control(cmd="status")["counter"] == 0
    sim.control(cmd="clear")
    sim.control(cmd="load", cards=10, ribbon=10)
    assert driver.status().faults == ()
    driver.close()


def test_a_jam_mid_card_spoils_the_blank(sim_process, tmp_path):
    sim = sim_process("print_time=0.05", "jam_at=1")
    driver = driver_for(sim, "serial", tmp_path)
    with pytest.raises(PrinterError) as info:
        driver.print_card(card_for(sample_job("EV-J", two_sided=False).body))
    assert info.value.fault is FaultCode.JAM and info.value.card_drawn is True
    assert [c["outcome"] for c in sim.ledger()] == ["spoiled"]
    assert FaultCode.JAM in driver.status().faults
    driver.close()


@pytest.mark.parametrize(("mischief", "fault"), [
    ({"cmd": "garbage", "count": 1}, FaultCode.PROTOCOL),
    ({"cmd": "truncate", "count": 1}, FaultCode.OFFLINE),
    ({"cmd": "silent", "count": 1}, FaultCode.OFFLINE),
    ({"cmd": "slow", "seconds": 1.5}, FaultCode.OFFLINE),
])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_replies_give_a_clear_error_and_no_hang(sim_process, tmp_path, transport, mischief,
                                                    fault):
    sim = sim_process()
    driver = driver_for(sim, transport, tmp_path, timeout="0.5")
    sim.control(**mischief)
    started = time.monotonic()
    with pytest.raises(PrinterError) as info:
        driver.status()
    assert time.monotonic() - started < 3
    assert info.value.fault is fault
    assert info.value.detail  # says what went wrong
    sim.control(cmd="slow", seconds=0)
    assert wait_for(lambda: _status_or_none(driver), 10, "the driver to recover").state \
        == "ready"
    driver.close()


def _status_or_none(driver):
    try:
        return driver.status()
    except PrinterError:
        return None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unplug_while_idle_is_offline_then_recovers(sim_process, tmp_path, transport):
    sim = sim_process()
    driver = driver_for(sim, transport, tmp_path, timeout="0.5")
    sim.control(cmd="unplug", seconds=1.0)
    with pytest.raises(PrinterError) as info:
        driver.status()
    assert info.value.fault is FaultCode.OFFLINE
    wait_for(lambda: _status_or_none(driver), 10, "the printer to come back")
    driver.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unplug_during_a_card(sim_process, tmp_path, transport):
    sim = sim_process("print_time=1.0")
    driver = driver_for(sim, transport, tmp_path, timeout="2")
    errors: list[PrinterError] = []

    def print_one():
        try:
            driver.print_card(card_for(sample_job("EV-U", two_sided=False).body))
        except PrinterError as exc:
            errors.append(exc)

    worker = threading.Thread(target=print_one)
    worker.start()
    wait_for(lambda: sim.control(cmd="status")["counter"] == 1, 10, "the blank to be drawn")
    sim.control(cmd="unplug", seconds=0.5)
    worker.join(30)
    assert not worker.is_alive()
    assert errors and errors[0].fault is FaultCode.OFFLINE
    # The blank is either spoiled (data incomplete) or printed (the printer had it all);
    # the driver says it was drawn, or that it cannot know.
    assert errors[0].card_drawn in (True, None)
    wait_for(lambda: len(sim.ledger()) == 1, 10, "the printer to settle the blank")
    driver.close()


def test_the_simulator_keeps_its_counters_across_restarts(sim_process, tmp_path):
    sim = sim_process("print_time=0.01", "cards=50")
    driver = driver_for(sim, "tcp", tmp_path)
    driver.print_card(card_for(sample_job("EV-R1", two_sided=False).body))
    driver.close()
    sim.stop()
    sim.start()
    status = sim.control(cmd="status")
    assert (status["counter"], status["cards"]) == (1, 49)


def test_probe_reports_identity_or_why_not(sim_process):
    import subprocess
    import sys

    sim = sim_process()
    out = subprocess.run([sys.executable, "-m", "printstation.agent", "probe", sim.tcp_url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Evolis" in out.stdout and "SIM-0001" in out.stdout
    sim.control(cmd="inject", fault="cover_open")
    out = subprocess.run([sys.executable, "-m", "printstation.agent", "probe", sim.serial_url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "Cover open" in out.stdout
    sim.stop()
    out = subprocess.run([sys.executable, "-m", "printstation.agent", "probe", sim.tcp_url],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "refused the connection" in out.stdout


def test_a_scenario_file_sets_stock_and_faults(tmp_path):
    from printstation.simulator.server import load_scenario

    params = load_scenario(REPO / "simulator" / "scenarios"
                           / "busy-office.toml", ["print_time=0.01"])
    assert (params.cards, params.ribbon, params.jam_at, params.print_time) == (40, 30, [7], 0.01)
    assert params.events == [{"card": 12, "fault": "cover_open"}]
    bad = tmp_path / "bad.toml"
    bad.write_text('[printer]\nspeed = 3\n')
    with pytest.raises(ValueError, match="unknown printer settings: speed"):
        load_scenario(bad, [])


def test_a_fault_event_stops_the_card_it_names(sim_process, tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text('[[events]]\ncard = 2\nfault = "cover_open"\n')
    sim = sim_process("print_time=0.01", "render=0", args=["--scenario", str(scenario)])
    driver = driver_for(sim, "tcp", tmp_path)
    driver.print_card(card_for(sample_job("EV-S1", two_sided=False).body))
    with pytest.raises(PrinterError) as info:
        driver.print_card(card_for(sample_job("EV-S2", two_sided=False).body))
    assert info.value.fault is FaultCode.COVER_OPEN and info.value.card_drawn is False
    driver.close()


def test_a_link_lost_after_the_card_came_out_is_still_a_printed_card(sim_process, tmp_path,
                                                                      monkeypatch):
    sim = sim_process("print_time=0.05")
    driver = driver_for(sim, "tcp", tmp_path, timeout="0.5")

    def link_lost(*_args):
        raise PrinterError(FaultCode.OFFLINE, "connection lost")

    monkeypatch.setattr(driver, "_number", link_lost)  # the counter query after `Se` fails
    result = driver.print_card(card_for(sample_job("EV-LATE", two_sided=False).body))
    assert result.counter is None
    assert [c["outcome"] for c in sim.ledger()] == ["issued"]
    driver.close()
