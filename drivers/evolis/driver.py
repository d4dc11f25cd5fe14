"""Evolis card printers through the escape-command language, over USB, serial or TCP.

URLs (PROTOCOL.md has the details):
  evolis+usb://0f49[:PRODUCT][?serial=SERIAL]   USB, vendor 0x0F49 (Evolis)
  evolis+serial:///dev/ttyUSB0[?baud=9600]       any pyserial port or URL (spy://, loop://)
  evolis+tcp://10.0.0.5:9100                      a networked printer
Common query parameters: levels (32, 64 or 128 colour levels, default 32), ribbon (ribbon
type set with `Pr`, default ymcko), timeout (seconds for a reply, default 5), print_timeout
(seconds for a card to come out, default 120), chip_offset (a whole number, 0 or more: where
the card stops at the contactless station, set with `Poc;=;N` when the printer is opened;
unset, the printer keeps its own).

A card for a chip is parked at the contactless station (`Sic`) while the PC writes its chip
through a PC/SC reader (the encoder, another plug-in), then printed or rejected unprinted.

The driver only talks to the printer; whether to hold, retry or report is the agent's call.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from ..base import (
    CardJob,
    CardResult,
    ConsumableLevel,
    FaultCode,
    Identity,
    PrinterDriver,
    PrinterError,
    PrinterStatus,
)
from ..encoder import ParkedCard
from ..errors import ReplyTimeout, TransportError
from ..transport import TcpTransport, Transport
from . import protocol

DRIVER_PARAMS = ("levels", "ribbon", "timeout", "print_timeout", "baud", "chip_offset")


@dataclass(frozen=True)
class EvolisOptions:
    levels: int = 32
    ribbon: str = "ymcko"
    timeout: float = 5.0
    print_timeout: float = 120.0
    #: The contactless station's offset (`Poc`); None leaves the printer's setting alone.
    chip_offset: int | None = None


def _split_url(url: str) -> tuple[str, str, dict[str, str]]:
    """(transport, rest of the URL without driver parameters, driver parameters)."""
    scheme, _, rest = url.partition("://")
    transport = scheme.partition("+")[2]
    if transport not in ("usb", "serial", "tcp"):
        raise ValueError(f"printer URL {url!r}: use evolis+usb://, evolis+serial:// or "
                         "evolis+tcp://")
    base, _, query = rest.partition("?")
    ours, theirs = {}, []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in DRIVER_PARAMS:
            ours[key] = value
        else:
            theirs.append((key, value))
    if theirs:
        base += "?" + urlencode(theirs)
    return transport, base, ours


def _options(params: dict[str, str]) -> EvolisOptions:
    try:
        levels = int(params.get("levels", 32))
        timeout = float(params.get("timeout", 5.0))
        print_timeout = float(params.get("print_timeout", 120.0))
    except ValueError as exc:
        raise ValueError(f"evolis printer URL: {exc}") from None
    if levels not in protocol.LEVEL_BITS:
        raise ValueError("evolis printer URL: levels must be 32, 64 or 128")
    ribbon = params.get("ribbon", "ymcko").lower()
    if ribbon not in protocol.RIBBONS:
        raise ValueError(f"evolis printer URL: ribbon {ribbon!r} is not one of "
                         f"{', '.join(protocol.RIBBONS)}")
    chip_offset = params.get("chip_offset")
    if chip_offset is not None and not (chip_offset.isascii() and chip_offset.isdigit()):
        raise ValueError(f"evolis printer URL: chip_offset must be a whole number, 0 or more "
                         f"(where the card stops at the contactless station), not "
                         f"{chip_offset!r}")
    offset = int(chip_offset) if chip_offset is not None else None
    return EvolisOptions(levels=levels, ribbon=ribbon, timeout=timeout,
                         print_timeout=print_timeout, chip_offset=offset)


def transport_for(kind: str, base: str, params: dict[str, str]) -> Transport:
    if kind == "tcp":
        host, _, port = base.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"evolis+tcp:// needs HOST:PORT, not {base!r}")
        return TcpTransport(host.strip("[]"), int(port))
    if kind == "serial":
        from ..transport import SerialTransport

        if not base:
            raise ValueError("evolis+serial:// needs a port, e.g. evolis+serial:///dev/ttyUSB0")
        return SerialTransport(base, baudrate=int(params.get("baud", 9600)))
    from ..usb_transport import UsbTransport

    ids, _, query = base.partition("?")
    vendor_s, _, product_s = ids.partition(":")
    try:
        vendor = int(vendor_s, 16) if vendor_s else protocol.USB_VENDOR
        product = int(product_s, 16) if product_s else None
    except ValueError:
        raise ValueError(f"evolis+usb:// needs VENDOR[:PRODUCT] in hex, not {ids!r}") from None
    serial = dict(parse_qsl(query)).get("serial")
    return UsbTransport(vendor, product, serial)


class EvolisDriver(PrinterDriver):
    name = "evolis"
    native_size = protocol.CARD_SIZE
    # No command reads the print head or the film (PROTOCOL.md): `Ss` refuses the card.
    refusal_only_faults = (FaultCode.HEAD_ERROR, FaultCode.FILM_OUT)
    # Evolis printers take a card to a contactless station (`Sic`) on the way to printing.
    chip_station = True

    def __init__(self, transport: Transport, options: EvolisOptions | None = None):
        self.transport = transport
        self.replies = protocol.ReplyReader(transport)
        self.options = options or EvolisOptions()
        self._identity: Identity | None = None
        self._open = False
        #: A card was parked at the contactless station: the next `print_card` is for it
        #: (and prints it, unless it went stale), or `reject_card` sends it out. Set by
        #: `park_card`, cleared by those two.
        self._parked = False
        #: The link broke (or the driver was closed) while a card was parked, or while `Sic`
        #: ran: whatever is at the station cannot be printed, and is rejected (`Ser`) before
        #: another blank is drawn, so that no card is printed on a chip meant for another;
        #: a `print_card` for the parked card reports it spoiled instead of drawing a blank.
        self._stale = False

    @classmethod
    def from_url(cls, url: str, *, state_dir: Path) -> EvolisDriver:
        kind, base, params = _split_url(url)
        return cls(transport_for(kind, base, params), _options(params))

    # ---------------------------------------------------------------- connection

    def open(self) -> None:
        try:
            self.transport.open()
            self.replies.discard()
        except TransportError as exc:
            self.transport.close()
            raise PrinterError(FaultCode.OFFLINE, exc.reason) from None
        self._open = True
        if self._parked:
            self._stale = True  # a new connection: the parked card's sequence is gone
        if self._identity is not None:
            self._resync(self._identity)
        self._identity = Identity(
            driver="evolis",
            model=self._ask("Rtp"),
            serial=self._ask("Rsn"),
            firmware=self._ask("Rfv"),
        )
        # The host handles errors (it reports them and decides), not the printer's panel.
        self._expect_ok("Pem", 2)
        if self.options.chip_offset is not None:
            self._expect_ok("Poc", "=", self.options.chip_offset)  # `=`: set, not add

    def close(self) -> None:
        if self._parked:
            self._stale = True  # the parked card will not be printed, whatever comes next
        self._open = False
        self.transport.close()

    def _resync(self, known: Identity) -> None:
        """Skip replies still on their way from before a timeout or a lost link.

        A serial line has no sessions: a late reply would answer the next command. So ask
        two questions whose answers are known (serial number, firmware) and drop every reply
        before that pair. A printer that never gives the pair (another one was plugged in)
        is identified afresh on the next attempt.
        """
        expected = [known.serial, known.firmware]
        deadline = time.monotonic() + 3 * self.options.timeout
        seen: list[str] = []
        try:
            self.transport.write(protocol.command("Rsn") + protocol.command("Rfv"))
            while seen[-2:] != expected:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ReplyTimeout("replies are out of step")
                seen.append(self.replies.read(left).decode("ascii", "replace").strip())
        except TransportError as exc:
            self._open = False
            self._identity = None
            raise PrinterError(FaultCode.OFFLINE, f"{self.transport.description}: "
                               f"{exc.reason}; will identify the printer again") from None

    def _reconnect(self) -> None:
        """After an unplug or a lost connection, open again before the next command."""
        if not self._open:
            self.transport.close()
            self.open()

    # ------------------------------------------------------------------- talking

    def _ask(self, name: str, *params: object, timeout: float | None = None,
             card_drawn: bool | None = False) -> str:
        """Send one command and return its reply as text; PrinterError on any failure."""
        try:
            self.transport.write(protocol.command(name, *params))
            raw = self.replies.read(timeout or self.options.timeout)
        except ReplyTimeout as exc:
            # A late reply would answer the next command: start a fresh connection instead.
            self._open = False
            raise PrinterError(FaultCode.OFFLINE, exc.reason, card_drawn=card_drawn) from None
        except TransportError as exc:
            self._open = False
            raise PrinterError(FaultCode.OFFLINE, exc.reason, card_drawn=card_drawn) from None
        return self._text(raw, name, card_drawn)

    def _text(self, raw: bytes, name: str, card_drawn: bool | None) -> str:
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            text = ""
        if not text or not text.isprintable():
            self.replies.discard()
            raise PrinterError(FaultCode.PROTOCOL,
                               f"unreadable reply to {name} ({len(raw)} bytes)",
                               card_drawn=card_drawn)
        return text

    def _expect_ok(self, name: str, *params: object, timeout: float | None = None,
                   card_drawn: bool | None = False) -> None:
        reply = self._ask(name, *params, timeout=timeout, card_drawn=card_drawn)
        if reply != protocol.OK:
            fault = protocol.reply_fault(reply) or FaultCode.PROTOCOL
            raise PrinterError(fault, f"{name}: printer answered {reply[:60]!r}",
                               card_drawn=card_drawn)

    def _number(self, name: str, *params: object) -> int | None:
        reply = self._ask(name, *params)
        return int(reply) if reply.isdigit() else None

    # -------------------------------------------------------------------- queries

    def identity(self) -> Identity:
        if self._identity is None:
            self._reconnect()
        assert self._identity is not None
        return self._identity

    def status(self) -> PrinterStatus:
        self._reconnect()
        if self._stale and not self._parked:
            # A card left at the station by a broken link: out with it now, or it would
            # read as a jam that holds every card (and no blank goes after it).
            self._clear_station()
        faults: list[FaultCode] = []
        if protocol.parse_volts(self._checked("Rse", "o")) < 2.5:
            faults.append(FaultCode.COVER_OPEN)
        if protocol.parse_volts(self._checked("Rse", "f")) < 2.5:
            faults.append(FaultCode.FEEDER_EMPTY)
        ribbon_left = self._ask("Rrt", "count")
        capacity = self._number("Rrt", "qty")
        remaining = int(ribbon_left) if ribbon_left.isdigit() else 0
        if remaining == 0:
            faults.append(FaultCode.RIBBON_OUT)
        if self._ask("Rlr", "h") == protocol.CARD:
            faults.append(FaultCode.HOPPER_FULL)
        if self._ask("Rlr", "p") != protocol.OK and not (self._parked and not self._stale):
            faults.append(FaultCode.JAM)  # a card is held inside while nothing prints
        return PrinterStatus(
            state="fault" if faults else "ready",
            faults=tuple(sorted(set(faults))),
            card_counter=self._number("Rco", "c"),
            consumables=(ConsumableLevel("ribbon", self.options.ribbon.upper(), capacity,
                                         remaining, "prints"),),
        )

    def _checked(self, name: str, *params: object) -> str:
        """A sensor reading; an unreadable one is a protocol fault, not a crash."""
        reply = self._ask(name, *params)
        try:
            protocol.parse_volts(reply)
        except ValueError:
            raise PrinterError(FaultCode.PROTOCOL, f"{name};{';'.join(map(str, params))}: "
                               f"unexpected reply {reply[:40]!r}") from None
        return reply

    # ------------------------------------------------------------------- printing

    def print_card(self, card: CardJob) -> CardResult:
        parked = self._parked
        if parked:
            self._resume_parked()
        else:
            self._ready_for_a_blank()
            self._expect_ok("Pr", self.options.ribbon)
            # The blank leaves the feeder here: an error reply means it did not, a link lost
            # before the reply means nobody knows.
            reply = self._ask("Ss", card_drawn=None)
            if reply != protocol.OK:
                raise PrinterError(protocol.reply_fault(reply) or FaultCode.PROTOCOL,
                                   f"Ss: printer answered {reply[:60]!r}", card_drawn=False)
        encoded = self._encoded(card)
        try:
            if parked:
                # `Ss` with a card at the contactless station takes that card on to be
                # printed rather than drawing another [inferred, PROTOCOL.md]; the card
                # left the feeder with `Sic`, so any failure from here spoils it.
                self._expect_ok("Ss", card_drawn=True)
            for side_name, panels in zip(("Sr", "Sv"), encoded, strict=False):
                self._expect_ok(side_name, card_drawn=True)
                for panel, data, depth in panels:
                    self._download(panel, depth, data)
            # A broken link now leaves the outcome unknown; an error reply spoils the blank.
            reply = self._ask("Se", timeout=self.options.print_timeout, card_drawn=None)
            if reply != protocol.OK:
                raise PrinterError(protocol.reply_fault(reply) or FaultCode.PROTOCOL,
                                   f"Se: printer answered {reply[:60]!r}", card_drawn=True)
        except PrinterError as exc:
            if exc.card_drawn and parked:
                # Until the printer hears `Ser`, the card may wait at the station, where the
                # next card's `Ss` would take it: it is rejected first then.
                self._stale = True
                self._clear_station()
            elif exc.card_drawn:
                with contextlib.suppress(PrinterError):
                    self._ask("Ser", card_drawn=True)  # reject the blank, clear the path
            raise
        try:
            counter = self._number("Rco", "c")
        except PrinterError:
            # The card is out (the printer said so); only its number is unknown. Reporting
            # this as "not drawn" would print the job again.
            counter = None
        return CardResult(counter=counter)

    # ------------------------------------------------------------ contactless station

    def park_card(self, card: CardJob) -> ParkedCard:
        """`Pr`, then `Sic`: a blank leaves the feeder for the contactless station, where it
        waits for the PC to write its chip; `print_card` prints it, `reject_card` rejects it.

        The reader is the encoder's to name (the printer cannot), so `reader` is None; the
        card number is the printer's card counter once the card is parked (0 if unreadable).
        """
        self._ready_for_a_blank()
        self._expect_ok("Pr", self.options.ribbon)
        # As with `Ss`: an error reply means the blank stayed in the feeder, a link lost
        # before the reply means nobody knows (and the station is cleared before the next).
        try:
            reply = self._ask("Sic", card_drawn=None)
        except PrinterError:
            self._stale = True
            raise
        if reply != protocol.OK:
            raise PrinterError(protocol.reply_fault(reply) or FaultCode.PROTOCOL,
                               f"Sic: printer answered {reply[:60]!r}", card_drawn=False)
        self._parked = True
        try:
            counter = self._number("Rco", "c")
        except PrinterError as exc:
            if self._open:
                counter = None  # an unreadable answer: only the card's number is unknown
            else:
                # The link broke with the card at the station: it can no longer be printed.
                self._parked = False
                self._stale = True
                self._clear_station()
                raise PrinterError(exc.fault, f"{exc.detail}; the card at the contactless "
                                   "station is spoiled", card_drawn=True) from None
        return ParkedCard(card_no=counter or 0, reader=None)

    def reject_card(self, card: CardJob) -> None:
        """`Ser`: the parked card leaves unprinted, to the reject tray."""
        self._parked = False
        self._stale = True  # until the printer confirms
        try:
            self._reconnect()
        except PrinterError as exc:
            raise PrinterError(exc.fault, exc.detail, card_drawn=True) from None
        self._expect_ok("Ser", card_drawn=True)
        self._stale = False

    def _resume_parked(self) -> None:
        """Before the parked card is printed: it can be only on the link it was parked on.

        After a reconnection the printer has dropped the card or holds it out of its
        sequence: it is rejected and reported spoiled (`card_drawn=True`), never printed.
        """
        self._parked = False
        if not self._open:
            self._stale = True  # the link broke since the card was parked
        try:
            self._reconnect()
        except PrinterError as exc:
            raise PrinterError(exc.fault, f"{exc.detail}; the card at the contactless station "
                               "is spoiled", card_drawn=True) from None
        if self._stale:
            self._clear_station()
            raise PrinterError(FaultCode.OFFLINE, "the connection to the printer was lost "
                               "while the card was at the contactless station; it was "
                               "rejected unprinted", card_drawn=True)
        # The printer gives up on a parked card that waits too long (an encoder slower than
        # its patience): `Ss` would then draw a fresh blank, without this card's chip.
        try:
            held = self._ask("Rlr", "p", card_drawn=True)
        except PrinterError:
            self._stale = True  # whatever is at the station is rejected before the next
            raise
        if held != protocol.CARD:
            raise PrinterError(FaultCode.OTHER, "the card left the contactless station before "
                               "it was printed (the printer stopped waiting for it)",
                               card_drawn=True)

    def _ready_for_a_blank(self) -> None:
        """Connect, and reject a card left at the station by a broken link, if any."""
        self._reconnect()
        if self._stale:
            self._clear_station()

    def _clear_station(self) -> None:
        """Best effort `Ser` for a card that will not be printed; its answer does not
        matter (the printer may have dropped the card already), only that it was heard."""
        try:
            self._ask("Ser", card_drawn=True)
        except PrinterError:
            if not self._open:
                return  # not heard: try again before the next blank
        self._stale = False

    def prepare(self, card: CardJob) -> CardJob:
        card.encoded = (self.options.levels, self._encode(card, self.options.levels))
        return card

    def _encoded(self, card: CardJob) -> list[list[tuple[str, bytes, int]]]:
        """The panel downloads of each side, as `prepare` made them or encoded now."""
        levels = self.options.levels
        if isinstance(card.encoded, tuple) and card.encoded[0] == levels:
            return card.encoded[1]
        return self._encode(card, levels)

    @staticmethod
    def _encode(card: CardJob, levels: int) -> list[list[tuple[str, bytes, int]]]:
        sides = []
        for side in (card.front, card.back):
            if side is None:
                continue
            color = protocol.encode_color(side.color, levels)
            panels = [("y", color["y"], levels), ("m", color["m"], levels),
                      ("c", color["c"], levels), ("k", protocol.encode_black(side.black), 2)]
            if side.overlay:
                panels.append(("o", protocol.full_panel(), 2))
            sides.append(panels)
        return sides

    def _download(self, panel: str, levels: int, data: bytes) -> None:
        try:
            self.transport.write(protocol.download(panel, levels, data), timeout=60)
            raw = self.replies.read(self.options.timeout)
        except TransportError as exc:
            self._open = False
            raise PrinterError(FaultCode.OFFLINE, exc.reason, card_drawn=True) from None
        reply = self._text(raw, f"Db;{panel}", True)
        if reply != protocol.OK:
            fault = protocol.reply_fault(reply) or FaultCode.PROTOCOL
            raise PrinterError(fault, f"Db;{panel}: printer answered {reply[:60]!r}",
                               card_drawn=True)
