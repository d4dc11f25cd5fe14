"""Chip encoders: found by the `encoder_url` scheme, the apdu-script/1 profile, pcsc:// offline.

What needs a reader (pcsc:// on a card) is tested with pcscd and the simulator's chip; here
is what needs none.
"""

from __future__ import annotations

import re
import sys
import tomllib

import pytest

from printstation.agent import contract
from printstation.agent.config import ConfigError, load_settings
from printstation.drivers import apdu_script as apdu
from printstation.drivers import encoders
from printstation.drivers.apdu_script import ChipSilent, read_uid, run_script
from printstation.drivers.encoder import ChipSection, Encoder, EncodeResult, ParkedCard
from printstation.drivers.errors import EncoderError, EncoderNotFound, PrintstationError
from printstation.drivers.pcsc_encoder import PcscEncoder
from tests.support import PLUGINS
from tests.unit.test_drivers import _literal_blocks

SCRIPT = (b'{"commands": ['
          b'{"apdu": "00A4040007A0000002471001", "expect": ["9000", "6283"]},'
          b'{"apdu": "00d6000004DEADBEEF", "expect": ["9000"]}]}')
STEPS = [
    apdu.ApduStep(bytes([0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x02, 0x47, 0x10, 0x01]),
                  (b"\x90\x00", b"\x62\x83")),
    apdu.ApduStep(bytes([0x00, 0xD6, 0x00, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF]), (b"\x90\x00",)),
]


@pytest.fixture
def plugins(monkeypatch):
    """The test plug-ins' folder on the path, as if their package were installed."""
    monkeypatch.syspath_prepend(str(PLUGINS))


# ----------------------------------------------------------------- finding an encoder


def test_an_encoder_from_another_package_is_found_by_its_scheme(plugins):
    import printstation_testencoder as plugin

    assert encoders.available()["testchip"] == "printstation_testencoder:TestChipEncoder"
    encoder = encoders.open_encoder("testchip://desk-3")
    assert type(encoder) is plugin.TestChipEncoder and isinstance(encoder, Encoder)
    assert encoder.supports("test-blob/1") and not encoder.supports("apdu-script/1")
    done = encoder.encode(ParkedCard(card_no=7), ChipSection("test-blob/1", b"\x01\x02"))
    assert done == EncodeResult(uid="04000000000007") and done.ok
    assert plugin.WRITTEN["desk-3"] == {"04000000000007": b"\x01\x02"}
    spoiled = encoder.encode(ParkedCard(card_no=8), ChipSection("test-blob/1", b""))
    assert (spoiled.ok, spoiled.fault, spoiled.uid) == (False, "encode_failed", "04000000000008")


def test_an_unknown_scheme_names_the_installed_encoders(plugins):
    with pytest.raises(EncoderNotFound) as info:
        encoders.open_encoder("nfc://?reader=x")
    assert str(info.value) == ("no chip encoder for scheme 'nfc'; installed: notanencoder, "
                               "pcsc, sim, testchip")
    assert info.value.code == "encoder_not_found"
    assert isinstance(info.value, PrintstationError) and isinstance(info.value, LookupError)
    with pytest.raises(EncoderNotFound, match="has no scheme"):
        encoders.open_encoder("Virtual PCD 00 00")
    with pytest.raises(EncoderNotFound,
                       match="notanencoder = printstation_testencoder:NOT_AN_ENCODER is not"):
        encoders.open_encoder("notanencoder://")


def test_printstation_installs_the_pcsc_encoder_and_the_simulators_own():
    from printstation.simulator.encoder import SimChipEncoder

    assert encoders.available() == {"pcsc": "printstation.drivers.pcsc_encoder:PcscEncoder",
                                    "sim": "printstation.simulator.encoder:SimChipEncoder"}
    assert encoders.encoder_class("pcsc://") is PcscEncoder
    assert encoders.encoder_class("sim://") is SimChipEncoder
    assert PcscEncoder.profiles == SimChipEncoder.profiles == ("apdu-script/1",)
    with pytest.raises(ValueError, match="plain sim://"):
        encoders.open_encoder("sim://?reader=x")


def test_the_encoder_in_the_interface_docstring_works_as_written():
    from printstation.drivers import encoder as interface

    code, entry_point = _literal_blocks(interface.__doc__ or "")
    namespace: dict = {}
    exec(compile(code, "drivers/encoder.py docstring", "exec"), namespace)
    cls = namespace["DictEncoder"]
    assert issubclass(cls, Encoder)
    registered = tomllib.loads(entry_point)["project"]["entry-points"]["printstation.encoders"]
    assert registered == {"dict": "dictencoder:DictEncoder"}
    encoder = cls.from_url("dict://")
    assert encoder.encode(ParkedCard(10), ChipSection("blob/1", b"x")).uid == "0000000A"
    assert encoder.written == {"0000000A": b"x"}
    assert encoder.encode(ParkedCard(11), ChipSection("blob/1", b"")).fault == "encode_failed"


# --------------------------------------------------------------------------- settings


def test_encoder_url_is_unset_by_default_and_read_from_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("PRINTSTATION_ENCODER_URL", raising=False)
    path = tmp_path / "printstation.toml"
    path.write_text("")
    assert load_settings(path).encoder_url is None
    path.write_text('encoder_url = "pcsc://?reader=Virtual%20PCD%2000%2000"\n')
    assert load_settings(path).encoder_url == "pcsc://?reader=Virtual%20PCD%2000%2000"
    path.write_text('encoder_url = "pcsc"\n')
    with pytest.raises(ConfigError, match="config key encoder_url: must be a URL such as pcsc://"):
        load_settings(path)


# ---------------------------------------------------------------- the apdu-script/1 profile


def test_an_apdu_script_parses_to_its_exact_bytes_in_order():
    assert apdu.apdu_script(SCRIPT) == STEPS
    assert contract.apdu_script is apdu.apdu_script  # the contract's intake check is this one
    assert "DEADBEEF" not in repr(STEPS).upper()  # a step's repr leaves its command out


def test_the_chip_section_and_its_result_keep_chip_data_out_of_their_repr():
    assert "SECRET" not in repr(ChipSection("apdu-script/1", b"SECRET-DATA"))
    assert repr(ParkedCard(card_no=3, reader="R")) == "ParkedCard(card_no=3, reader='R')"


# -------------------------------------------------------------------- pcsc:// offline


class ScriptedChip:
    """A chip that answers each command with the next status word given (b"" = silent)."""

    def __init__(self, uid: bytes, *answers: bytes):
        self.uid, self.answers, self.sent = uid, list(answers), []

    def transmit(self, command: bytes) -> tuple[bytes, bytes]:
        self.sent.append(command)
        if command == bytes.fromhex("FFCA000000"):
            return (self.uid, b"\x90\x00") if self.uid else (b"", b"\x6a\x81")
        answer = self.answers.pop(0)
        if not answer:
            raise ChipSilent
        return b"", answer


def test_the_script_runs_in_order_and_names_the_failing_step_by_index_only():
    chip = ScriptedChip(bytes.fromhex("04a1b2c3d4e5f6"), b"\x62\x83", b"\x90\x00")
    assert read_uid(chip.transmit) == "04a1b2c3d4e5f6"
    assert run_script(STEPS, chip.transmit) is None
    assert chip.sent == [bytes.fromhex("FFCA000000"), STEPS[0].apdu, STEPS[1].apdu]
    wrong = ScriptedChip(b"\x01", b"\x90\x00", b"\x6a\x82")
    assert run_script(STEPS, wrong.transmit) == "command 1 answered 6A82, expected 9000"
    silent = ScriptedChip(b"", b"")
    assert read_uid(silent.transmit) is None
    assert run_script(STEPS, silent.transmit) == "the chip stopped answering at command 0"


def test_pcsc_url_names_the_reader_and_refuses_what_it_cannot_read():
    encoder = PcscEncoder.from_url("pcsc://?reader=Virtual%20PCD%2000%2000&timeout=2.5")
    assert (encoder.reader, encoder.timeout) == ("Virtual PCD 00 00", 2.5)
    assert (PcscEncoder.from_url("pcsc://").reader, PcscEncoder.from_url("pcsc://").timeout) \
        == (None, 5.0)
    for url, needle in [("pcsc://Virtual PCD", "use pcsc://?reader=NAME"),
                        ("pcsc://?raeder=x", "unknown parameter 'raeder'; known: reader, timeout"),
                        ("pcsc://?timeout=soon", "timeout must be 0 to 600 seconds"),
                        ("pcsc://?timeout=0", "timeout must be 0 to 600 seconds")]:
        with pytest.raises(ValueError, match=re.escape(needle)):
            PcscEncoder.from_url(url)


def test_without_pyscard_encoding_says_in_one_line_how_to_install_it(monkeypatch):
    for name in [m for m in sys.modules if m == "smartcard" or m.startswith("smartcard.")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "smartcard", None)
    with pytest.raises(EncoderError) as info:
        PcscEncoder("R").encode(ParkedCard(1), ChipSection("apdu-script/1", SCRIPT))
    assert info.value.code == "library_missing"
    assert str(info.value) == ("a library the chip encoder needs is not installed: install "
                               "pyscard (Debian: apt install python3-pyscard pcscd; or pip "
                               "install pyscard)")
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_job_pcsc_cannot_run_is_refused_before_any_card_and_without_its_data(monkeypatch):
    monkeypatch.setitem(sys.modules, "smartcard", None)  # never reached
    with pytest.raises(EncoderError) as info:
        PcscEncoder("R").encode(ParkedCard(1), ChipSection("test-blob/1", b"x"))
    assert info.value.code == "no_encoder"
    assert str(info.value) == ("no chip encoder here takes this profile: 'test-blob/1'; "
                               "pcsc takes apdu-script/1")
    bad = b'{"commands": [{"apdu": "DEADBEEF31711234ZZ", "expect": ["9000"]}]}'
    with pytest.raises(EncoderError) as info:
        PcscEncoder("R").encode(ParkedCard(1), ChipSection("apdu-script/1", bad))
    assert info.value.code == "bad_chip_data" and "DEADBEEF" not in str(info.value)
    assert str(info.value).endswith("chip command 0: apdu must be hex, at least 4 bytes")


def test_an_encoder_error_is_built_from_its_code():
    err = EncoderError("no_reader", "'Virtual PCD 00 01'; connected: none")
    assert str(err) == "the chip reader is not connected: 'Virtual PCD 00 01'; connected: none"
    assert err.code == "no_reader" and isinstance(err, PrintstationError)
    assert str(EncoderError("pcsc_unavailable")) == "the PC/SC service (pcscd) cannot be reached"
