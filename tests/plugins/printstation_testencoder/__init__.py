"""A chip encoder that lives outside printstation, found only through its entry point.

It proves the encoder interface is pluggable, as a programme's own encoder (one that talks
to its SAM) would be: `testchip://NAME` takes the `test-blob/1` profile, makes each card's
UID from its number and keeps what it wrote in `WRITTEN` for tests to read; a blob that is
empty is a chip that answers wrong. A station named in `BROKEN` has lost its reader: `check`
says so, as a PC/SC encoder's does when the reader is unplugged. `NOT_AN_ENCODER` is
registered too, to be refused. A station in `FAILING` fails as a whole while a card is parked
(`EncoderError`), and one in `ODD` answers what no encoder should (a UID that is not hex, an
unknown fault, bytes for a detail), as a careless plug-in might.
"""

from __future__ import annotations

from printstation.drivers.encoder import ChipSection, Encoder, EncodeResult, ParkedCard
from printstation.drivers.errors import EncoderError

WRITTEN: dict[str, dict[str, bytes]] = {}
BROKEN: set[str] = set()
FAILING: set[str] = set()
ODD: set[str] = set()
NOT_AN_ENCODER = object()


class TestChipEncoder(Encoder):
    name = "testchip"
    profiles = ("test-blob/1",)

    def __init__(self, name: str):
        self.station = name
        WRITTEN.setdefault(name, {})

    @classmethod
    def from_url(cls, url: str) -> TestChipEncoder:
        return cls(url.partition("://")[2] or "default")

    def check(self) -> None:
        if self.station in BROKEN:
            raise EncoderError("no_reader", f"test reader {self.station!r} unplugged")

    def encode(self, parked: ParkedCard, chip: ChipSection) -> EncodeResult:
        if self.station in FAILING:
            raise EncoderError("no_reader", f"test reader {self.station!r} unplugged")
        if self.station in ODD:
            return EncodeResult(uid="not hex!", fault="weird", detail=b"\x00raw")  # type: ignore[arg-type]
        uid = f"04{parked.card_no:012X}"
        if not chip.data:
            return EncodeResult.failed("command 0 answered 6A80, expected 9000", uid=uid)
        WRITTEN[self.station][uid] = chip.data
        return EncodeResult(uid=uid)
