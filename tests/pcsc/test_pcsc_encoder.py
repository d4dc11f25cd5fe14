"""The built-in `pcsc://` encoder against the real stack: the simulated chip presented by
vpcd's card side to the tests' own pcscd, reached through pyscard as a station would.

An `apdu-script/1` writes a photo-sized file in chunks; the chip's digest of what was
written must equal the script's, the UID read must be the chip's, and a dead, wrong or
absent chip must come back as `encode_failed` (with its UID where one was read), never as
an exception and never with chip data in the detail.
"""

from __future__ import annotations

import base64
import json
import os

from printstation.drivers.encoder import ChipSection, ParkedCard
from printstation.drivers.encoders import open_encoder
from printstation.simulator.chip import Chip, ChipFault, digest_of_writes, uid_for
from printstation.simulator.vpcd import VpcdCard
from tests.support.pcsc import READER

SELECT_DF = "00A4000C027F10"


def photo_script(photo: bytes, chunk: int = 200) -> tuple[bytes, list]:
    """An `apdu-script/1` that selects EF 0102 and writes `photo` into it, and the writes."""
    commands = [{"apdu": SELECT_DF, "expect": ["9000"]},
                {"apdu": "00A4020C020102", "expect": ["9000"]}]
    writes = []
    for offset in range(0, len(photo), chunk):
        part = photo[offset:offset + chunk]
        apdu = bytes([0x00, 0xD6, offset >> 8, offset & 0xFF, len(part)]) + part
        commands.append({"apdu": apdu.hex().upper(), "expect": ["9000"]})
        writes.append((0x0102, offset, part))
    return json.dumps({"commands": commands}).encode(), writes


def encoder():
    return open_encoder(f"pcsc://?reader={READER.replace(' ', '%20')}&timeout=5")


def test_the_pcsc_encoder_writes_the_script_to_the_chip_and_reads_its_uid(
        card_slot: VpcdCard) -> None:
    photo = os.urandom(3000)
    data, writes = photo_script(photo)
    chip = Chip(uid_for("SIM-0001", 11))
    card_slot.insert(chip)
    result = encoder().encode(ParkedCard(card_no=11), ChipSection("apdu-script/1", data))
    assert (result.ok, result.uid) == (True, chip.uid.hex()), result
    assert chip.digest() == digest_of_writes(writes)


def test_a_dead_chip_is_encode_failed_with_its_uid_and_no_chip_data(
        card_slot: VpcdCard) -> None:
    data, _ = photo_script(b"\x42" * 400)
    chip = Chip(uid_for("SIM-0001", 12), fault=ChipFault.DEAD)
    card_slot.insert(chip)
    result = encoder().encode(ParkedCard(card_no=12), ChipSection("apdu-script/1", data))
    assert (result.ok, result.fault) == (False, "encode_failed"), result
    assert result.uid == chip.uid.hex()
    assert "42" * 4 not in (result.detail or "") and "D6" not in (result.detail or "")


def test_a_card_without_a_chip_is_encode_failed_after_the_timeout(
        card_slot: VpcdCard) -> None:
    data, _ = photo_script(b"\x00" * 10)
    card_slot.insert(Chip(uid_for("SIM-0001", 13), fault=ChipFault.ABSENT))
    result = open_encoder(f"pcsc://?reader={READER.replace(' ', '%20')}&timeout=1").encode(
        ParkedCard(card_no=13), ChipSection("apdu-script/1", base64.b64decode(
            base64.b64encode(data))))
    assert (result.ok, result.fault, result.uid) == (False, "encode_failed", None), result
