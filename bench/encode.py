"""Encode time per card: the agent's chip step with its `pcsc://` encoder against a bare
pyscard loop.

Both send the same `apdu-script/1` of 40 APDUs (a SELECT of the file, then 39 UPDATE BINARY
of 200 bytes) to the same simulated chip, presented by vpcd's card side to a pcscd of the
benchmark's own (the test tier's `Pcscd`: needs root, pcscd, vsmartcard-vpcd and pyscard,
`make system-deps pcsc`). The card stays at the reader, so neither pays pcscd's 400 ms
presence poll; each card is a fresh connection, as a parked card is. The agent's side is what
its printer thread runs for a parked card (`ChipStation.encode`: the encoder, parsing the
job's script, and checking what the encoder returned). The script is parsed ahead, as the
agent parses it on its card-preparation thread while another card prints (`Encoder.prepare`);
that time is printed apart. Target: the overhead over the bare loop at most 10%.

    .venv/bin/python bench/encode.py --cards 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support.pcsc

from common import scratch

from printstation.agent.station.printing.chip import ChipStation
from printstation.drivers.apdu_script import apdu_script
from printstation.drivers.encoder import ChipSection, ParkedCard
from printstation.drivers.encoders import open_encoder
from printstation.simulator.chip import Chip, uid_for
from printstation.simulator.driver import SimDriver
from printstation.simulator.vpcd import VpcdCard
from tests.support.pcsc import READER, Pcscd, missing


def script() -> bytes:
    commands = [{"apdu": "00A4000C027F10", "expect": ["9000"]},
                {"apdu": "00A4020C020102", "expect": ["9000"]}]
    for i in range(38):
        offset = i * 100
        apdu = bytes([0x00, 0xD6, offset >> 8, offset & 0xFF, 100]) + os.urandom(100)
        commands.append({"apdu": apdu.hex(), "expect": ["9000"]})
    return json.dumps({"commands": commands}).encode()


def bare(reader, steps) -> float:
    """The baseline: connect, read the UID, send each APDU and check its status word."""
    start = time.perf_counter()
    conn = reader.createConnection()
    conn.connect()
    conn.transmit([0xFF, 0xCA, 0x00, 0x00, 0x00])
    for step in steps:
        _, sw1, sw2 = conn.transmit(list(step.apdu))
        assert bytes((sw1, sw2)) in step.expect
    conn.disconnect()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=30)
    args = parser.parse_args()
    lack = missing()
    if lack:
        print(f"bench/encode.py: {lack}", file=sys.stderr)
        return 2
    daemon = Pcscd(scratch("printstation-bench-pcscd-"))
    os.environ["PCSCLITE_CSOCK_NAME"] = str(daemon.socket)
    slot = VpcdCard(port=daemon.port)
    try:
        daemon.wait_ready()
        from smartcard.System import readers

        slot.insert(Chip(uid_for("SIM-BENCH", 1)))
        data = script()
        steps = apdu_script(data)
        encoder = open_encoder(f"pcsc://?reader={READER.replace(' ', '%20')}&timeout=5")
        station = ChipStation(SimDriver.from_url("sim://?render=0", state_dir=scratch(
            "printstation-bench-sim-")), encoder)
        reader = next(r for r in readers() if str(r) == READER)
        station.encode("BENCH-0", ParkedCard(0), ChipSection("apdu-script/1", data))  # warm
        base, agent, ahead = [], [], []
        for n in range(args.cards):
            base.append(bare(reader, steps))
            start = time.perf_counter()
            chip = encoder.prepare(ChipSection("apdu-script/1", data))
            parked = time.perf_counter()
            result = station.encode(f"BENCH-{n}", ParkedCard(n), chip)
            agent.append(time.perf_counter() - parked)
            ahead.append(parked - start)
            assert result.ok, result
    finally:
        slot.close()
        daemon.stop()
    b, a = statistics.median(base), statistics.median(agent)
    print(f"encode per card, {len(steps)} APDUs, median of {args.cards}: "
          f"agent {a * 1000:.2f} ms, bare pyscard loop {b * 1000:.2f} ms "
          f"(baseline, same run): overhead {100 * (a - b) / b:+.1f}% (target <= 10%); "
          f"parsing the script ahead, on the card-preparation thread: "
          f"{statistics.median(ahead) * 1000:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
