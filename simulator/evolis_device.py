"""A simulated Evolis printer that answers the escape-command language byte for byte.

`EvolisDevice` sits on the printer model (`SimulatedPrinter`) and turns commands into the
replies a printer sends: `OK`, query answers, or error strings such as `CARD JAM`. Each
connection (pty, TCP, the USB bridge) gets a `DeviceSession` that frames the byte stream;
one host is served at a time, as a printer does. Every wire fact (framing, reply texts and
their terminator, ribbon names) comes from the driver's `protocol` module, so the two
cannot drift apart.

A blank can stop at the contactless station (`Sic`): it waits there, its chip presented
to the reader, while the host writes the chip, then goes on to be printed (`Ss`) or is
rejected (`Ser`).

Test controls sit beside the protocol: garbage or truncated replies, slow replies, and
an unplug flag the servers act on.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from printstation.drivers.base import CardJob, FaultCode, PrinterError, SidePanels
from printstation.drivers.evolis import protocol

from .printer import SimulatedPrinter


@dataclass
class Mischief:
    """Misbehaviour injected by tests: the next replies are garbage, cut short, or late."""

    garbage: int = 0
    truncate: int = 0
    delay: float = 0.0
    silent: int = 0


_SEP = protocol.SEP.encode("ascii")
_DOWNLOAD = protocol.ESC + protocol.DOWNLOAD.encode("ascii") + _SEP

#: A blank left in the printer this long without a command goes to the reject box.
HOST_TIMEOUT = 5.0
#: ... and a blank parked at the contactless station this long: writing a chip through a
#: PC/SC reader takes seconds (an 8 KB e-KTP chip, a slow chip, a reader found afresh).
PARKED_TIMEOUT = 60.0


@dataclass
class CardInPrinter:
    number: int
    touched: float = field(default_factory=time.monotonic)
    #: At the contactless station, waiting for the host to write its chip (`Sic`, not yet
    #: `Ss`): it waits up to PARKED_TIMEOUT, not HOST_TIMEOUT.
    parked: bool = False
    side: str | None = None
    panels: dict[str, dict[str, bytes]] = field(default_factory=dict)
    levels: int = 32


class EvolisDevice:
    def __init__(self, printer: SimulatedPrinter, *,
                 clock: Callable[[], float] = time.monotonic):
        self.printer = printer
        #: What the host timeouts are measured by; tests give their own to step time.
        self.clock = clock
        #: The contactless station's offset (`Poc`); the simulated station needs none.
        self.chip_offset = 0
        self.mischief = Mischief()
        self.card: CardInPrinter | None = None
        self.lock = threading.RLock()
        self.unplugged_until = 0.0
        self.printing = False  # between `Se` and the card coming out

    @property
    def unplugged(self) -> bool:
        return time.monotonic() < self.unplugged_until

    def session(self) -> DeviceSession:
        return DeviceSession(self)

    def host_lost(self) -> None:
        """The host went away with a blank in the printer and no print order: reject it."""
        with self.lock:
            card, self.card = self.card, None
        if card is not None:
            self.printer.reject(card.number, "host_lost")

    # ------------------------------------------------------------------- commands
    # One method per command, named `_cmd_<command>` exactly as the protocol spells it.

    def handle(self, name: str, params: list[str]) -> str:
        with self.lock:
            if FaultCode.OFFLINE in self.printer.faults():
                return ""  # an offline printer says nothing
            if self.card is not None:
                limit = PARKED_TIMEOUT if self.card.parked else HOST_TIMEOUT
                if self.clock() - self.card.touched > limit:
                    self.host_lost()  # the host went quiet mid-card, as a printer times out
                else:
                    self.card.touched = self.clock()
            handler = getattr(self, f"_cmd_{name}", None)
            if handler is None:
                return protocol.ERROR_CDE
            try:
                return handler(params)
            except (IndexError, ValueError):
                return protocol.ERROR_PARAMETRES

    def _cmd_Rtp(self, p: list[str]) -> str:
        return self.printer.params.model

    def _cmd_Rsn(self, p: list[str]) -> str:
        return self.printer.params.serial

    def _cmd_Rfv(self, p: list[str]) -> str:
        return self.printer.params.firmware

    def _cmd_Rkn(self, p: list[str]) -> str:
        return "KIT-SIM-01"

    def _set(self, p: list[str]) -> str:
        return protocol.OK

    _cmd_Pem = _cmd_Pc = _cmd_Pl = _cmd_Ps = _cmd_Pmi = _cmd_Srs = _set

    def _cmd_Poc(self, p: list[str]) -> str:
        """`Poc;=;N` sets the offset, `Poc;+;N` and `Poc;-;N` move it (guide p.61)."""
        how, value = p[0], int(p[1])  # missing or not a number: ERROR PARAMETRES
        if how not in ("=", "+", "-") or value < 0:
            return protocol.ERROR_PARAMETRES
        self.chip_offset = {"=": value, "+": self.chip_offset + value,
                            "-": self.chip_offset - value}[how]
        return protocol.OK

    def _cmd_Pr(self, p: list[str]) -> str:
        return protocol.OK if p[0].lower() in protocol.RIBBONS else protocol.ERROR_PARAMETRES

    def _cmd_Rse(self, p: list[str]) -> str:
        faults = self.printer.faults()
        if p[0] == "o":
            return protocol.volts(0 if FaultCode.COVER_OPEN in faults else 5)
        if p[0] == "f":
            return protocol.volts(0 if self.printer.cards_in_feeder <= 0 else 5)
        if p[0] == "n":
            return protocol.volts(0.17 if self.printer.cards_in_feeder < 20 else 3.92)
        return protocol.ERROR_PARAMETRES

    def _cmd_Rrt(self, p: list[str]) -> str:
        if p[0] == "count":
            return str(max(self.printer.ribbon_left, 0))
        if p[0] == "qty":
            return str(self.printer.params.ribbon)
        return protocol.ERROR_PARAMETRES

    def _cmd_Rlr(self, p: list[str]) -> str:
        if p[0] == "p":
            stuck = FaultCode.JAM in self.printer.faults() or self.card is not None
            return protocol.CARD if stuck else protocol.OK
        if p[0] == "h":
            full = FaultCode.HOPPER_FULL in self.printer.faults()
            return protocol.CARD if full else protocol.NO_CARD
        if p[0] == "c":
            return protocol.OK
        return protocol.ERROR_PARAMETRES

    def _cmd_Rco(self, p: list[str]) -> str:
        if p[0] == "c":
            return str(self.printer.counter)
        return "0"

    def _cmd_Ss(self, p: list[str]) -> str:
        if self.card is not None:
            if not self.card.parked:
                return protocol.ERROR_CDE
            # The card at the contactless station goes on to be printed (PROTOCOL.md,
            # [inferred]): no second blank is drawn.
            self.card.parked = False
            return protocol.OK
        try:
            number = self.printer.draw_blank()
        except PrinterError as exc:
            return protocol.fault_reply(exc.fault)
        self.card = CardInPrinter(number, touched=self.clock())
        return protocol.OK

    def _cmd_Sic(self, p: list[str]) -> str:
        """A blank goes from the feeder to the contactless station, its chip to the reader."""
        if self.card is not None:
            return protocol.ERROR_CDE
        try:
            number = self.printer.park_blank()
        except PrinterError as exc:
            return protocol.fault_reply(exc.fault)
        self.card = CardInPrinter(number, touched=self.clock(), parked=True)
        return protocol.OK

    def _cmd_Sr(self, p: list[str]) -> str:
        return self._side("front")

    def _cmd_Sv(self, p: list[str]) -> str:
        return self._side("back")

    def _side(self, side: str) -> str:
        if self.card is None or self.card.parked:  # a parked card prints after `Ss`
            return protocol.ERROR_CDE
        self.card.side = side
        self.card.panels.setdefault(side, {})
        return protocol.OK

    def download(self, panel: str, levels: int, data: bytes) -> str:
        with self.lock:
            if self.card is None or self.card.side is None:
                return protocol.ERROR_CDE
            self.card.touched = self.clock()
            if panel in "ymc" and levels != 2:
                self.card.levels = levels
            self.card.panels[self.card.side][panel] = data
            return protocol.OK

    def _cmd_Ser(self, p: list[str]) -> str:
        card, self.card = self.card, None
        if card is not None:
            self.printer.reject(card.number, "rejected_by_host")
        return protocol.OK

    def _cmd_Se(self, p: list[str]) -> str:
        card, self.card = self.card, None
        if card is None or "front" not in card.panels:
            if card is not None:
                self.printer.reject(card.number, "no_image")
            return protocol.ERROR_CDE
        job = CardJob(job_id=None, front=_side_panels(card.panels["front"], card.levels),
                      back=_side_panels(card.panels["back"], card.levels)
                      if "back" in card.panels else None)
        # The card prints even if the host goes away now: the printer has all it needs.
        self.printing = True
        try:
            self.printer.print_drawn(card.number, job)
        except PrinterError as exc:
            return protocol.fault_reply(exc.fault)
        finally:
            self.printing = False
        return protocol.OK

    # -------------------------------------------------------------------- replies

    def frame(self, reply: str) -> bytes:
        """The reply's bytes, unless a test asked for it to be garbled, cut or withheld."""
        m = self.mischief
        if m.delay:
            time.sleep(m.delay)
        if m.silent:
            m.silent -= 1
            return b""
        if m.garbage:
            m.garbage -= 1
            return os.urandom(8).replace(protocol.REPLY_END, b"\xff") + protocol.REPLY_END
        if m.truncate:
            m.truncate -= 1
            return reply.encode()[: max(len(reply) // 2, 1)]
        return reply.encode("ascii") + protocol.REPLY_END


def _side_panels(panels: dict[str, bytes], levels: int) -> SidePanels:
    blank = bytes(protocol.panel_bytes(levels))
    color = protocol.decode_color({c: panels.get(c, blank) for c in "ymc"}, levels)
    ink = protocol.decode_mono(panels["k"]) if "k" in panels else np.zeros((648, 1016), bool)
    black = Image.fromarray(~ink).convert("1")
    return SidePanels(color=color, black=black, overlay="o" in panels)


class DeviceSession:
    """Frames one connection's byte stream into commands and downloads."""

    def __init__(self, device: EvolisDevice):
        self.device = device
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        replies = []
        while True:
            reply = self._next()
            if reply is None:
                return replies
            if reply:
                replies.append(self.device.frame(reply))

    def _next(self) -> str | None:
        """Handle one complete command from the buffer; None when more bytes are needed."""
        buf = self.buffer.lstrip(protocol.BETWEEN_COMMANDS)
        if not buf:
            self.buffer = b""
            return None
        if not buf.startswith(protocol.ESC):
            cut = buf.find(protocol.ESC)
            self.buffer = buf[cut:] if cut >= 0 else b""
            return protocol.ERROR_CDE
        if buf.startswith(_DOWNLOAD):
            return self._download(buf)
        end = buf.find(protocol.CR)
        if end < 0:
            self.buffer = buf
            return None
        text = buf[len(protocol.ESC):end].decode("ascii", "replace")
        self.buffer = buf[end + len(protocol.CR):]
        return self.device.handle(*protocol.parse_command(text))

    def _download(self, buf: bytes) -> str | None:
        parts = buf[len(protocol.ESC):64].split(_SEP, 3)
        if len(parts) < 4:
            self.buffer = buf
            return None if len(buf) < 64 else self._bad(buf)
        _, panel_b, levels_b, _ = parts
        header = len(protocol.ESC) + len(_SEP.join(parts[:3]) + _SEP)
        try:
            panel, levels = panel_b.decode(), int(levels_b)
            size = protocol.panel_bytes(levels)
        except (ValueError, KeyError, UnicodeDecodeError):
            return self._bad(buf)
        if panel not in protocol.PANELS:
            return self._bad(buf)
        end = header + size + len(protocol.CR)
        if len(buf) < end:
            self.buffer = buf
            return None
        data = buf[header:header + size]
        self.buffer = buf[end:]
        return self.device.download(panel, levels, data)

    def _bad(self, buf: bytes) -> str:
        cut = buf.find(protocol.ESC, 1)
        self.buffer = buf[cut:] if cut >= 0 else b""
        return protocol.ERROR_PARAMETRES
