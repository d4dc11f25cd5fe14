"""What is loaded and what is left: the printer's readings and the agent's count, reconciled.

The printer thread asks `shortage()` before every card and calls `observe()` after every
poll; the telemetry thread and operator commands ask `levels()`. Only the journal holds
state that matters (the agent's count); what this object keeps in memory is the last
reading of each level, to notice a roll the printer reports as new.

What it tells an operator (a refused load, a shortage, the advice of an alert) is in the
agent's language; what it writes in the journal (a load's note) is data and stays English.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from printstation.agent.i18n import N_, _, labels, ngettext
from printstation.agent.station.journal import Journal
from printstation.agent.station.journal.stock import KINDS, UNITS, CardUse, Counted, RollId
from printstation.drivers.base import ConsumableLevel, PrinterStatus, StockChange
from printstation.drivers.errors import PrintstationError

#: How each ribbon type is used: one panel set per printed side, or one per card (YMCKK and
#: YMCKOK print the back in resin black from the same set as the colour front).
RIBBON_USE = {"YMCKO": "side", "YMCKOK": "card", "YMCKK": "card", "KO": "side", "K": "side"}
#: Each unit's word after a figure that may be any number ("150/200 prints", a heading);
#: `amount` says one number with its plural.
UNIT_NAMES = {
    # TRANSLATORS: the unit of a ribbon: what it has left, in prints
    "prints": N_("prints"),
    # TRANSLATORS: the unit of a retransfer film roll: what it has left, in panels
    "panels": N_("panels"),
    "cards": N_("blanks"),
}
#: A ribbon or film roll in a sentence ("no film roll is recorded yet").
ROLL_NAMES = {"ribbon": N_("ribbon"), "film": N_("film roll")}


class LoadError(PrintstationError, ValueError):
    """An operator's load was refused; the message says why and what would be accepted."""

    code = "load_refused"


@dataclass(frozen=True)
class Level:
    """One consumable as every surface shows it."""

    kind: str
    type: str | None
    capacity: int | None
    remaining: int | None
    unit: str
    source: str  # "printer" when read from it, "agent" when only counted
    counted: int | None = None
    read: int | None = None
    disagreement: str | None = None


def amount(n: int, unit: str) -> str:
    """`n` with its unit, in the process's language: "1 print", "20 film panels"."""
    if unit == "prints":
        return ngettext("{n} print", "{n} prints", n).format(n=n)
    if unit == "panels":
        return ngettext("{n} film panel", "{n} film panels", n).format(n=n)
    if unit == "cards":
        return ngettext("{n} blank", "{n} blanks", n).format(n=n)
    return f"{n} {unit}"


def unit_name(unit: str) -> str:
    """The unit's word after a figure ("prints", "pita"...), the unit itself if unknown."""
    return _(UNIT_NAMES[unit]) if unit in UNIT_NAMES else unit


def reconcile(kind: str, read: ConsumableLevel | None, counted: Counted | None) -> Level:
    """The printer's reading wins where there is one; a count that differs is reported."""
    unit = UNITS[kind]
    if read is None or read.remaining is None:
        if counted is None:
            return Level(kind, None, None, None, unit, "agent")
        return Level(kind, counted.type, counted.capacity, counted.remaining, unit, "agent",
                     counted=counted.remaining)
    level = Level(kind, read.type or (counted.type if counted else None),
                  read.capacity if read.capacity is not None else
                  (counted.capacity if counted else None),
                  read.remaining, unit, "printer", read=read.remaining,
                  counted=counted.remaining if counted else None)
    if counted is None:
        return level
    problems = []
    tolerance = max(2, math.ceil((level.capacity or 0) * 0.02))
    if abs(counted.remaining - read.remaining) > tolerance:
        problems.append(_("the printer reads {amount} left, the agent counted {counted}").format(
            amount=amount(read.remaining, unit), counted=counted.remaining))
    if read.type and counted.type and read.type.upper() != counted.type.upper():
        problems.append(_("the printer reports type {read}, the last load was {loaded}").format(
            read=read.type, loaded=counted.type))
    if problems:
        from dataclasses import replace

        level = replace(level, disagreement="; ".join(problems))
    return level


class Consumables:
    def __init__(self, journal: Journal, *, ribbon_types: list[str], stocks: list[str],
                 uses_film: bool, default_stock: str):
        self.journal = journal
        self.ribbon_types = [t.upper() for t in ribbon_types]
        self.stocks = stocks
        self.uses_film = uses_film
        self.default_stock = default_stock
        self._last_read: dict[str, int] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------- levels

    def levels(self, status: PrinterStatus) -> list[Level]:
        read = {c.kind: c for c in status.consumables}
        counted = self.journal.cards.counted_stock()
        kinds = [k for k in KINDS if k != "film" or self.uses_film]
        return [reconcile(k, read.get(k), counted.get(k)) for k in kinds]

    def feeder_stock(self, status: PrinterStatus) -> str:
        """The blanks in the feeder: as the printer says, else as last loaded, else the setting."""
        if status.card_stock:
            return status.card_stock
        cards = self.journal.cards.counted_stock().get("cards")
        return cards.type if cards and cards.type else self.default_stock

    def ribbon_type(self, status: PrinterStatus) -> str:
        for level in self.levels(status):
            if level.kind == "ribbon" and level.type:
                return level.type.upper()
        return "YMCKO"

    def card_use(self, status: PrinterStatus, stock: str | None, sides: int | None) -> CardUse:
        """What one card of `sides` sides takes: one blank, ribbon prints, film panels."""
        sides = sides or 1
        per = RIBBON_USE.get(self.ribbon_type(status), "side")
        return CardUse(stock=stock, sides=sides, ribbon=sides if per == "side" else 1,
                       film=sides if self.uses_film else 0)

    def shortage(self, status: PrinterStatus, use: CardUse,
                 ahead: CardUse | None = None) -> str | None:
        """Why this card cannot start with what is left, or None when it can; `ahead` is
        a card in the printer before it, which the counts may not show used yet."""
        needs = {"cards": 1, "ribbon": use.ribbon, "film": use.film}
        if ahead is not None:
            needs = {"cards": 2, "ribbon": use.ribbon + ahead.ribbon,
                     "film": use.film + ahead.film}
        for level in self.levels(status):
            need = needs[level.kind]
            if level.remaining is not None and need and level.remaining < need:
                what = labels.consumable(level.kind)
                left, advice = amount(level.remaining, level.unit), load_advice(level.kind)
                if not use.sides:
                    return _("{what} short: {amount} left, the next card needs {need}; "
                             "{advice}").format(what=what, amount=left, need=need,
                                                advice=advice)
                return _("{what} short: {amount} left, the next {sides}-sided card needs "
                         "{need}; {advice}").format(what=what, amount=left, sides=use.sides,
                                                    need=need, advice=advice)
        return None

    # ---------------------------------------------------------------- observing

    def observe(self, status: PrinterStatus) -> None:
        """Start counting what the printer reads, and notice a roll or box it reports new.

        The first reading of a level the agent does not count yet becomes its starting
        count (a load by `agent`); a ribbon or film reading that jumps up above the last
        reading and the agent's count, or a roll serial other than the recorded roll's, is a
        new roll loaded without telling the agent, recorded as a load by `printer`. Blanks
        are never recorded that way: every blank the station was given is loaded by a
        person who says so, and a feeder holding more than was recorded fails `ledger
        --check`.
        """
        counted: dict[str, Counted] | None = None
        for level in status.consumables:
            if level.remaining is None or level.kind not in KINDS:
                continue
            with self._lock:
                last = self._last_read.get(level.kind)
                self._last_read[level.kind] = level.remaining
            swapped = level.kind != "cards" and self.journal.cards.roll_read(
                level.kind, level.serial, level.lot) == "new"
            if last is not None and level.remaining <= last and not swapped:
                continue  # the usual case, a card later: nothing to record
            counted = counted if counted is not None else self.journal.cards.counted_stock()
            mine = counted.get(level.kind)
            roll = RollId(level.serial, level.lot)
            if mine is None:
                self.journal.cards.load(
                    kind=level.kind, type_=level.type, capacity=level.capacity,
                    amount=level.remaining, add=False, who="agent", roll=roll,
                    note="read from the printer when the agent first saw it")
            elif level.kind != "cards" and (swapped or (
                    last is not None and level.remaining > max(last, mine.remaining))):
                self.journal.cards.load(
                    kind=level.kind, type_=level.type or mine.type, capacity=level.capacity,
                    amount=level.remaining, add=False, who="printer", roll=roll,
                    left_read=last,
                    note="the printer reports a new roll, loaded without `printstation load`")

    # ------------------------------------------------------------------ loading

    def load(self, kind: str, *, type_: str | None, capacity: int | None,
             count: int | None, who: str, roll: RollId | None = None) -> Counted:
        """An operator loaded a ribbon, a film roll or blanks; refuses the wrong kind."""
        if kind == "cards":
            return self._load_cards(type_, count, who)
        if kind not in ("ribbon", "film"):
            # TRANSLATORS: ribbon, film and cards are the words of the command, as typed
            raise LoadError(_("unknown consumable {kind}; load ribbon, film or cards").format(
                kind=repr(kind)))
        if kind == "ribbon":
            type_ = (type_ or "").upper()
            if not type_:
                raise LoadError(_("say the ribbon's type (--type); this printer takes "
                                  "{types}").format(types=", ".join(self.ribbon_types)))
            if type_ not in self.ribbon_types:
                raise LoadError(_("this printer cannot use a {type} ribbon; it takes "
                                  "{types}").format(type=type_,
                                                    types=", ".join(self.ribbon_types)))
        elif not self.uses_film:
            raise LoadError(_("this printer prints direct to card and uses no film"))
        if not capacity or capacity <= 0:
            raise LoadError(_("say the {roll}'s capacity in {unit} (the number on its "
                              "box)").format(roll=_(ROLL_NAMES[kind]),
                                             unit=unit_name(UNITS[kind])))
        left = capacity if count is None else count
        if not 0 <= left <= capacity:
            raise LoadError(_("remaining {left} must be between 0 and the capacity "
                              "{capacity}").format(left=left, capacity=capacity))
        with self._lock:
            read = self._last_read.get(kind)  # what the printer last read on the roll going
        return self.journal.cards.load(kind=kind, type_=type_ or "retransfer",
                                       capacity=capacity, amount=left, add=False, who=who,
                                       note=f"{kind} loaded", roll=roll, left_read=read)

    def _load_cards(self, stock: str | None, count: int | None, who: str) -> Counted:
        stock = stock or self.default_stock
        if stock not in self.stocks:
            raise LoadError(_("no job at this station asks for {stock} blanks; it prints "
                              "{stocks}").format(stock=repr(stock),
                                                 stocks=", ".join(self.stocks)))
        if count is None or count <= 0:
            raise LoadError(_("say how many blanks were put in the feeder (--count)"))
        held = self.journal.cards.counted_stock().get("cards")
        if held and held.remaining > 0 and held.type and held.type != stock:
            raise LoadError(ngettext(
                "the feeder still holds {n} {stock} blank; take it out and record it with "
                "`printstation unload cards --count {n} --why ...` before loading {new}",
                "the feeder still holds {n} {stock} blanks; take them out and record it with "
                "`printstation unload cards --count {n} --why ...` before loading {new}",
                held.remaining).format(n=held.remaining, stock=held.type, new=stock))
        return self.journal.cards.load(kind="cards", type_=stock, capacity=None, amount=count,
                                       add=True, who=who, note="blanks added to the feeder")

    def unload(self, count: int, who: str, why: str) -> list[int]:
        """Blanks taken out of the feeder unprinted; returns their card numbers."""
        if count <= 0:
            raise LoadError(_("say how many blanks were taken out of the feeder (--count)"))
        try:
            return self.journal.cards.removed(count, who, why)
        except ValueError as exc:
            raise LoadError(str(exc)) from None

    def correct(self, kind: str, remaining: int, who: str, why: str) -> Counted:
        """The operator says what is really left on the roll in the printer."""
        if kind not in ("ribbon", "film"):
            raise LoadError(_("only a ribbon or film count is corrected; blanks are added "
                              "with `printstation load cards` and taken out with "
                              "`printstation unload cards`"))
        mine = self.journal.cards.counted_stock().get(kind)
        if mine is None:
            raise LoadError(_("no {roll} is recorded yet: record it with `printstation load "
                              "{kind}`").format(roll=_(ROLL_NAMES[kind]), kind=kind))
        if remaining < 0 or (mine.capacity is not None and remaining > mine.capacity):
            raise LoadError(_("remaining {remaining} must be between 0 and the roll's "
                              "capacity {capacity}; a new roll is recorded with `printstation "
                              "load {kind}`").format(remaining=remaining,
                                                     capacity=mine.capacity, kind=kind))
        return self.journal.cards.correct(kind=kind, remaining=remaining, who=who, why=why)

    def stock_change(self, kind: str, counted: Counted, *, removed: int = 0,
                     added: int = 0, roll: RollId | None = None) -> StockChange:
        """What the printer is told of an operator's record (a simulator makes it so)."""
        roll = roll or RollId()
        if kind == "cards":
            return StockChange(kind="cards", change="removed" if removed else "loaded",
                               amount=removed or added, type=counted.type,
                               expected=counted.remaining)
        return StockChange(kind=kind, change="loaded",  # type: ignore[arg-type]
                           amount=counted.remaining, type=counted.type,
                           capacity=counted.capacity, serial=roll.serial, lot=roll.lot,
                           expected=counted.remaining)


def load_advice(kind: str) -> str:
    """What to do when `kind` runs out, naming the command that records it."""
    if kind == "ribbon":
        return _("load a new ribbon, then record it with `printstation load ribbon`")
    if kind == "film":
        return _("load a new film roll, then record it with `printstation load film`")
    return _("put blanks in the feeder, then record them with `printstation load cards`")


def correct_advice(kind: str) -> str:
    """How an operator puts the agent's count right, once they have looked."""
    if kind == "cards":
        return _("count the blanks in the feeder; record blanks taken out with `printstation "
                 "unload cards --count N --why ...`, blanks put in with `printstation load "
                 "cards --count N`")
    return _("check the {roll}; if the printer holds the roll last recorded, correct the "
             "count with `printstation correct {kind} --remaining N --why ...`, else record "
             "the roll with `printstation load {kind}`").format(roll=_(ROLL_NAMES[kind]),
                                                               kind=kind)
