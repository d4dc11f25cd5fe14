"""`pcsc://`: the built-in chip encoder, for a PC/SC reader through pcscd, with pyscard.

It runs the `apdu-script/1` profile (contract v2 §3): it waits for the card the printer
parked at the reader, reads the chip's UID with GET DATA (`FF CA 00 00 00`), then sends each
APDU of the script in order and checks each answer's status word against the expected ones.
A chip that is absent, does not power up, gives no UID or answers wrong spoils the card
(`encode_failed`, naming the step by its index); a reader or pcscd that cannot be reached is
an `EncoderError`, since no card can be encoded until someone fixes it.

URL: `pcsc://?reader=NAME&timeout=SECONDS` (NAME percent-encoded, e.g.
`pcsc://?reader=Virtual%20PCD%2000%2000`; without it, the only connected reader). The
printer may name the reader itself (`ParkedCard.reader`), which then wins. pyscard is
imported only when a card is encoded, so a station without chips does not need it.
"""

from __future__ import annotations

import contextlib
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .apdu_script import (
    APDU_SCRIPT_PROFILE,
    ApduStep,
    ChipSilent,
    encode_steps,
    prepared_steps,
    script_steps,
)
from .encoder import ChipSection, Encoder, EncodeResult, ParkedCard
from .errors import EncoderError

DEFAULT_TIMEOUT = 5.0
INSTALL_HINT = "install pyscard (Debian: apt install python3-pyscard pcscd; or pip install pyscard)"


def _pyscard() -> SimpleNamespace:
    """pyscard's pieces, imported now: a missing pyscard is one line saying how to install it."""
    try:
        from smartcard.Exceptions import (
            CardConnectionException,
            NoCardException,
            SmartcardException,
        )
        from smartcard.pcsc.PCSCExceptions import BaseSCardException
        from smartcard.System import readers
    except ImportError:
        raise EncoderError("library_missing", INSTALL_HINT) from None
    return SimpleNamespace(
        readers=readers, NoCard=NoCardException,
        LinkFailed=CardConnectionException,
        Failure=(SmartcardException, BaseSCardException))


#: Seconds between connection attempts while pcscd still reports a card that left.
RETRY_CONNECT = 0.05


class PcscEncoder(Encoder):
    """Runs `apdu-script/1` on the card at a PC/SC reader; see the module docstring."""

    name = "pcsc"
    profiles = (APDU_SCRIPT_PROFILE,)

    def __init__(self, reader: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        self.reader = reader
        self.timeout = timeout
        #: The reader last found, by the name asked for: listing the readers costs a PC/SC
        #: context of its own (about 1.4 ms, a fifth of a card's 40 APDUs), so each card
        #: does not pay it; a failure to reach the reader finds it again.
        self._found: tuple[str | None, Any] | None = None

    @classmethod
    def from_url(cls, url: str) -> PcscEncoder:
        parts = urlsplit(url)
        if parts.scheme != "pcsc" or parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"encoder URL {url!r}: use pcsc://?reader=NAME (NAME URL-encoded)")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = set(query) - {"reader", "timeout"}
        if unknown:
            raise ValueError(f"encoder URL {url!r}: unknown parameter {sorted(unknown)[0]!r}; "
                             "known: reader, timeout")
        try:
            timeout = float(query.get("timeout", DEFAULT_TIMEOUT))
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= 600:
            raise ValueError(f"encoder URL {url!r}: timeout must be 0 to 600 seconds")
        return cls(query.get("reader") or None, timeout)

    def prepare(self, chip: ChipSection) -> ChipSection:
        return prepared_steps(chip)

    def encode(self, parked: ParkedCard, chip: ChipSection) -> EncodeResult:
        steps = script_steps(chip, self.name)
        sc = _pyscard()
        deadline = time.monotonic() + self.timeout
        try:
            wanted = parked.reader or self.reader
            if self._found is None or self._found[0] != wanted:
                self._found = (wanted, self._reader(sc, wanted))
            at = self._found[1]
            reader = str(at)
            # A fresh connection per attempt, until one powers the chip up: pcscd reports
            # a card that left for up to its 400 ms presence poll, sees a new one only at
            # its next poll, and powers it off and on around the connect. (pyscard's
            # CardRequest hands back a connection whose context it has released.)
            while True:
                conn = at.createConnection()
                try:
                    conn.connect()
                    break
                except (sc.NoCard, sc.LinkFailed):
                    self._found = None  # the reader may have gone: list them again
                    if time.monotonic() >= deadline:
                        # A reader that left is the station's fault, not the card's.
                        self._reader(sc, wanted)
                        return EncodeResult.failed(
                            f"no chip powered up at reader {reader!r} within "
                            f"{self.timeout:g} s (absent or dead)")
                    time.sleep(RETRY_CONNECT)
        except sc.Failure as exc:
            self._found = None  # pcscd may be back by the next card: find the reader again
            raise EncoderError("pcsc_unavailable", type(exc).__name__) from None
        return self._encode_card(sc, conn, steps)

    def check(self) -> None:
        """The reader is connected (found again whenever the last card could not reach it)."""
        if self._found is None:
            sc = _pyscard()
            try:
                self._found = (self.reader, self._reader(sc, self.reader))
            except sc.Failure as exc:
                raise EncoderError("pcsc_unavailable", type(exc).__name__) from None

    def _reader(self, sc: SimpleNamespace, wanted: str | None) -> Any:
        """The reader to wait at: the one named, else the only one connected (pyscard's
        reader object: listing the readers costs a PC/SC context, so it is done once)."""
        found = {str(r): r for r in sc.readers()}
        names = list(found)
        if wanted is not None:
            if wanted not in names:
                connected = ", ".join(repr(n) for n in names) or "none"
                raise EncoderError("no_reader", f"{wanted!r}; connected: {connected}")
            return found[wanted]
        if len(names) == 1:
            return found[names[0]]
        if not names:
            raise EncoderError("no_reader", "none is connected")
        raise EncoderError("reader_ambiguous",
                           "name one with pcsc://?reader=...; connected: "
                           + ", ".join(repr(n) for n in names))

    @staticmethod
    def _encode_card(sc: SimpleNamespace, conn, steps: list[ApduStep]) -> EncodeResult:
        """Read the UID and run the script on the connected card; the card is left after."""

        def transmit(apdu: bytes) -> tuple[bytes, bytes]:
            try:
                data, sw1, sw2 = conn.transmit(list(apdu))
            except (sc.NoCard, sc.LinkFailed):
                raise ChipSilent from None
            return bytes(data), bytes((sw1, sw2))

        try:
            return encode_steps(steps, transmit)
        finally:
            with contextlib.suppress(*sc.Failure):  # the card is leaving the reader anyway
                conn.disconnect()
