"""A model of a retransfer ID-card printer: feeder, YMCKO ribbon, film, faults, card counter.

Every physical card it produces (good or spoiled) is one JSON line in `ledger.jsonl` of its
output folder, and every good card is also a PNG of what the card looks like. That ledger
is the ground truth the tests check the agent against: it is written by the "printer",
never by the agent. Every blank carries a contactless chip (`chip.py`); a card parked at the
contactless station (`park_blank`) has its chip's UID and the digest of what was written to
it in its ledger line, and, with `vpcd_port`, is presented to a real pcscd (`vpcd.py`).
The output folder holds pictures of cards (personal data), so it is created readable by its
owner only.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

from printstation.drivers.base import (
    CardJob,
    CardResult,
    ConsumableLevel,
    FaultCode,
    Identity,
    PrinterError,
    PrinterStatus,
    StockChange,
)
from printstation.drivers.panels import compose

from .chip import Chip, ChipFault, uid_for
from .vpcd import VpcdCard

#: Faults that stay until cleared (by an operator, a test, or `clear_after`).
STICKY = (FaultCode.JAM, FaultCode.COVER_OPEN, FaultCode.HEAD_ERROR, FaultCode.OFFLINE)
#: How many cards the busy log keeps (bench/utilisation.py needs up to a few thousand).
BUSY_LOG_CARDS = 5000


@dataclass
class SimParams:
    """Everything that describes one simulated printer; `sim://` query parameters set these."""

    model: str = "Simulated Retransfer ID Printer"
    serial: str = "SIM-0001"
    firmware: str = "1.0.0"
    print_time: float = 0.2
    stock: str = "ektp"
    cards: int = 500
    ribbon_type: str = "YMCKO"
    ribbon: int = 1000
    film: int = 1000
    #: Serial numbers and lots the rolls' chips report (a real printer may read them).
    ribbon_serial: str | None = "SIM-R-0001"
    ribbon_lot: str | None = "SIM-LOT-1"
    film_serial: str | None = "SIM-F-0001"
    film_lot: str | None = "SIM-LOT-1"
    counter: int = 0
    jam_at: list[int] = field(default_factory=list)
    faults: list[FaultCode] = field(default_factory=list)
    clear_after: float | None = None
    render: bool = True
    state_file: str | None = None
    #: Faults that appear just before card N is drawn: [{"card": N, "fault": "cover_open"}].
    events: list[dict] = field(default_factory=list)
    #: What is wrong with every blank's chip (none, absent, dead, mute, wrong, slow) ...
    chip_fault: ChipFault = ChipFault.NONE
    #: ... and with the chips of particular blanks, by card counter: "3:dead,5:absent".
    chip_faults: dict[int, ChipFault] = field(default_factory=dict)
    #: Seconds a slow chip takes for each answer.
    chip_delay: float = 0.2
    #: Present the chip of the card parked at the contactless station to vsmartcard-vpcd
    #: listening on this port of 127.0.0.1 (a real pcscd then sees it); unset: in-process only.
    vpcd_port: int | None = None


FAULTS = ", ".join(f.value for f in FaultCode)
CHIP_FAULTS = ", ".join(f.value for f in ChipFault)


def chip_fault(name: str) -> ChipFault:
    """A chip fault by its name, or ValueError naming the ones there are."""
    try:
        return ChipFault(name)
    except ValueError:
        raise ValueError(f"unknown chip fault {name!r}; chip faults: {CHIP_FAULTS}") from None


def fault_code(name: Any) -> FaultCode:
    """A fault by its name, or ValueError naming the ones there are."""
    try:
        return FaultCode(name)
    except ValueError:
        raise ValueError(f"unknown fault {name!r}; faults: {FAULTS}") from None


def setting_value(key: str, raw: str) -> Any:
    """A printer setting from its text (a `sim://` query value, or `--set KEY=VALUE`)."""
    if key == "chip_fault":
        return chip_fault(raw)
    if key == "chip_faults":
        faults = {}
        for item in filter(None, raw.split(",")):
            number, sep, name = item.partition(":")
            if not sep or not number.isdigit():
                raise ValueError(f"{item!r}: give CARD:FAULT, e.g. 3:dead")
            faults[int(number)] = chip_fault(name)
        return faults
    if key == "vpcd_port":
        port = int(raw)
        if not 0 < port < 65536:
            raise ValueError("must be a TCP port")
        return port
    if key in ("print_time", "clear_after", "chip_delay"):
        value = float(raw)
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if key in ("cards", "ribbon", "film", "counter"):
        value = int(raw)
        if value < 0:
            raise ValueError("must not be negative")
        return value
    if key == "jam_at":
        return [int(x) for x in raw.split(",") if x]
    if key == "faults":
        return [fault_code(x) for x in raw.split(",") if x]
    if key == "render":
        return raw not in ("0", "false", "no")
    if key.endswith(("_serial", "_lot")):
        return raw or None  # empty: the roll's chip reports none
    return raw


class SimulatedPrinter:
    """Thread-safe: the driver's thread prints while a test or operator injects faults."""

    def __init__(self, params: SimParams, output_dir: Path):
        self.params = params
        self.output_dir = output_dir
        self.output_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.output_dir, 0o700)
        self.ledger_path = output_dir / "ledger.jsonl"
        self._lock = threading.Condition()
        self.counter = params.counter
        self.cards_in_feeder = params.cards
        self.stock = params.stock
        self.ribbon_left = params.ribbon
        self.film_left = params.film
        self._faults: dict[FaultCode, float] = {f: time.monotonic() for f in params.faults}
        self._jam_at = set(params.jam_at)
        self._rolls: dict[str, int] = {}  # rolls of each kind so far: new rolls' serials
        self._busy = False
        self._busy_since: float | None = None
        #: (start, end) in monotonic seconds of the last cards in the printer: what
        #: bench/utilisation.py measures the agent against. Bounded, as a simulator may
        #: run in the agent's process for a long time (bench/footprint.py).
        self.busy_log: deque[tuple[float, float]] = deque(maxlen=BUSY_LOG_CARDS)
        #: The chips of cards parked at the contactless station and not yet out, by number.
        self._chips: dict[int, Chip] = {}
        #: The card at the contactless station now, if any.
        self.parked: int | None = None
        self._vpcd = VpcdCard(port=params.vpcd_port) if params.vpcd_port else None
        self._load_state()

    def close(self) -> None:
        """Take the card away from the virtual reader and stop its link."""
        if self._vpcd is not None:
            self._vpcd.close()

    # ------------------------------------------------------------------ operator and tests

    def inject(self, fault: FaultCode) -> None:
        with self._lock:
            self._faults[fault] = time.monotonic()
            self._lock.notify_all()

    def clear(self, fault: FaultCode | None = None) -> None:
        with self._lock:
            if fault is None:
                self._faults.clear()
            else:
                self._faults.pop(fault, None)
            self._lock.notify_all()

    def load(self, *, cards: int | None = None, stock: str | None = None,
             ribbon: int | None = None, film: int | None = None) -> None:
        with self._lock:
            if cards is not None:
                self.cards_in_feeder = cards
                self.params.cards = max(self.params.cards, cards)
                self._faults.pop(FaultCode.FEEDER_EMPTY, None)
            if stock is not None:
                self.stock = stock
            if ribbon is not None:  # a new roll: its size is its capacity
                self.ribbon_left = self.params.ribbon = ribbon
                self._faults.pop(FaultCode.RIBBON_OUT, None)
            if film is not None:
                self.film_left = self.params.film = film
                self._faults.pop(FaultCode.FILM_OUT, None)

    def stock_changed(self, change: StockChange) -> None:
        """An operator recorded a load or a removal: the simulated hands make it.

        A roll replaces the last one. Blanks are added or taken out, unless the feeder
        already holds what the agent now counts: then the change was made before it was
        recorded (by a test, or through the control port), and is not made twice.
        """
        with self._lock:
            if change.kind == "cards":
                if change.expected is not None and self.cards_in_feeder == change.expected:
                    return
                step = change.amount if change.change == "loaded" else -change.amount
                self.cards_in_feeder = max(self.cards_in_feeder + step, 0)
                self.params.cards = max(self.params.cards, self.cards_in_feeder)
                if change.type:
                    self.stock = change.type
                if self.cards_in_feeder:
                    self._faults.pop(FaultCode.FEEDER_EMPTY, None)
            elif change.change == "loaded":
                kind = change.kind
                capacity = change.capacity or change.amount
                if kind == "ribbon":
                    self.ribbon_left, self.params.ribbon = change.amount, capacity
                    self.params.ribbon_type = change.type or self.params.ribbon_type
                    self._faults.pop(FaultCode.RIBBON_OUT, None)
                else:
                    self.film_left, self.params.film = change.amount, capacity
                    self._faults.pop(FaultCode.FILM_OUT, None)
                # A roll's chip carries its serial: one the operator did not type is new.
                self._rolls[kind] = self._rolls.get(kind, 1) + 1
                serial = change.serial or f"SIM-{kind[0].upper()}-{self._rolls[kind]:04d}"
                setattr(self.params, f"{kind}_serial", serial)
                if change.lot:
                    setattr(self.params, f"{kind}_lot", change.lot)
            self._save_state()
            self._lock.notify_all()

    # --------------------------------------------------------------------------- queries

    def identity(self) -> Identity:
        p = self.params
        return Identity(driver="sim", model=p.model, serial=p.serial, firmware=p.firmware)

    def _expire_faults(self) -> None:
        if self.params.clear_after is None:
            return
        limit = time.monotonic() - self.params.clear_after
        for fault, since in list(self._faults.items()):
            if since <= limit and fault in STICKY:
                del self._faults[fault]

    def faults(self) -> tuple[FaultCode, ...]:
        with self._lock:
            self._expire_faults()
            found = set(self._faults)
        if self.cards_in_feeder <= 0:
            found.add(FaultCode.FEEDER_EMPTY)
        if self.ribbon_left <= 0:
            found.add(FaultCode.RIBBON_OUT)
        if self.film_left <= 0:
            found.add(FaultCode.FILM_OUT)
        return tuple(sorted(found))

    def status(self) -> PrinterStatus:
        faults = self.faults()
        if FaultCode.OFFLINE in faults:
            return PrinterStatus(state="offline", faults=faults)
        state = "fault" if faults else ("busy" if self._busy else "ready")
        p = self.params
        return PrinterStatus(
            state=state,
            faults=faults,
            card_counter=self.counter,
            card_stock=self.stock,
            consumables=(
                ConsumableLevel("ribbon", p.ribbon_type, p.ribbon, self.ribbon_left, "prints",
                                serial=p.ribbon_serial, lot=p.ribbon_lot),
                ConsumableLevel("film", "retransfer", p.film, self.film_left, "panels",
                                serial=p.film_serial, lot=p.film_lot),
                ConsumableLevel("cards", self.stock, p.cards, self.cards_in_feeder, "cards"),
            ),
        )

    # -------------------------------------------------------------------------- printing

    def print_card(self, card: CardJob) -> CardResult:
        """Draw a blank and print it: what the in-process driver does in one call."""
        return self.print_drawn(self.draw_blank(), card)

    def draw_blank(self) -> int:
        """Take a blank from the feeder into the printer; returns its card number."""
        with self._lock:
            self._fire_events(self.counter + 1)
        faults = self.faults()
        if faults:
            raise PrinterError(faults[0], "printer not ready")
        with self._lock:
            self.cards_in_feeder -= 1
            self.counter += 1
            self._busy = True
            self._busy_since = time.monotonic()
            self._save_state()
            return self.counter

    def park_blank(self) -> int:
        """Draw a blank and hold it at the contactless station: its chip is in the field (and
        at the virtual reader, with `vpcd_port`) until it is printed or rejected."""
        number = self.draw_blank()
        p = self.params
        chip = Chip(uid_for(p.serial, number), fault=p.chip_faults.get(number, p.chip_fault),
                    delay=p.chip_delay)
        with self._lock:
            self._chips[number] = chip
            self.parked = number
        if self._vpcd is not None:
            self._vpcd.insert(chip)
        return number

    def parked_chip(self) -> Chip | None:
        """The chip of the card at the contactless station, None without one (or no chip)."""
        with self._lock:
            chip = self._chips.get(self.parked) if self.parked is not None else None
        return chip if chip is not None and chip.present else None

    def _unpark(self, number: int) -> None:
        """The card leaves the contactless station (to be printed, or rejected)."""
        with self._lock:
            if self.parked != number:
                return
            self.parked = None
        if self._vpcd is not None:
            self._vpcd.remove()

    def print_drawn(self, number: int, card: CardJob, *,
                    started: float | None = None) -> CardResult:
        """Print the blank in the printer; a fault spoils it (it goes to the reject box).

        `started`: when its printing began (a fed card's, at its draw: the printer prints it
        while the host does other work), else now.
        """
        self._unpark(number)
        started = time.monotonic() if started is None else started
        # The simulator's own work for the ledger, done while the card prints, as a
        # printer's controller works while its mechanics run: it is not print time.
        mark = fingerprint(card.front.black)
        try:
            for side in range(card.sides):
                # Each side ends at its time from the card's start, not from the end of the
                # side before: the bookkeeping between sides is not added to the card.
                self._wait_until(started + self.params.print_time * (side + 1) / card.sides)
                with self._lock:
                    jam = number in self._jam_at or FaultCode.JAM in self._faults
                    if jam:
                        self._jam_at.discard(number)
                        self._faults[FaultCode.JAM] = time.monotonic()
                if jam:
                    raise self._spoil(card, number, FaultCode.JAM, "card jammed in the printer",
                                      mark)
                if self.ribbon_left <= 0:
                    raise self._spoil(card, number, FaultCode.RIBBON_OUT, "ribbon ran out", mark)
                if self.film_left <= 0:
                    raise self._spoil(card, number, FaultCode.FILM_OUT, "film ran out", mark)
                with self._lock:
                    self.ribbon_left -= 1
                    self.film_left -= 1
                    self._save_state()
            png = self._render(card, number) if self.params.render else None
            self._record(number, card, "issued", None, png, mark)
            return CardResult(counter=number)
        finally:
            with self._lock:
                self._busy = False
                if self._busy_since is not None:
                    self.busy_log.append((self._busy_since, time.monotonic()))
                    self._busy_since = None

    def reject(self, number: int, reason: str) -> None:
        """The blank in the printer goes to the reject box unprinted (host gave up on it)."""
        self._unpark(number)
        with self._lock:
            self._busy = False
        self._record(number, None, "spoiled", reason, None)

    def _fire_events(self, next_card: int) -> None:
        for event in self.params.events:
            if event.get("card") == next_card and not event.get("fired"):
                event["fired"] = True
                self._faults[FaultCode(event["fault"])] = time.monotonic()

    def _save_state(self) -> None:
        """Stock and counters survive restarts of the simulator, as a printer's do."""
        if self.params.state_file is None:
            return
        state = {"counter": self.counter, "cards": self.cards_in_feeder, "stock": self.stock,
                 "ribbon": self.ribbon_left, "film": self.film_left}
        path = Path(self.params.state_file)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            json.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def _load_state(self) -> None:
        path = Path(self.params.state_file) if self.params.state_file else None
        if path is None or not path.exists():
            return
        state = json.loads(path.read_text())
        self.counter = state["counter"]
        self.cards_in_feeder = state["cards"]
        self.stock = state["stock"]
        self.ribbon_left = state["ribbon"]
        self.film_left = state["film"]

    @staticmethod
    def _wait_until(deadline: float) -> None:
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))

    def _spoil(self, card: CardJob, number: int, fault: FaultCode, why: str,
               mark: str | None = None) -> PrinterError:
        self._record(number, card, "spoiled", fault.value, None, mark)
        return PrinterError(fault, why, card_drawn=True, counter=number)

    def _render(self, card: CardJob, number: int) -> str:
        sides = [compose(card.front)] + ([compose(card.back)] if card.back else [])
        width, height = sides[0].size
        sheet = Image.new("RGB", (width * len(sides) + 16 * (len(sides) - 1), height), "white")
        for i, img in enumerate(sides):
            sheet.paste(img, (i * (width + 16), 0))
        name = f"card-{number:06d}.png"
        path = self.output_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            sheet.save(fh, "PNG", compress_level=1)
        return name

    def _record(self, number: int, card: CardJob | None, outcome: str, reason: str | None,
                png: str | None, mark: str | None = None) -> None:
        """The card's ledger line; `mark` is its fingerprint when already taken."""
        if mark is None and card is not None:
            mark = fingerprint(card.front.black)
        line = {
            "card_no": number,
            "job_id": card.job_id if card else None,
            "fingerprint": mark,
            "outcome": outcome,
            "reason": reason,
            "png": png,
            "at": datetime.now().astimezone().isoformat(),
        }
        with self._lock:
            chip = self._chips.pop(number, None)
        if chip is not None:
            # What was written to this card's chip, as a digest (the contents are personal
            # data): tests compare it with the digest of the script they sent.
            line["chip_uid"] = chip.uid.hex() if chip.present else None
            line["chip_digest"] = chip.digest() if chip.present else None
        # Written, not fsynced: the line outlives the agent's process however it dies (the
        # tests kill it as a power cut would), as the kernel keeps what was written; only
        # the test machine's own power cut could lose it. An fsync here (about 2 ms on the
        # project's VM) was host disk work inside the card's cycle, which a real printer
        # does not make its host wait for (bench/utilisation.py counted it as idle).
        text = json.dumps(line) + "\n"
        with self._lock:
            fd = os.open(self.ledger_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, text.encode())
            finally:
                os.close(fd)


def fingerprint(black: Image.Image) -> str:
    """Identifies a card by its front resin-black panel, which crosses the wire bit-exact.

    A real printer never learns a job's id, so tests tell which job a physical card belongs
    to from what was printed: the K panel carries the card's text and numbers.

    Its ink bits packed eight to a byte, row by row ("1;I": a set bit is ink), as NumPy's
    `packbits` gave them (the same digest at the printers' widths, multiples of 8), without
    loading NumPy into the agent's process for the in-process simulator (20 MB of RSS).
    """
    return hashlib.sha256(black.convert("1").tobytes("raw", "1;I")).hexdigest()[:20]


def read_ledger(output_dir: Path) -> list[dict]:
    """Every card the simulated printer produced, in order; a line still being written
    (read beside the printer's write, without its newline yet) is left for the next read."""
    path = output_dir / "ledger.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().split("\n")[:-1]
    return [json.loads(line) for line in lines if line.strip()]
