"""The `apdu-script/1` chip profile (contract v2 §3): parsed once, for intake and encoders.

It lives with the drivers, the lowest layer, so that the contract (which refuses a job whose
script cannot run) and the encoders (which run it) share this one parser without the drivers
importing the agent. A script is UTF-8 JSON
`{"commands": [{"apdu": "<hex>", "expect": ["9000", ...]}, ...]}`: each APDU is sent in
order and must answer one of its expected status words. The bytes are personal data: no
message here ever quotes them, only the command's index.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from .encoder import ChipSection, EncodeResult
from .errors import EncoderError, PrintstationError

APDU_SCRIPT_PROFILE = "apdu-script/1"


def _hex(text: object) -> bytes | None:
    """The bytes `text` spells in hex digits only, or None. `bytes.fromhex` does the work
    (a regex first doubled the time of a 40-command script); the length check refuses the
    spaces it would skip."""
    if not isinstance(text, str):
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    return raw if len(raw) * 2 == len(text) else None


@dataclass(frozen=True)
class ApduStep:
    """One command of an `apdu-script/1` profile and the status words it may answer."""

    apdu: bytes = field(repr=False)
    expect: tuple[bytes, ...]


def apdu_script(raw: bytes) -> list[ApduStep]:
    """Parse `apdu-script/1` data; ValueError naming the problem (never the APDU bytes)."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("chip.data for apdu-script/1 is not UTF-8 JSON") from None
    commands = doc.get("commands") if isinstance(doc, dict) else None
    if not isinstance(commands, list) or not commands:
        raise ValueError('chip.data for apdu-script/1 needs a non-empty "commands" list')
    if set(doc) - {"commands"}:
        raise ValueError('chip.data for apdu-script/1 holds only "commands"')
    steps = []
    for i, cmd in enumerate(commands):
        if not isinstance(cmd, dict) or set(cmd) - {"apdu", "expect"}:
            raise ValueError(f"chip command {i}: an object with apdu and expect")
        apdu, expect = _hex(cmd.get("apdu")), cmd.get("expect")
        if apdu is None or len(apdu) < 4:
            raise ValueError(f"chip command {i}: apdu must be hex, at least 4 bytes")
        words = tuple(_hex(sw) for sw in expect) if isinstance(expect, list) else ()
        if not words or any(sw is None or len(sw) != 2 for sw in words):
            raise ValueError(f"chip command {i}: expect must list status words such as 9000")
        steps.append(ApduStep(apdu, words))  # type: ignore[arg-type]
    return steps


# ------------------------------------------------------------------------ running a script
# Every encoder that speaks APDUs (PC/SC, the simulator's own) runs a script the same way.

#: GET DATA for the UID (PC/SC part 3), answered by the reader for any contactless card.
GET_UID = bytes.fromhex("FFCA000000")
OK = b"\x90\x00"

#: Sends one APDU, returns (response data, status word); raises ChipSilent if the chip is gone.
Transmit = Callable[[bytes], tuple[bytes, bytes]]


class ChipSilent(PrintstationError):
    """The chip stopped answering (removed, dead): the card's fault, not the reader's.

    It never leaves an encoder: the step it stopped at becomes an `encode_failed` result.
    """

    code = "chip_silent"


def read_uid(transmit: Transmit) -> str | None:
    """The chip's UID in lower-case hex (as contract v2 §4 spells it), or None if it gave none."""
    try:
        data, sw = transmit(GET_UID)
    except ChipSilent:
        return None
    return data.hex() if sw == OK and data else None


def run_script(steps: Sequence[ApduStep], transmit: Transmit) -> str | None:
    """Send each step in order; None when every answer was expected, else why not (by index).

    The reason names the step and the status word (an ISO 7816 code, not chip data), never
    the command or the answer's data.
    """
    for i, step in enumerate(steps):
        try:
            _, sw = transmit(step.apdu)
        except ChipSilent:
            return f"the chip stopped answering at command {i}"
        if sw not in step.expect:
            expected = ", ".join(s.hex().upper() for s in step.expect)
            return f"command {i} answered {sw.hex().upper()}, expected {expected}"
    return None


def prepared_steps(chip: ChipSection) -> ChipSection:
    """An encoder's `prepare` for `apdu-script/1`: the script parsed ahead of the card's turn
    (a section that does not parse is left for `encode` to refuse)."""
    if chip.profile != APDU_SCRIPT_PROFILE or chip.prepared is not None:
        return chip
    try:
        return replace(chip, prepared=apdu_script(chip.data))
    except ValueError:
        return chip


def script_steps(chip: ChipSection, encoder: str) -> list[ApduStep]:
    """The section's steps, parsed by `prepared_steps` or now; `EncoderError` when its
    profile is not `apdu-script/1` or its data does not parse (naming the step, not bytes)."""
    if chip.profile != APDU_SCRIPT_PROFILE:
        raise EncoderError("no_encoder", f"{chip.profile!r}; {encoder} takes "
                                         f"{APDU_SCRIPT_PROFILE}")
    if isinstance(chip.prepared, list):
        return chip.prepared
    try:
        return apdu_script(chip.data)
    except ValueError as exc:
        raise EncoderError("bad_chip_data", str(exc)) from None


def encode_steps(steps: Sequence[ApduStep], transmit: Transmit) -> EncodeResult:
    """Read the UID, then run the script: the chip's UID and success, or why it failed."""
    uid = read_uid(transmit)
    if uid is None:
        return EncodeResult.failed("the chip gave no UID (FF CA 00 00 00)")
    why = run_script(steps, transmit)
    return EncodeResult(uid=uid) if why is None else EncodeResult.failed(why, uid=uid)
