"""The Evolis escape-command language: framing, replies, and panel bitmaps.

Commands are `ESC name;p1;...;pn CR`; panel downloads are `ESC Db;<panel>;<levels>;` then
the raw bitmap, then CR. Every source for each detail is cited in PROTOCOL.md beside this
file; what is inferred rather than documented is marked there. Both the driver and the
simulated device use this module, so they share one reading of the documents.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from ..base import FaultCode

ESC = b"\x1b"
CR = b"\r"

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
    text = ";".join([name, *(str(p) for p in params)])
    if "\r" in text or "\x1b" in text:
        raise ValueError("command text must not hold ESC or CR")
    return ESC + text.encode("ascii") + CR


def download(panel: str, levels: int, data: bytes) -> bytes:
    """`Db` with a full panel; the bitmap length is fixed by `levels`."""
    if len(data) != panel_bytes(levels):
        raise ValueError(f"panel {panel} at {levels} levels is {panel_bytes(levels)} bytes, "
                         f"not {len(data)}")
    return ESC + f"Db;{panel};{levels};".encode("ascii") + data + CR


# ------------------------------------------------------------------------------- replies

OK = "OK"

#: Error replies and what they mean to the agent (PROTOCOL.md, "Replies").
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
    "ERROR CDE": FaultCode.PROTOCOL,
    "ERROR PARAMETRES": FaultCode.PROTOCOL,
    "ERROR UNKNOW": FaultCode.OTHER,
    "ERROR": FaultCode.OTHER,
}


def reply_fault(reply: str) -> FaultCode | None:
    """The fault an error reply reports, None for a normal answer."""
    if reply in ERROR_REPLIES:
        return ERROR_REPLIES[reply]
    if reply.startswith("ERR"):
        return FaultCode.OTHER
    return None


def parse_volts(reply: str) -> float:
    """`Rse` answers such as `5,00 Volts` (comma decimal separator)."""
    number = reply.removesuffix("Volts").strip().replace(",", ".")
    return float(number)


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
    wire = np.asarray(_to_wire(Image.fromarray(ink.astype(np.uint8) * 255, "L")), dtype=np.uint8)
    return np.packbits(wire > 127, axis=1).tobytes()


def decode_mono(data: bytes) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8).reshape(ROWS, DOTS // 8), axis=1)
    wire = Image.fromarray(bits.astype(np.uint8) * 255, "L")
    return np.asarray(_from_wire(wire), dtype=np.uint8) > 127


def encode_color(rgb: Image.Image, levels: int = 32) -> dict[str, bytes]:
    """Y, M and C panels from a landscape RGB image: dye amount per dot, `levels` levels."""
    bits = LEVEL_BITS[levels]
    wire = np.asarray(_to_wire(rgb.convert("RGB")), dtype=np.uint8)
    lut = _dye_table(levels)
    return {panel: _pack(lut[wire[:, :, channel]].reshape(-1), bits)
            for panel, channel in (("y", 2), ("m", 1), ("c", 0))}


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
    """A continuous bit stream, MSB first, `bits` bits per value.

    Eight values of `bits` bits fill exactly `bits` bytes, so they are packed eight at a
    time in 64-bit words: a few vector operations instead of one per bit.
    """
    count = values.size
    padded = np.zeros(-(-count // 8) * 8, dtype=np.uint64)
    padded[:count] = values
    groups = padded.reshape(-1, 8)
    word = np.zeros(groups.shape[0], dtype=np.uint64)
    for i in range(8):
        word |= groups[:, i] << np.uint64(bits * (7 - i))
    out = np.empty((groups.shape[0], bits), dtype=np.uint8)
    for j in range(bits):
        out[:, j] = (word >> np.uint64(8 * (bits - 1 - j))) & np.uint64(0xFF)
    return out.tobytes()[: -(-count * bits // 8)]


def _unpack(data: bytes, bits: int, count: int) -> np.ndarray:
    stream = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits]
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.uint16)
    return (stream.reshape(count, bits).astype(np.uint16) * weights).sum(axis=1).astype(np.uint8)
