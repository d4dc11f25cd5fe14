"""The one interface every printer driver implements.

Drivers only talk to hardware (as Network UPS Tools drivers do): they report identity,
status, faults, consumable levels and the hardware card counter, and print one card from
its panels. Policy (what to print, when to hold, what to report) belongs to the agent.

A driver is a `PrinterDriver` subclass, found by the scheme of its printer URL through the
entry-point group `printstation.drivers` (see `registry`), whichever package installs it.
Below is a complete one, for a printer that keeps what it prints in a list: it reads its URL,
reports who it is and its state, prints, and refuses a card with a `PrinterError` that says
whether a blank was drawn. Put it in a package of its own, say `listprinter/__init__.py`::

    from pathlib import Path
    from urllib.parse import parse_qsl, urlsplit

    from printstation.drivers.base import (
        CardJob,
        CardResult,
        FaultCode,
        Identity,
        PrinterDriver,
        PrinterError,
        PrinterStatus,
    )


    class ListPrinter(PrinterDriver):
        "list://NAME?cards=N: a printer named NAME with N blanks in its feeder."

        name = "list"

        def __init__(self, serial: str, cards: int):
            self.serial, self.cards = serial, cards
            self.printed: list[str | None] = []

        @classmethod
        def from_url(cls, url: str, *, state_dir: Path) -> "ListPrinter":
            parts = urlsplit(url)
            cards = dict(parse_qsl(parts.query)).get("cards", "100")
            if not cards.isdigit():
                raise ValueError(f"printer URL {url!r}: cards must be a whole number")
            return cls(parts.netloc or "list-1", int(cards))

        def identity(self) -> Identity:
            return Identity(driver=self.name, model="List printer", serial=self.serial,
                            firmware=None)

        def status(self) -> PrinterStatus:
            faults = () if self.cards else (FaultCode.FEEDER_EMPTY,)
            return PrinterStatus(state="fault" if faults else "ready", faults=faults,
                                 card_counter=len(self.printed))

        def print_card(self, card: CardJob) -> CardResult:
            if not self.cards:
                raise PrinterError(FaultCode.FEEDER_EMPTY, "no blanks", card_drawn=False)
            self.cards -= 1
            self.printed.append(card.job_id)
            return CardResult(counter=len(self.printed))

and register it in that package's `pyproject.toml`, for printer URLs `list://...`::

    [project.entry-points."printstation.drivers"]
    list = "listprinter:ListPrinter"

`open`, `close`, `prepare` and `stock_changed` are optional hooks; `native_size` is the panel
size the agent renders for (1016 x 648 by default). A printer with a contactless encoding
station sets `chip_station = True` and implements `park_card` and `reject_card`: the agent
parks the card, has its encoder (`encoder`) write the chip, then calls `print_card` (which
prints the parked card) or `reject_card` (which sends it out unprinted). A printer that
goes on printing a card by itself once it is sent (its own buffer and controller) sets
`overlaps_cards = True` and implements `feed_card`: the agent feeds the card, records the
last card's outcome and makes the next card ready while this one prints, then calls
`print_card`, which waits for the fed card, and feeds the next at once, so the printer
never waits for the PC between cards. `sim://` (`printstation.simulator.driver`) is a
driver registered this way too, and `tests/plugins/` holds one the tests install.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Literal

from PIL import Image

# The card a printer parks for its chip, part of this interface; it lives with the encoders.
from .encoder import ChipSection
from .encoder import ParkedCard as ParkedCard

# The error drivers raise, part of this interface; it lives with the other errors.
from .errors import PrinterError as PrinterError


class FaultCode(StrEnum):
    """Faults in the agent's words; each driver maps its printer's codes onto these."""

    JAM = "jam"
    RIBBON_OUT = "ribbon_out"
    FILM_OUT = "film_out"
    COVER_OPEN = "cover_open"
    FEEDER_EMPTY = "feeder_empty"
    HOPPER_FULL = "hopper_full"
    OFFLINE = "offline"
    HEAD_ERROR = "head_error"
    #: The chip encoder cannot be reached (no reader, pcscd down): no chip card can be made.
    ENCODER = "encoder_fault"
    PROTOCOL = "protocol_error"
    OTHER = "other"


@dataclass(frozen=True)
class Identity:
    driver: str
    model: str | None
    serial: str | None
    firmware: str | None


@dataclass(frozen=True)
class ConsumableLevel:
    kind: Literal["ribbon", "film", "cards"]
    type: str | None
    capacity: int | None
    remaining: int | None
    unit: Literal["prints", "panels", "cards"]
    source: Literal["printer", "agent"] = "printer"
    #: The roll's serial number and production lot, for a printer that reads them from the
    #: roll's chip; None where it does not (the operator then types them with `load`).
    serial: str | None = None
    lot: str | None = None


@dataclass(frozen=True)
class StockChange:
    """What an operator recorded putting into the printer or taking out of it.

    `loaded` blanks are added to the feeder (`amount` of them); a `loaded` ribbon or film
    roll replaces the last one and holds `amount`; `removed` blanks (`amount`) were taken out
    of the feeder unprinted. `expected` is the agent's count once the change is made.
    """

    kind: Literal["ribbon", "film", "cards"]
    change: Literal["loaded", "removed"]
    amount: int
    type: str | None = None
    capacity: int | None = None
    serial: str | None = None
    lot: str | None = None
    expected: int | None = None


@dataclass(frozen=True)
class PrinterStatus:
    state: Literal["ready", "busy", "fault", "offline"]
    faults: tuple[FaultCode, ...] = ()
    card_counter: int | None = None
    card_stock: str | None = None
    consumables: tuple[ConsumableLevel, ...] = ()


@dataclass
class SidePanels:
    """One side at the printer's native resolution: colour (Y, M, C), resin black (K), overlay."""

    color: Image.Image
    black: Image.Image
    overlay: bool = True


@dataclass
class CardJob:
    """One physical card to print; `job_id` is None for a test card."""

    job_id: str | None
    front: SidePanels
    back: SidePanels | None = None
    extra: dict[str, str] = field(default_factory=dict)
    #: What the driver's `prepare` made of the panels; only that driver reads it.
    encoded: object | None = None
    #: The job's chip section (contract v2 §3), personal data: the agent gives it to the
    #: encoder while the card is parked; drivers never read it.
    chip: ChipSection | None = field(default=None, repr=False)
    #: Set by the agent: a driver that hands the card to a spooler (an IPP job) calls it
    #: with the spooler's reference for the card before the card can come out, and the
    #: agent journals it, so after a crash `card_outcome(ref)` says what became of the card
    #: instead of anyone guessing.
    note_submitted: Callable[[str], None] | None = field(default=None, repr=False,
                                                          compare=False)
    #: Set by the agent: a driver that waits long for a card (a spooler holding it while
    #: the printer is out of cards) calls it with the printer's status meanwhile, so the
    #: station shows why the card does not come.
    note_status: Callable[[PrinterStatus], None] | None = field(default=None, repr=False,
                                                                compare=False)

    @property
    def sides(self) -> int:
        return 1 if self.back is None else 2


@dataclass(frozen=True)
class SubmittedCard:
    """What became of a card a driver handed to a spooler under `ref` (`card_outcome`).

    `printed`: it came out; `not_printed`: it never will and no blank was drawn;
    `spoiled`: a blank was drawn and did not become a card; `unknown`: nobody can tell (the
    spooler forgot the job), so an operator must look.
    """

    state: Literal["printed", "not_printed", "spoiled", "unknown"]
    detail: str = ""


@dataclass(frozen=True)
class CardResult:
    """A good card came out; `counter` is the printer's card counter for it."""

    counter: int | None


class PrinterDriver(abc.ABC):
    """A printer reached through one URL scheme; one thread owns an instance."""

    name: ClassVar[str]
    native_size: ClassVar[tuple[int, int]] = (1016, 648)
    #: Faults this printer reports only by refusing a card, never in `status()`: the agent
    #: holds and shows them once a card was refused; `probe` says it cannot see them.
    refusal_only_faults: ClassVar[tuple[FaultCode, ...]] = ()
    #: Whether the printer can park a card at a contactless encoding station (`park_card`).
    #: Without one, the station takes no chip job.
    chip_station: ClassVar[bool] = False
    #: Whether `feed_card` starts a card that the printer then prints by itself. The agent
    #: uses it for cards without a chip.
    overlaps_cards: ClassVar[bool] = False

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str, *, state_dir: Path) -> PrinterDriver:
        """Build a driver from its printer URL; raise ValueError naming a bad part."""

    def open(self) -> None:  # noqa: B027 - optional hook
        """Connect to the printer; may raise PrinterError(OFFLINE)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the printer."""

    @abc.abstractmethod
    def identity(self) -> Identity: ...

    @abc.abstractmethod
    def status(self) -> PrinterStatus: ...

    def prepare(self, card: CardJob) -> CardJob:
        """Turn the card's panels into what this printer is sent, ahead of its turn.

        Runs on the agent's card-preparation thread while another card prints, so the
        printer never waits for the encoding; it must not touch the printer. The default
        leaves the card as it is.
        """
        return card

    @abc.abstractmethod
    def print_card(self, card: CardJob) -> CardResult:
        """Print one card; raise PrinterError on a fault, saying whether a blank was drawn."""

    def park_card(self, card: CardJob) -> ParkedCard:
        """Draw a blank and hold it at the contactless station, for its chip to be written.

        Raises PrinterError as `print_card` does (`card_drawn` says whether the blank left
        the feeder). The next `print_card` prints this parked card; `reject_card` sends it
        out unprinted. Only a printer with `chip_station` is asked.
        """
        raise PrinterError(FaultCode.OTHER, f"the {self.name} driver has no contactless "
                           "station", card_drawn=False)

    def feed_card(self, card: CardJob) -> int | None:
        """Draw a blank and start printing `card` without waiting for it; return the
        printer's card counter with this card counted (None when the printer cannot say).

        Raises PrinterError as `print_card` does; `card_drawn=False`: nothing was started.
        The next `print_card` waits for this card and returns its result. Only a printer
        with `overlaps_cards` is asked.
        """
        raise PrinterError(FaultCode.OTHER, f"the {self.name} driver does not take a card "
                           "while one prints", card_drawn=False)

    def reject_card(self, card: CardJob) -> None:  # noqa: B027 - optional hook
        """The parked card leaves unprinted, to the reject tray (its chip could not be
        written); PrinterError if the printer did not confirm it."""

    def details(self) -> dict[str, str]:
        """What else the printer says in its own words, for a technician (`probe`): an IPP
        printer's state reasons and marker levels, say. Empty by default."""
        return {}

    def card_outcome(self, ref: str) -> SubmittedCard | None:
        """What became of the card handed over under `ref` (given to `note_submitted`)
        before the agent stopped, waiting for the spooler to finish it if it still works on
        it; asked at start-up before anything else. None: this driver keeps no references
        (the printer's card counter settles such a card instead)."""
        return None

    def stock_changed(self, change: StockChange) -> None:  # noqa: B027 - optional hook
        """An operator recorded loading or removing stock; called on the printer's thread.

        A real printer sees a new roll or a fuller feeder for itself, so the default does
        nothing. A simulated printer, which no hand can reach, makes the change, so that its
        readings and the agent's count stay one story.
        """
