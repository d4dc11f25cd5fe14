"""The Evolis escape-command language: framing, replies, USB ids and panel bitmaps.

Commands are `ESC name;p1;...;pn CR`; panel downloads are `ESC Db;<panel>;<levels>;` then
the raw bitmap, then CR; replies are ASCII text ended by NUL. Every source for each detail
is cited in PROTOCOL.md beside this file; what is inferred rather than documented is marked
there. This module is the one place those facts are written: the driver speaks with it and
the simulated device (`printstation.simulator.evolis_device`) answers with it, so they share
one reading of the documents.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..base import FaultCode
from ..errors import ReplyTimeout, TransportError

if TYPE_CHECKING:
    from ..transport import Transport

ESC = b"\x1b"
CR = b"\r"
LF = b"\n"
NUL = b"\x00"
#: Between a command's name and its parameters, and between parameters.
SEP = ";"
#: Bytes a printer skips between commands: NUL padding and stray line ends.
BETWEEN_COMMANDS = NUL + CR + LF

#: USB vendor id of Evolis (usb.ids).
USB_VENDOR = 0x0F49
#: The simulated USB printer's product id: no Evolis product uses it, so the simulator can
#: never be mistaken for hardware.
SIM_USB_PRODUCT = 0xFFFF

#: Ribbon types `Pr` takes (PROTOCOL.md, "Commands used").
RIBBONS = ("ymcko", "ymckok", "ymckk", "ko", "k")
#: Panels a download (`Db`) may name.
PANELS = ("y", "m", "c", "k", "o")
DOWNLOAD = "Db"

#: Panel geometry on the wire: 1016 rows of 648 dots (81 bytes at 1 bit), card rotated 270°.
ROWS, DOTS = 1016, 648
CARD_SIZE = (1016, 648)  # landscape, as jobs are drawn

#: Colour depth of Y, M, C downloads: levels → bits per dot.
LEVEL_BITS = {32: 5, 64: 6, 128: 7}


def panel_bytes(levels: int) -> int:
    """Bytes of one full-panel download at `levels` (2 for K and O)."""
    bits = 1 if levels == 2 else LEVEL_BITS[levels]
    return ROWS * DOTS * bits // 8


def command(name: str, *params: object) -> bytes:
    text = SEP.join([name, *(str(p) for p in params)])
    if CR.decode() in text or ESC.decode() in text:
        raise ValueError("command text must not hold ESC or CR")
    return ESC + text.encode("ascii") + CR


def parse_command(text: str) -> tuple[str, list[str]]:
    """A command's name and parameters from its text between ESC and CR."""
    name, *params = text.split(SEP)
    return name, params


def download(panel: str, levels: int, data: bytes) -> bytes:
    """`Db` with a full panel; the bitmap length is fixed by `levels`."""
    if len(data) != panel_bytes(levels):
        raise ValueError(f"panel {panel} at {levels} levels is {panel_bytes(levels)} bytes, "
                         f"not {len(data)}")
    return ESC + SEP.join([DOWNLOAD, panel, str(levels), ""]).encode("ascii") + data + CR


# ------------------------------------------------------------------------------- replies

#: A printer ends every reply with NUL (PROTOCOL.md, "Framing").
REPLY_END = NUL
#: What `ReplyReader` takes as the end of a reply: NUL, and CR or LF from printers using them.
REPLY_ENDS = (NUL, CR, LF)
#: More bytes than this without an end is not a reply: the printer's answer is unreadable.
MAX_REPLY = 4096

OK = "OK"
#: `Rlr` answers: a card is there (in the printer, in the hopper), or none is.
CARD = "CARD"
NO_CARD = "NO CARD"
#: Replies to a command the printer cannot take: unknown, or with wrong parameters.
ERROR_CDE = "ERROR CDE"
ERROR_PARAMETRES = "ERROR PARAMETRES"
#: Spelled as the printer spells it.
ERROR_UNKNOWN = "ERROR UNKNOW"
#: Any reply starting with this is an error (SDK `EVOLIS_REPLY_IS_ERR`).
ERROR_PREFIX = "ERR"

#: Error replies and what they mean to the agent (PROTOCOL.md, "Error replies").
ERROR_REPLIES: dict[str, FaultCode] = {
    "COVER OPEN": FaultCode.COVER_OPEN,
    "FEEDER EMPTY": FaultCode.FEEDER_EMPTY,
    "CARD JAM": FaultCode.JAM,
    "ERROR RIBBON": FaultCode.RIBBON_OUT,
    "ERR RIB DETECTION": FaultCode.RIBBON_OUT,
    "HOPPER FULL": FaultCode.HOPPER_FULL,
    "ERROR HOPPER": FaultCode.HOPPER_FULL,
    "HOPPER DOOR": FaultCode.COVER_OPEN,
    "ERROR HEAD": FaultCode.HEAD_ERROR,
    "ERROR TIME OUT": FaultCode.JAM,
    ERROR_CDE: FaultCode.PROTOCOL,
    ERROR_PARAMETRES: FaultCode.PROTOCOL,
    ERROR_UNKNOWN: FaultCode.OTHER,
    "ERROR": FaultCode.OTHER,
}

#: The other direction, for a printer that refuses a command because of a fault: the first
#: spelling above of each fault. `protocol_error` is left out: its replies name a bad
#: command, never a state of the printer.
FAULT_REPLIES: dict[FaultCode, str] = {
    fault: reply for reply, fault in reversed(ERROR_REPLIES.items())
    if fault is not FaultCode.PROTOCOL
}
#: The language has no film fault (the retransfer models' protocol is not public): a
#: printer out of film refuses a card as it does out of ribbon.
FAULT_REPLIES[FaultCode.FILM_OUT] = FAULT_REPLIES[FaultCode.RIBBON_OUT]


class ReplyReader:
    """Cuts what a printer sends into replies, over any transport.

    The transport only moves bytes; where a reply ends is the language's, so it is here (as
    brother_ql's reader sits apart from its backends). Empty replies do not exist in the
    language (every command answers at least `OK`), so terminator bytes between replies (a
    CR after a NUL, say) are skipped.
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._buffer = b""

    def read(self, timeout: float) -> bytes:
        """One reply without its terminator; ReplyTimeout if it does not end in time."""
        deadline = time.monotonic() + timeout
        while True:
            self._buffer = self._buffer.lstrip(b"".join(REPLY_ENDS))
            ends = [i for i in (self._buffer.find(e) for e in REPLY_ENDS) if i >= 0]
            if ends:
                idx = min(ends)
                reply, self._buffer = self._buffer[:idx], self._buffer[idx + 1:]
                return reply
            where = self.transport.description
            if len(self._buffer) > MAX_REPLY:
                junk = len(self._buffer)
                self._buffer = b""
                raise TransportError(f"{where}: {junk} bytes without an end of reply; the "
                                     "printer's answer is unreadable")
            left = deadline - time.monotonic()
            if left <= 0:
                partial = f" (got {len(self._buffer)} bytes of it)" if self._buffer else ""
                self._buffer = b""
                raise ReplyTimeout(f"{where}: no complete reply within {timeout:g} s{partial}")
            self._buffer += self.transport.read(min(left, 0.2))

    def discard(self) -> None:
        """Drop stale bytes, kept here or waiting (a reply to a command that timed out)."""
        self._buffer = b""
        self.transport.discard_input()


def reply_fault(reply: str) -> FaultCode | None:
    """The fault an error reply reports, None for a normal answer."""
    if reply in ERROR_REPLIES:
        return ERROR_REPLIES[reply]
    if reply.startswith(ERROR_PREFIX):
        return FaultCode.OTHER
    return None


def fault_reply(fault: FaultCode) -> str:
    """The error reply a printer gives when `fault` stops a command."""
    return FAULT_REPLIES.get(fault, ERROR_UNKNOWN)


def parse_volts(reply: str) -> float:
    """`Rse` answers such as `5,00 Volts` (comma decimal separator)."""
    number = reply.removesuffix("Volts").strip().replace(",", ".")
    return float(number)


def volts(value: float) -> str:
    """A sensor reading as `Rse` answers it: `5,00 Volts`."""
    return f"{value:.2f} Volts".replace(".", ",")


# ------------------------------------------------------------------------------- bitmaps


def _to_wire(img: Image.Image) -> Image.Image:
    """Landscape card image → the 648-dot by 1016-row orientation of the download."""
    if img.size != CARD_SIZE:
        img = img.resize(CARD_SIZE)
    return img.transpose(Image.Transpose.ROTATE_270)


def _from_wire(img: Image.Image) -> Image.Image:
    return img.transpose(Image.Transpose.ROTATE_90)


def encode_mono(ink: np.ndarray) -> bytes:
    """K or O panel from a landscape boolean array (True = ink): 1 bit per dot, MSB first."""
    return encode_black(Image.fromarray(~np.asarray(ink, dtype=bool)))


def encode_black(black: Image.Image) -> bytes:
    """K panel from a landscape 1-bit image (black = ink), packed by Pillow: a row of 648
    dots is exactly 81 bytes, and the inverted packer makes ink the set bit."""
    return _to_wire(black if black.mode == "1" else black.convert("1")).tobytes("raw", "1;I")


@functools.cache
def full_panel() -> bytes:
    """An O (overlay) panel that covers the whole card."""
    return b"\xff" * panel_bytes(2)


def decode_mono(data: bytes) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8).reshape(ROWS, DOTS // 8), axis=1)
    wire = Image.fromarray(bits.astype(np.uint8) * 255, "L")
    return np.asarray(_from_wire(wire), dtype=np.uint8) > 127


def encode_color(rgb: Image.Image, levels: int = 32) -> dict[str, bytes]:
    """Y, M and C panels from a landscape RGB image: dye amount per dot, `levels` levels.

    Pillow maps the levels with one table per channel and rotates the result, both in C;
    mapping before rotating is the faster order (bench/image_pipeline.py).
    """
    bits = LEVEL_BITS[levels]
    if rgb.size != CARD_SIZE:
        rgb = rgb.resize(CARD_SIZE)
    rgb = rgb if rgb.mode == "RGB" else rgb.convert("RGB")
    dye = _to_wire(rgb.point(_dye_table(levels).tolist() * 3))
    red, green, blue = dye.split()
    return {panel: _pack(np.asarray(channel, dtype=np.uint8).reshape(-1), bits)
            for panel, channel in (("y", blue), ("m", green), ("c", red))}


@functools.cache
def _dye_table(levels: int) -> np.ndarray:
    """Dye level for each 8-bit channel value: more dye where the image is darker."""
    values = np.arange(256, dtype=np.uint16)
    return (((255 - values) * (levels - 1) + 127) // 255).astype(np.uint8)


def decode_color(panels: dict[str, bytes], levels: int = 32) -> Image.Image:
    bits = LEVEL_BITS[levels]
    channels = {}
    for panel, index in (("y", 2), ("m", 1), ("c", 0)):
        dye = _unpack(panels[panel], bits, ROWS * DOTS).astype(np.uint16)
        channels[index] = (255 - (dye * 255 + (levels - 1) // 2) // (levels - 1)).astype(np.uint8)
    wire = np.stack([channels[0], channels[1], channels[2]], axis=1).reshape(ROWS, DOTS, 3)
    return _from_wire(Image.fromarray(wire, "RGB"))


def _pack(values: np.ndarray, bits: int) -> bytes:
    """A continuous bit stream, MSB first, `bits` bits per value (each value < 2**bits).

    Eight values of `bits` bits fill exactly `bits` bytes, so each group of eight is one
    64-bit word, squeezed in three steps (pairs, quads, the eight) by shifting the earlier
    half up against the later one.
    """
    count = values.size
    if count % 8 == 0 and values.dtype == np.uint8 and values.flags.c_contiguous:
        padded = values
    else:
        padded = np.zeros(-(-count // 8) * 8, dtype=np.uint8)
        padded[:count] = values
    word = padded.view("<u8")  # value 0 of a group is the lowest byte
    later = np.empty_like(word)
    for step in (1, 2, 4):
        low = np.uint64(_LOW_HALVES[step])
        np.right_shift(word, np.uint64(8 * step), out=later)
        later &= low
        word = word & low
        word <<= np.uint64(bits * step)
        word |= later
    # The word's low `bits` bytes, most significant first, are the group's stream.
    stream = word.view(np.uint8).reshape(-1, 8)[:, bits - 1::-1].tobytes()
    size = -(-count * bits // 8)
    return stream if len(stream) == size else stream[:size]


#: For each squeezing step, the mask of the lower half of every lane of 2*step bytes.
_LOW_HALVES = {1: 0x00FF00FF00FF00FF, 2: 0x0000FFFF0000FFFF, 4: 0x00000000FFFFFFFF}


def _unpack(data: bytes, bits: int, count: int) -> np.ndarray:
    stream = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits]
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.uint16)
    return (stream.reshape(count, bits).astype(np.uint16) * weights).sum(axis=1).astype(np.uint8)
