"""Every Evolis command the driver sends, byte for byte, and how replies are cut from the wire.

As python-escpos tests its commands against a Dummy printer, the driver here runs over
`MemoryTransport`: it keeps every command written and answers each with a scripted reply,
so each test states the exact bytes of one command (the table in
drivers/evolis/PROTOCOL.md) and what the driver makes of the answer. No device, no sockets.
"""

from __future__ import annotations

import time
from collections import deque

import pytest
from PIL import Image

from printstation.drivers.base import CardJob, FaultCode, ParkedCard, PrinterError, SidePanels
from printstation.drivers.errors import ReplyTimeout, TransportError
from printstation.drivers.evolis.driver import EvolisDriver, EvolisOptions
from printstation.drivers.evolis.protocol import ReplyReader
from printstation.drivers.transport import Transport

#: A ready printer's answers, by command text (between ESC and CR); anything else is OK.
READY = {
    "Rtp": "Evolis Primacy",
    "Rsn": "EV-0042",
    "Rfv": "1.8.3",
    "Rse;o": "5,00 Volts",
    "Rse;f": "5,00 Volts",
    "Rrt;count": "180",
    "Rrt;qty": "200",
    "Rlr;h": "NO CARD",
    "Rlr;p": "OK",
    "Rco;c": "17",
}
#: Bytes of one colour panel at 32 levels (5 bits a dot) and of a K or O panel (1 bit a dot).
COLOUR_32 = 1016 * 648 * 5 // 8
MONO = 1016 * 648 // 8


class MemoryTransport(Transport):
    """A printer link in memory: keeps each command written, answers it from a script.

    `written` holds one entry per command or panel download, exactly as the driver wrote it.
    A reply is the scripted text plus NUL; `arrive()` puts raw bytes on the wire instead,
    each argument one read's worth.
    """

    description = "printer in memory"

    def __init__(self, script: dict[str, str] | None = None):
        self.script = {**READY, **(script or {})}
        self.written: list[bytes] = []
        self.incoming: deque[bytes] = deque()

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def arrive(self, *chunks: bytes) -> None:
        self.incoming.extend(chunks)

    def _write(self, data: bytes, timeout: float) -> None:
        frames = [data] if data.startswith(b"\x1bDb;") else [
            f + b"\r" for f in data.split(b"\r") if f]
        for frame in frames:
            self.written.append(frame)
            text = frame[1:].split(b";", 3)
            key = ";".join(p.decode() for p in text[:3]) if text[0] == b"Db" \
                else frame[1:-1].decode()
            self.arrive(self.script.get(key, "OK").encode() + b"\x00")

    def _read_some(self, timeout: float) -> bytes:
        if self.incoming:
            return self.incoming.popleft()
        time.sleep(timeout)
        return b""


def opened(script: dict[str, str] | None = None, **options):
    """(transport, driver) for a printer answering `script`, once the driver has opened."""
    transport = MemoryTransport(script)
    driver = EvolisDriver(transport, EvolisOptions(timeout=0.5, **options))
    driver.open()
    return transport, driver


def sent_by(transport: MemoryTransport, action) -> list[bytes]:
    """What the driver wrote while doing `action`."""
    before = len(transport.written)
    action()
    return transport.written[before:]


def status_poll(script: dict[str, str] | None = None):
    transport, driver = opened(script)
    result: list = []
    frames = sent_by(transport, lambda: result.append(driver.status()))
    return frames, result[0]


def white_card(two_sided: bool = False) -> CardJob:
    def side() -> SidePanels:
        return SidePanels(color=Image.new("RGB", (1016, 648), "white"),
                          black=Image.new("1", (1016, 648), 1), overlay=True)

    return CardJob(job_id="CMD-1", front=side(), back=side() if two_sided else None)


def printing(script: dict[str, str] | None = None, two_sided: bool = False, **options):
    """(frames written, the result or the PrinterError) of printing a white card."""
    transport, driver = opened(script, **options)
    outcome: list = []

    def go() -> None:
        try:
            outcome.append(driver.print_card(white_card(two_sided)))
        except PrinterError as exc:
            outcome.append(exc)

    return sent_by(transport, go), outcome[0]


# ------------------------------------------------------------------ opening: who is it


@pytest.mark.parametrize(("index", "command", "field", "value"), [
    (0, b"\x1bRtp\r", "model", "Evolis Primacy"),
    (1, b"\x1bRsn\r", "serial", "EV-0042"),
    (2, b"\x1bRfv\r", "firmware", "1.8.3"),
], ids=["Rtp", "Rsn", "Rfv"])
def test_an_identity_query_reads_its_field(index, command, field, value):
    transport, driver = opened()
    assert transport.written[index] == command
    assert getattr(driver.identity(), field) == value


def test_pem_2_hands_error_handling_to_the_host():
    transport, _ = opened()
    assert transport.written == [b"\x1bRtp\r", b"\x1bRsn\r", b"\x1bRfv\r", b"\x1bPem;2\r"]
    with pytest.raises(PrinterError) as info:
        opened({"Pem;2": "ERROR CDE"})
    assert info.value.fault is FaultCode.PROTOCOL


# ------------------------------------------------------------------ status: the sensors


@pytest.mark.parametrize(("index", "command", "script", "fault"), [
    (0, b"\x1bRse;o\r", {"Rse;o": "0,00 Volts"}, FaultCode.COVER_OPEN),  # cover sensor
    (1, b"\x1bRse;f\r", {"Rse;f": "0,00 Volts"}, FaultCode.FEEDER_EMPTY),  # feeder sensor
    (4, b"\x1bRlr;h\r", {"Rlr;h": "CARD"}, FaultCode.HOPPER_FULL),  # output hopper
    (5, b"\x1bRlr;p\r", {"Rlr;p": "CARD"}, FaultCode.JAM),  # a card held inside
], ids=["Rse;o", "Rse;f", "Rlr;h", "Rlr;p"])
def test_a_sensor_query_reports_its_fault(index, command, script, fault):
    frames, status = status_poll(script)
    assert frames[index] == command
    assert status.faults == (fault,)


def test_rrt_count_reads_the_prints_left_on_the_ribbon():
    frames, status = status_poll()
    assert frames[2] == b"\x1bRrt;count\r"
    assert status.consumables[0].remaining == 180
    _, empty = status_poll({"Rrt;count": "ERR RIB DETECTION"})
    assert empty.faults == (FaultCode.RIBBON_OUT,)


def test_rrt_qty_reads_the_ribbon_capacity():
    frames, status = status_poll()
    assert frames[3] == b"\x1bRrt;qty\r"
    assert status.consumables[0].capacity == 200


def test_rco_c_reads_the_card_counter():
    frames, status = status_poll()
    assert frames[6] == b"\x1bRco;c\r"
    assert len(frames) == 7
    assert (status.state, status.card_counter) == ("ready", 17)


# ------------------------------------------------------------------ printing one card


@pytest.mark.parametrize("ribbon", ["ymcko", "ymckok", "ymckk", "ko", "k"])
def test_pr_sets_the_ribbon_type(ribbon):
    frames, _ = printing(ribbon=ribbon)
    assert frames[0] == b"\x1bPr;" + ribbon.encode() + b"\r"


def test_ss_draws_a_blank():
    frames, result = printing()
    assert frames[1] == b"\x1bSs\r"
    assert result.counter == 17


def test_ss_refused_draws_nothing_and_sends_nothing_more():
    frames, error = printing({"Ss": "FEEDER EMPTY"})
    assert frames == [b"\x1bPr;ymcko\r", b"\x1bSs\r"]
    assert error.fault is FaultCode.FEEDER_EMPTY and error.card_drawn is False


def test_sr_announces_the_front():
    frames, _ = printing()
    assert frames[2] == b"\x1bSr\r"


def test_sv_announces_the_back():
    frames, _ = printing(two_sided=True)
    assert frames[8] == b"\x1bSv\r"
    assert frames.count(b"\x1bSv\r") == 1
    assert b"\x1bSv\r" not in printing()[0]


@pytest.mark.parametrize(("index", "header", "payload"), [
    (3, b"Db;y;32;", bytes(COLOUR_32)),  # white: no dye
    (4, b"Db;m;32;", bytes(COLOUR_32)),
    (5, b"Db;c;32;", bytes(COLOUR_32)),
    (6, b"Db;k;2;", bytes(MONO)),  # no resin black
    (7, b"Db;o;2;", b"\xff" * MONO),  # overlay over the whole card
], ids=["y", "m", "c", "k", "o"])
def test_db_downloads_each_panel(index, header, payload):
    frames, _ = printing()
    assert frames[index] == b"\x1b" + header + payload + b"\r"


@pytest.mark.parametrize(("levels", "size"), [(32, 411_480), (64, 493_776), (128, 576_072)])
def test_db_colour_panels_at_each_depth(levels, size):
    frames, _ = printing(levels=levels)
    assert frames[3] == b"\x1bDb;y;" + str(levels).encode() + b";" + bytes(size) + b"\r"


def test_se_prints_and_ejects():
    frames, result = printing()
    assert frames[8:] == [b"\x1bSe\r", b"\x1bRco;c\r"]
    assert result.counter == 17


def test_ser_rejects_a_blank_that_will_not_be_printed():
    frames, error = printing({"Se": "CARD JAM"})
    assert frames[-2:] == [b"\x1bSe\r", b"\x1bSer\r"]
    assert error.fault is FaultCode.JAM and error.card_drawn is True


def test_one_card_in_full():
    frames, _ = printing(two_sided=True)
    # Downloads by their header (ESC Db;panel;levels;), the rest whole.
    heads = [b";".join(f.split(b";", 3)[:3]) + b";" if f.startswith(b"\x1bDb;") else f
             for f in frames]
    side = [b"\x1bDb;y;32;", b"\x1bDb;m;32;", b"\x1bDb;c;32;", b"\x1bDb;k;2;", b"\x1bDb;o;2;"]
    assert heads == [b"\x1bPr;ymcko\r", b"\x1bSs\r", b"\x1bSr\r", *side, b"\x1bSv\r", *side,
                     b"\x1bSe\r", b"\x1bRco;c\r"]


# ------------------------------------------------------------------ the contactless station


def parking(script: dict[str, str] | None = None, **options):
    """(transport, driver, frames written, the ParkedCard or the PrinterError) of parking.
    The printer then holds the card (`Rlr;p` answers CARD), unless the script says not."""
    transport, driver = opened({"Rlr;p": "CARD", **(script or {})}, **options)
    outcome: list = []

    def go() -> None:
        try:
            outcome.append(driver.park_card(white_card()))
        except PrinterError as exc:
            outcome.append(exc)

    return transport, driver, sent_by(transport, go), outcome[0]


def test_the_evolis_driver_has_a_contactless_station():
    assert EvolisDriver.chip_station is True


def test_sic_parks_a_blank_at_the_contactless_station():
    _, _, frames, parked = parking()
    assert frames == [b"\x1bPr;ymcko\r", b"\x1bSic\r", b"\x1bRco;c\r"]
    # The printer cannot name the PC/SC reader (the encoder's URL does); the card counter
    # after parking is the card's number.
    assert parked == ParkedCard(card_no=17, reader=None)


def test_an_unreadable_card_counter_after_parking_is_card_0():
    _, _, frames, parked = parking({"Rco;c": "ERR UNKNOWN"})
    assert frames[-1] == b"\x1bRco;c\r"
    assert parked == ParkedCard(card_no=0, reader=None)


def test_sic_refused_draws_nothing_and_sends_nothing_more():
    _, _, frames, error = parking({"Sic": "FEEDER EMPTY"})
    assert frames == [b"\x1bPr;ymcko\r", b"\x1bSic\r"]
    assert isinstance(error, PrinterError)
    assert error.fault is FaultCode.FEEDER_EMPTY and error.card_drawn is False


def test_a_parked_card_is_printed_with_ss_and_no_second_pr():
    transport, driver, _, _ = parking()
    frames = sent_by(transport, lambda: driver.print_card(white_card()))
    heads = [b";".join(f.split(b";", 3)[:3]) + b";" if f.startswith(b"\x1bDb;") else f
             for f in frames]
    side = [b"\x1bDb;y;32;", b"\x1bDb;m;32;", b"\x1bDb;c;32;", b"\x1bDb;k;2;", b"\x1bDb;o;2;"]
    # The card is checked to be still there (a printer gives up on a card left too long).
    assert heads == [b"\x1bRlr;p\r", b"\x1bSs\r", b"\x1bSr\r", *side, b"\x1bSe\r",
                     b"\x1bRco;c\r"]
    # The next card is not parked: it is drawn from the feeder as ever.
    assert sent_by(transport, lambda: driver.print_card(white_card()))[:2] == [
        b"\x1bPr;ymcko\r", b"\x1bSs\r"]


def test_a_parked_card_the_printer_gave_up_on_is_spoiled_never_printed_on_a_new_blank():
    transport, driver, _, _ = parking()
    transport.script["Rlr;p"] = "OK"  # the printer rejected it after waiting too long
    with pytest.raises(PrinterError) as info:
        driver.print_card(white_card())
    assert transport.written[-1] == b"\x1bRlr;p\r"  # no Ss: it would draw a fresh blank
    assert info.value.card_drawn is True


def test_a_parked_card_refused_by_ss_is_spoiled_and_rejected():
    transport, driver, _, _ = parking({"Ss": "CARD JAM"})
    with pytest.raises(PrinterError) as info:
        driver.print_card(white_card())
    assert transport.written[-2:] == [b"\x1bSs\r", b"\x1bSer\r"]
    assert info.value.fault is FaultCode.JAM and info.value.card_drawn is True


def test_ser_rejects_a_parked_card():
    transport, driver, _, _ = parking()
    assert sent_by(transport, lambda: driver.reject_card(white_card())) == [b"\x1bSer\r"]
    # Nothing is parked any more: the next card is drawn from the feeder.
    assert sent_by(transport, lambda: driver.print_card(white_card()))[:2] == [
        b"\x1bPr;ymcko\r", b"\x1bSs\r"]


def test_ser_not_confirmed_is_an_error():
    transport, driver, _, _ = parking({"Ser": "CARD JAM"})
    with pytest.raises(PrinterError) as info:
        driver.reject_card(white_card())
    assert info.value.fault is FaultCode.JAM
    assert transport.written[-1] == b"\x1bSer\r"


def test_a_parked_card_is_not_a_jam():
    _, driver, _, _ = parking({"Rlr;p": "CARD"})
    assert driver.status().faults == ()
    driver.reject_card(white_card())
    assert driver.status().faults == (FaultCode.JAM,)  # a card inside, and none parked


def test_poc_sets_the_contactless_offset_once_at_open():
    transport, _ = opened(chip_offset=120)
    assert transport.written == [b"\x1bRtp\r", b"\x1bRsn\r", b"\x1bRfv\r", b"\x1bPem;2\r",
                                 b"\x1bPoc;=;120\r"]
    assert b"\x1bPoc;=;120\r" not in parking(chip_offset=120)[2]
    with pytest.raises(PrinterError) as info:
        opened({"Poc;=;120": "ERROR PARAMETRES"}, chip_offset=120)
    assert info.value.fault is FaultCode.PROTOCOL


@pytest.mark.parametrize("value", ["abc", "-3", "1.5", ""])
def test_a_bad_chip_offset_is_one_line(tmp_path, value):
    with pytest.raises(ValueError) as info:
        EvolisDriver.from_url(f"evolis+tcp://127.0.0.1:9100?chip_offset={value}",
                              state_dir=tmp_path)
    assert str(info.value) == ("evolis printer URL: chip_offset must be a whole number, 0 or "
                               "more (where the card stops at the contactless station), not "
                               f"{value!r}")


def test_chip_offset_from_the_url(tmp_path):
    driver = EvolisDriver.from_url("evolis+tcp://127.0.0.1:9100?chip_offset=0", state_dir=tmp_path)
    assert driver.options.chip_offset == 0
    plain = EvolisDriver.from_url("evolis+tcp://127.0.0.1:9100", state_dir=tmp_path)
    assert plain.options.chip_offset is None


# ------------------------------------------------------------------ cutting replies


def reader(*chunks: bytes) -> tuple[MemoryTransport, ReplyReader]:
    transport = MemoryTransport()
    transport.arrive(*chunks)
    return transport, ReplyReader(transport)


@pytest.mark.parametrize("end", [b"\x00", b"\r", b"\n"], ids=["NUL", "CR", "LF"])
def test_a_reply_ends_at_nul_cr_or_lf(end):
    _, replies = reader(b"5,00 Volts" + end)
    assert replies.read(1) == b"5,00 Volts"


def test_a_reply_split_across_reads_is_joined():
    _, replies = reader(b"EV-", b"00", b"42\x00")
    assert replies.read(1) == b"EV-0042"


def test_two_replies_in_one_read_are_two_replies():
    transport, replies = reader(b"OK\x00EV-0042\x00")
    assert replies.read(1) == b"OK"
    assert replies.read(1) == b"EV-0042"
    assert not transport.incoming


def test_ends_between_replies_are_skipped():
    _, replies = reader(b"\r\nOK\x00\r\n", b"\x00CARD\r")
    assert replies.read(1) == b"OK"
    assert replies.read(1) == b"CARD"


def test_no_reply_in_time_is_a_reply_timeout():
    _, replies = reader()
    started = time.monotonic()
    with pytest.raises(ReplyTimeout, match=r"no complete reply within 0\.3 s"):
        replies.read(0.3)
    assert 0.25 < time.monotonic() - started < 1.0


def test_half_a_reply_times_out_and_is_dropped():
    transport, replies = reader(b"CARD J")
    with pytest.raises(ReplyTimeout, match=r"got 6 bytes of it"):
        replies.read(0.2)
    transport.arrive(b"OK\x00")
    assert replies.read(1) == b"OK"


def test_bytes_without_an_end_are_unreadable_not_a_timeout():
    _, replies = reader(b"x" * 5000)
    with pytest.raises(TransportError, match="5000 bytes without an end of reply") as info:
        replies.read(1)
    assert not isinstance(info.value, ReplyTimeout)


def test_discard_drops_what_is_kept_and_what_is_waiting():
    transport, replies = reader(b"OK\x00STALE\x00", b"LATE\x00")
    assert replies.read(1) == b"OK"
    replies.discard()
    assert not transport.incoming
    transport.arrive(b"FRESH\x00")
    assert replies.read(1) == b"FRESH"


def test_a_lost_link_is_not_a_timeout():
    class Gone(MemoryTransport):
        def _read_some(self, timeout: float) -> bytes:
            raise TransportError("printer in memory closed the connection")

    with pytest.raises(TransportError, match="closed the connection") as info:
        ReplyReader(Gone()).read(1)
    assert not isinstance(info.value, ReplyTimeout)
