"""The simulated chip through the real stack: vpcd's card side, pcscd, pyscard.

Each test presents a chip to `Virtual PCD 00 00` of the tests' own pcscd and talks to it as
the station's encoder will. pcscd sees a card after up to 400 ms (its presence poll), so
connecting waits on that with a deadline.
"""

from __future__ import annotations

import os
import time

import pytest

from printstation.simulator.chip import Chip, ChipFault, digest_of_writes, uid_for
from printstation.simulator.vpcd import VpcdCard
from tests.support import wait_for
from tests.support.pcsc import READER

try:
    from smartcard.Exceptions import CardConnectionException, NoCardException
    from smartcard.System import readers
except ImportError:   # the `pcscd` fixture fails every test here saying how to install it
    CardConnectionException = NoCardException = Exception

GET_UID = [0xFF, 0xCA, 0x00, 0x00, 0x00]
SELECT_DF = [0x00, 0xA4, 0x00, 0x0C, 0x02, 0x7F, 0x10]


def select_ef(fid: int) -> list[int]:
    return [0x00, 0xA4, 0x02, 0x0C, 0x02, fid >> 8, fid & 0xFF]


def reader():
    return next(r for r in readers() if str(r) == READER)


def connect(expect_uid: bytes, timeout: float = 5):
    """A connection to the card at the reader once it is the one with `expect_uid` (after a
    removal pcscd may report the old card for up to 400 ms)."""
    def attempt():
        connection = reader().createConnection()
        try:
            connection.connect()
            data, sw1, sw2 = connection.transmit(GET_UID)
        except (NoCardException, CardConnectionException):
            return None
        if (sw1, sw2) == (0x90, 0x00) and bytes(data) == expect_uid:
            return connection
        connection.disconnect()
        return None

    return wait_for(attempt, timeout, f"the card {expect_uid.hex()} at {READER}")


def test_write_a_file_and_read_it_back(card_slot: VpcdCard) -> None:
    chip = Chip(uid_for("SIM-0001", 1))
    card_slot.insert(chip)
    card = connect(chip.uid)
    assert card.transmit(GET_UID) == (list(chip.uid), 0x90, 0x00)
    assert card.transmit(SELECT_DF)[1:] == (0x90, 0x00)
    assert card.transmit(select_ef(0x0102))[1:] == (0x90, 0x00)
    photo = os.urandom(1000)
    writes = []
    for offset in range(0, len(photo), 200):
        chunk = photo[offset:offset + 200]
        apdu = [0x00, 0xD6, offset >> 8, offset & 0xFF, len(chunk), *chunk]
        assert card.transmit(apdu)[1:] == (0x90, 0x00)
        writes.append((0x0102, offset, chunk))
    read = b""
    while len(read) < len(photo):
        offset, size = len(read), min(200, len(photo) - len(read))
        data, sw1, sw2 = card.transmit([0x00, 0xB0, offset >> 8, offset & 0xFF, size])
        assert (sw1, sw2) == (0x90, 0x00)
        read += bytes(data)
    assert read == photo
    assert chip.digest() == digest_of_writes(writes)
    card.disconnect()


def test_bounds_give_status_words_through_pcscd(card_slot: VpcdCard) -> None:
    chip = Chip(uid_for("SIM-0001", 2))
    card_slot.insert(chip)
    card = connect(chip.uid)
    assert card.transmit(select_ef(0x0101))[1:] == (0x6A, 0x82)
    card.transmit(SELECT_DF)
    card.transmit(select_ef(0x0101))
    assert card.transmit([0x00, 0xB0, 0x04, 0x00, 0x01]) == ([], 0x6B, 0x00)
    assert card.transmit([0x00, 0xE0, 0x00, 0x00, 0x00]) == ([], 0x6D, 0x00)


def test_a_new_card_replaces_the_one_at_the_reader(card_slot: VpcdCard) -> None:
    first, second = Chip(uid_for("SIM-0001", 3)), Chip(uid_for("SIM-0001", 4))
    card_slot.insert(first)
    connect(first.uid).disconnect()
    card_slot.insert(second)
    card = connect(second.uid)
    assert card.transmit(GET_UID)[0] == list(second.uid)


def test_removed_card_is_gone(card_slot: VpcdCard) -> None:
    chip = Chip(uid_for("SIM-0001", 5))
    card_slot.insert(chip)
    connect(chip.uid).disconnect()
    card_slot.remove()

    def gone() -> bool:
        try:
            reader().createConnection().connect()
        except NoCardException:
            return True
        except CardConnectionException:   # still reported present for up to 400 ms
            return False
        return False

    wait_for(gone, 5, "pcscd to see the card removed")


def test_dead_chip_gives_its_uid_and_6f00(card_slot: VpcdCard) -> None:
    chip = Chip(uid_for("SIM-0001", 6), fault=ChipFault.DEAD)
    card_slot.insert(chip)
    card = connect(chip.uid)
    assert card.transmit(SELECT_DF) == ([], 0x6F, 0x00)


def test_mute_chip_is_an_error_pyscard_reports(card_slot: VpcdCard) -> None:
    chip = Chip(uid_for("SIM-0001", 7), fault=ChipFault.MUTE)
    card_slot.insert(chip)
    card = connect(chip.uid)
    with pytest.raises(CardConnectionException, match="no valid response"):
        card.transmit(SELECT_DF)


def test_wrong_chip_flips_the_status_word(card_slot: VpcdCard) -> None:
    chip = Chip(uid_for("SIM-0001", 8), fault=ChipFault.WRONG)
    card_slot.insert(chip)
    card = connect(chip.uid)
    assert card.transmit(SELECT_DF) == ([], 0x6A, 0x80)


def test_card_without_chip_is_no_card(card_slot: VpcdCard) -> None:
    present = Chip(uid_for("SIM-0001", 9))
    card_slot.insert(present)
    connect(present.uid).disconnect()
    card_slot.insert(Chip(uid_for("SIM-0001", 10), fault=ChipFault.ABSENT))
    wait_for(lambda: card_slot.connected is None, 5, "the card side to leave vpcd")

    def no_card() -> bool:
        try:
            reader().createConnection().connect()
        except NoCardException:
            return True
        except CardConnectionException:
            return False
        return False

    wait_for(no_card, 5, "pcscd to report no card")
    assert card_slot.connected is None


def test_slow_chip_takes_its_delay_per_apdu(card_slot: VpcdCard) -> None:
    chip = Chip(uid_for("SIM-0001", 11), fault=ChipFault.SLOW, delay=0.2)
    card_slot.insert(chip)
    card = connect(chip.uid)
    started = time.monotonic()
    assert card.transmit(SELECT_DF)[1:] == (0x90, 0x00)
    assert time.monotonic() - started >= 0.2


def test_an_apdu_takes_well_under_the_delayed_ack(card_slot: VpcdCard) -> None:
    """Without TCP_QUICKACK after each receive every APDU waits ~40-50 ms for the ACK."""
    chip = Chip(uid_for("SIM-0001", 12))
    card_slot.insert(chip)
    card = connect(chip.uid)
    started = time.monotonic()
    for _ in range(40):
        card.transmit(SELECT_DF)
    per_apdu = (time.monotonic() - started) / 40
    assert per_apdu < 0.01, f"{per_apdu * 1000:.1f} ms per APDU"
