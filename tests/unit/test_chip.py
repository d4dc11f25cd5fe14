"""The simulated chip, one APDU at a time: each command and the exact bytes it answers.

As python-escpos tests its commands against a Dummy printer, these send an APDU to the chip
object and assert the response APDU byte for byte; tests/pcsc/ sends the same through pcscd.
"""

from __future__ import annotations

import pytest

from printstation.simulator.chip import (
    ATR,
    EF_SIZES,
    Chip,
    ChipFault,
    blank_files,
    contents_digest,
    digest_of_writes,
    uid_for,
)

UID = bytes.fromhex("04A1B2C3D4E5F6")


def apdu(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def at_ef(fid: str = "0101", **kw) -> Chip:
    chip = Chip(UID, **kw)
    assert chip.respond(apdu("00 A4 00 0C 02 7F10")) == apdu("9000")
    assert chip.respond(apdu(f"00 A4 02 0C 02 {fid}")) == apdu("9000")
    return chip


def test_get_data_answers_the_uid() -> None:
    assert Chip(UID).respond(apdu("FF CA 00 00 00")) == UID + apdu("9000")


def test_get_data_with_too_short_le_says_the_length() -> None:
    assert Chip(UID).respond(apdu("FF CA 00 00 04")) == apdu("6C07")


def test_get_data_of_the_ats_is_not_supported() -> None:
    assert Chip(UID).respond(apdu("FF CA 01 00 00")) == apdu("6A81")


def test_unknown_reader_instruction() -> None:
    assert Chip(UID).respond(apdu("FF 00 00 00 00")) == apdu("6D00")


def test_unknown_class_and_instruction() -> None:
    chip = Chip(UID)
    assert chip.respond(apdu("80 B0 00 00 10")) == apdu("6E00")
    assert chip.respond(apdu("00 E0 00 00 00")) == apdu("6D00")


def test_too_short_apdu() -> None:
    assert Chip(UID).respond(apdu("00 A4 00")) == apdu("6700")


def test_select_df_with_fcp() -> None:
    answer = Chip(UID).respond(apdu("00 A4 00 00 02 7F10 00"))
    assert answer == apdu("62 08 8002 0000 8302 7F10 9000")


def test_select_ef_with_fcp_gives_its_size() -> None:
    chip = at_ef()
    assert chip.respond(apdu("00 A4 02 00 02 0102")) == apdu("62 08 8002 1000 8302 0102 9000")


def test_select_missing_file() -> None:
    chip = Chip(UID)
    assert chip.respond(apdu("00 A4 00 0C 02 0101")) == apdu("6A82")   # EF before its DF
    assert chip.respond(apdu("00 A4 00 0C 02 7F10")) == apdu("9000")
    assert chip.respond(apdu("00 A4 02 0C 02 0999")) == apdu("6A82")


def test_select_wrong_lc_and_parameters() -> None:
    chip = Chip(UID)
    assert chip.respond(apdu("00 A4 00 0C 03 7F10")) == apdu("6700")
    assert chip.respond(apdu("00 A4 00 0C 02 7F")) == apdu("6700")
    assert chip.respond(apdu("00 A4 04 0C 02 7F10")) == apdu("6B00")


def test_read_without_selected_ef() -> None:
    assert Chip(UID).respond(apdu("00 B0 00 00 04")) == apdu("6986")


def test_blank_chip_reads_zeros() -> None:
    assert at_ef().respond(apdu("00 B0 00 00 04")) == apdu("00000000 9000")


def test_update_then_read_back() -> None:
    chip = at_ef()
    assert chip.respond(apdu("00 D6 00 10 03 414243")) == apdu("9000")
    assert chip.respond(apdu("00 B0 00 0F 05")) == apdu("00 414243 00 9000")


def test_read_past_the_end_of_file() -> None:
    chip = at_ef()   # 1024 bytes
    assert chip.respond(apdu("00 B0 03 FE 04")) == apdu("0000 6282")
    assert chip.respond(apdu("00 B0 04 00 01")) == apdu("6B00")


def test_read_le_00_means_256() -> None:
    answer = at_ef().respond(apdu("00 B0 00 00 00"))
    assert answer == bytes(256) + apdu("9000")


def test_update_out_of_bounds() -> None:
    chip = at_ef()
    assert chip.respond(apdu("00 D6 04 00 01 AA")) == apdu("6B00")
    assert chip.respond(apdu("00 D6 03 FF 02 AAAA")) == apdu("6A84")
    assert chip.respond(apdu("00 D6 00 00 03 AAAA")) == apdu("6700")
    assert chip.digest() == contents_digest(blank_files())


def test_short_ef_ids_and_extended_length_are_refused() -> None:
    chip = at_ef()
    assert chip.respond(apdu("00 B0 81 00 04")) == apdu("6A81")
    assert chip.respond(apdu("00 D6 00 00 00 0001 AA")) == apdu("6700")


def test_power_forgets_the_selection() -> None:
    chip = at_ef()
    chip.power()
    assert chip.respond(apdu("00 B0 00 00 01")) == apdu("6986")


def test_digest_is_what_was_written() -> None:
    chip = at_ef("0102")
    chip.respond(apdu("00 D6 00 00 02 CAFE"))
    chip.respond(apdu("00 D6 0F FE 02 BEEF"))
    assert chip.digest() == digest_of_writes([(0x0102, 0, b"\xca\xfe"),
                                              (0x0102, 0xFFE, b"\xbe\xef")])
    assert chip.digest() != digest_of_writes([(0x0101, 0, b"\xca\xfe"),
                                              (0x0102, 0xFFE, b"\xbe\xef")])


def test_dead_chip_gives_its_uid_and_6f00() -> None:
    chip = Chip(UID, fault=ChipFault.DEAD)
    assert chip.respond(apdu("FF CA 00 00 00")) == UID + apdu("9000")
    assert chip.respond(apdu("00 A4 00 0C 02 7F10")) == apdu("6F00")


def test_mute_chip_gives_its_uid_and_no_answer() -> None:
    chip = Chip(UID, fault=ChipFault.MUTE)
    assert chip.respond(apdu("FF CA 00 00 00")) == UID + apdu("9000")
    assert chip.respond(apdu("00 A4 00 0C 02 7F10")) is None


def test_wrong_chip_flips_status_words() -> None:
    chip = Chip(UID, fault=ChipFault.WRONG)
    assert chip.respond(apdu("00 A4 00 0C 02 7F10")) == apdu("6A80")
    assert chip.respond(apdu("00 A4 02 0C 02 0999")) == apdu("9000")


def test_absent_chip_is_not_present_and_slow_has_a_delay() -> None:
    assert not Chip(UID, fault=ChipFault.ABSENT).present
    assert Chip(UID, fault=ChipFault.SLOW, delay=0.25).delay == 0.25
    assert Chip(UID, delay=0.25).delay == 0.0


def test_uids_are_per_blank_and_stable() -> None:
    assert uid_for("SIM-0001", 1) == uid_for("SIM-0001", 1)
    assert len({uid_for("SIM-0001", n) for n in range(100)}) == 100
    assert uid_for("SIM-0001", 1)[0] == 0x04 and len(uid_for("SIM-0002", 1)) == 7


def test_atr_and_layout() -> None:
    assert apdu("3B 80 80 01 01") == ATR
    assert sum(EF_SIZES.values()) == 8192
    with pytest.raises(ValueError, match="7 bytes"):
        Chip(b"\x04\x01")
