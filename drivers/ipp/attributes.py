"""What a CUPS queue or an IPP printer says, in the agent's words: the language half of the
IPP driver (the transport, pycups, moves the requests; this reads the answers).

Sources: RFC 8011 §5.4.11-12 (`printer-state`, `printer-state-reasons` and their `-report`,
`-warning` and `-error` suffixes), §5.3.7 (`job-state`), PWG 5100.9 (more reason keywords),
RFC 3805's conventions for marker levels (CUPS's `marker-levels`: 0-100, or -1 unavailable,
-2 unknown, -3 "some remaining"). The facts verified on this kind of machine are in the
project's printer notes; the tests run every mapping against CUPS and `ippeveprinter`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

from ..base import ConsumableLevel, FaultCode


class PrinterState(IntEnum):
    """`printer-state` (RFC 8011 §5.4.11)."""

    IDLE = 3
    PROCESSING = 4
    STOPPED = 5


class JobState(IntEnum):
    """`job-state` (RFC 8011 §5.3.7): 7, 8 and 9 are final."""

    PENDING = 3
    PENDING_HELD = 4
    PROCESSING = 5
    PROCESSING_STOPPED = 6
    CANCELED = 7
    ABORTED = 8
    COMPLETED = 9

    @property
    def final(self) -> bool:
        return self >= JobState.CANCELED


#: Reason keywords (without their suffix) that are faults an operator clears, by fault.
REASON_FAULTS: Mapping[str, FaultCode] = {
    "media-jam": FaultCode.JAM,
    "input-tray-missing": FaultCode.FEEDER_EMPTY,
    "media-empty": FaultCode.FEEDER_EMPTY,
    "media-needed": FaultCode.FEEDER_EMPTY,
    "cover-open": FaultCode.COVER_OPEN,
    "door-open": FaultCode.COVER_OPEN,
    "interlock-open": FaultCode.COVER_OPEN,
    "marker-supply-empty": FaultCode.RIBBON_OUT,
    "marker-supply-missing": FaultCode.RIBBON_OUT,
    "toner-empty": FaultCode.RIBBON_OUT,
    "output-area-full": FaultCode.HOPPER_FULL,
    "offline": FaultCode.OFFLINE,
    "shutdown": FaultCode.OFFLINE,
    "connecting-to-device": FaultCode.OFFLINE,
    "timed-out": FaultCode.OFFLINE,
}
#: Suffixes of reason keywords (RFC 8011 §5.4.12): only `-error` (or none) stops printing.
_SUFFIXES = ("-error", "-warning", "-report")


def reason_keyword(reason: str) -> tuple[str, str]:
    """(keyword, severity) of one `printer-state-reasons` value: `media-jam-error` →
    (`media-jam`, `error`); a value without a suffix is an error (RFC 8011 §5.4.12)."""
    for suffix in _SUFFIXES:
        if reason.endswith(suffix):
            return reason[: -len(suffix)], suffix[1:]
    return reason, "error"


def faults(state: int | None, reasons: Sequence[str]) -> tuple[FaultCode, ...]:
    """The faults in a printer's state and reasons.

    A keyword that names a fault is one whatever its suffix: printers and CUPS differ in
    using them (ippeveprinter says `media-jam-warning` while it prints and
    `media-jam-report` when idle; RFC 8011 would have `-error` stop the printer). A CUPS
    queue relays its printer's reasons only while a job runs and keeps the last ones after
    it, so an idle queue's reasons are stale: they are not faults (the next card finds out,
    and holds while the printer is stopped). The `-low` and `-near-empty` warnings are not
    faults either (the levels say how low). An `-error` reason no rule names is `other`, and
    so is a stopped printer that names none.
    """
    found: set[FaultCode] = set()
    if state != PrinterState.IDLE:
        for reason in reasons:
            keyword, severity = reason_keyword(reason)
            if keyword in ("none", "cups-waiting-for-job-completed") or \
                    keyword.endswith(("-low", "-near-empty")):
                continue
            if keyword in ("paused", "moving-to-paused"):
                found.add(FaultCode.OFFLINE)  # a queue an administrator stopped
            elif keyword in REASON_FAULTS:
                found.add(REASON_FAULTS[keyword])
            elif severity == "error":
                found.add(FaultCode.OTHER)
    if state == PrinterState.STOPPED and not found:
        found.add(FaultCode.OTHER)
    return tuple(sorted(found))


#: Which marker is which consumable: by `marker-types` (RFC 3805 prtMarkerSuppliesType,
#: as CUPS spells them), else by a word in `marker-names`.
RIBBON_TYPES = frozenset({"ink-ribbon", "wax-ribbon", "ribbon", "toner", "ink", "ink-cartridge"})
FILM_TYPES = frozenset({"transfer-unit", "transfer-roller", "film"})


@dataclass(frozen=True)
class Marker:
    """One of a printer's markers as CUPS reports it: its level in percent, or None when the
    printer cannot say (RFC 3805: -1 unavailable, -2 unknown, -3 some remaining)."""

    name: str
    type: str
    level: int | None
    kind: Literal["ribbon", "film"] | None


def markers(attrs: Mapping[str, Any]) -> list[Marker]:
    """The markers in a printer's attributes, each named as ribbon, film or neither: CUPS's
    `marker-*`, else an IPP Everywhere printer's `printer-supply` (PWG 5100.13)."""
    names = _as_list(attrs.get("marker-names"))
    types = _as_list(attrs.get("marker-types"))
    levels = _as_list(attrs.get("marker-levels"))
    if not names and attrs.get("printer-supply"):
        names, types, levels = _from_supplies(attrs)
    found = []
    for i, name in enumerate(names):
        kind_of = str(types[i]) if i < len(types) else ""
        raw = levels[i] if i < len(levels) else -2
        level = raw if isinstance(raw, int) and 0 <= raw <= 100 else None
        lowered = f"{name} {kind_of}".lower()
        kind: Literal["ribbon", "film"] | None = None
        if "lamin" in lowered or "overlay" in lowered:
            kind = None  # a laminate or overlay roll is neither the ribbon nor the film
        elif kind_of in FILM_TYPES or "film" in lowered or "retransfer" in lowered:
            kind = "film"
        elif kind_of in RIBBON_TYPES or "ribbon" in lowered:
            kind = "ribbon"
        found.append(Marker(str(name), kind_of, level, kind))
    return found


def levels(found: Sequence[Marker], rated: Mapping[str, int]) -> tuple[ConsumableLevel, ...]:
    """Ribbon and film levels read from the printer, in prints or panels.

    IPP gives percentages; the agent counts prints. With a roll's rated yield (`rated`,
    from the printer URL) a percentage becomes a number of prints left; without one, or
    for a level the printer cannot say, the level is reported with `remaining` None, which
    the agent shows as unknown and never takes for a count.
    """
    out = []
    seen: set[str] = set()
    for marker in found:
        # One level per kind, the first marker's: the agent keeps one reading per kind, and
        # two ribbon markers read in turn would look like a roll changed at every poll.
        if marker.kind is None or marker.kind in seen:
            continue
        seen.add(marker.kind)
        unit: Literal["prints", "panels"] = "prints" if marker.kind == "ribbon" else "panels"
        capacity = rated.get(marker.kind)
        remaining = None
        if capacity is not None and marker.level is not None:
            remaining = round(capacity * marker.level / 100)
        out.append(ConsumableLevel(marker.kind, marker.name, capacity, remaining, unit))
    return tuple(out)


def _from_supplies(attrs: Mapping[str, Any]) -> tuple[list, list, list]:
    """`printer-supply` values (`type=ribbonWax;unit=percent;level=45;...`) and their
    `printer-supply-description`s as marker names, types and levels in percent."""
    supplies = _as_list(attrs.get("printer-supply"))
    described = _as_list(attrs.get("printer-supply-description"))
    names, types, levels = [], [], []
    for i, raw in enumerate(supplies):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        fields = dict(item.partition("=")[::2] for item in text.split(";") if "=" in item)
        level, most = _int(fields.get("level")), _int(fields.get("maxcapacity"))
        if level is not None and level >= 0 and fields.get("unit") != "percent" and most:
            level = round(100 * level / most) if most > 0 else None
        names.append(str(described[i]) if i < len(described) else fields.get("type", "supply"))
        types.append(_SUPPLY_TYPES.get(fields.get("type", ""), fields.get("type", "")))
        levels.append(level if level is not None else -2)
    return names, types, levels


#: PWG 5100.13 supply types (camel case) as CUPS's marker types.
_SUPPLY_TYPES = {"ribbonWax": "wax-ribbon", "inkRibbon": "ink-ribbon", "toner": "toner",
                 "ink": "ink", "transferUnit": "transfer-unit", "film": "film"}


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
