"""A simulated contactless chip, as data: its UID, its ATR and a small ISO 7816-4 file system.

Every blank of the simulated printer carries one. It answers short APDUs the way an e-KTP-like
chip and its PC/SC reader do, so the agent's encoder can be tested against it through a real
pcscd (simulator/vpcd.py presents it there). What a test compares with the script it sent is
`Chip.digest()`, the SHA-256 of the files' contents: the chip's contents themselves (personal
data) never leave it except through READ BINARY.

Two parts answer, as at a real station: the reader answers PC/SC pseudo-APDUs (class FF: GET
DATA for the UID it read at anticollision), the chip answers ISO ones (class 00). So a dead or
wrong chip still gives its UID, and the card can be registered as spoiled by it.

Only short APDUs (ISO 7816-4 §5.1, Lc and Le of one byte) are understood; an extended-length
one is answered 6700, as a chip without extended length does.
"""

from __future__ import annotations

import enum
import hashlib
import threading
from collections.abc import Iterable, Mapping

#: The master file and the one application DF, and the EFs under it with their fixed sizes
#: (8 KB in all, as an e-KTP's biodata, photo, signature and two fingerprint minutiae).
MF = 0x3F00
DF = 0x7F10
EF_SIZES: Mapping[int, int] = {
    0x0101: 1024,   # biodata
    0x0102: 4096,   # photo
    0x0103: 1024,   # signature
    0x0104: 1024,   # fingerprint minutiae, first finger
    0x0105: 1024,   # fingerprint minutiae, second finger
}
#: The answer to reset a PC/SC reader builds for an ISO 14443-4 card without historical bytes
#: (PC/SC part 3 §3.1.3.2.3.1): TS 3B, T0 80, TD1 80, TD2 01 (T=1), TCK 01.
ATR = bytes.fromhex("3B80800101")
#: A UID's first byte: the manufacturer (ISO 14443-3 double-size UIDs begin with its code).
MANUFACTURER = 0x04

OK = b"\x90\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_NO_CURRENT_EF = b"\x69\x86"
SW_FUNCTION_NOT_SUPPORTED = b"\x6a\x81"
SW_FILE_NOT_FOUND = b"\x6a\x82"
SW_NOT_ENOUGH_SPACE = b"\x6a\x84"
SW_WRONG_P1P2 = b"\x6b\x00"
SW_INS_NOT_SUPPORTED = b"\x6d\x00"
SW_CLA_NOT_SUPPORTED = b"\x6e\x00"
SW_NO_DIAGNOSIS = b"\x6f\x00"
SW_END_OF_FILE = b"\x62\x82"
#: What a chip answering wrong says instead of 9000 (and says 9000 instead of an error).
SW_WRONG_ANSWER = b"\x6a\x80"


class ChipFault(enum.Enum):
    """What can be wrong with a blank's chip (the simulator's `chip_fault` setting)."""

    NONE = "none"
    #: No chip in the card: never present at the reader.
    ABSENT = "absent"
    #: Present (ATR, UID) but every ISO command answers 6F00.
    DEAD = "dead"
    #: Present (ATR, UID) but it falls silent at its first ISO command (lost from the field).
    MUTE = "mute"
    #: Does what it is told but reports 6A80 for success and 9000 for an error.
    WRONG = "wrong"
    #: Answers correctly, after `Chip.delay` seconds per APDU.
    SLOW = "slow"


def uid_for(serial: str, number: int) -> bytes:
    """The 7-byte UID of blank `number` in the printer `serial`: its own, and the same each run."""
    return bytes([MANUFACTURER]) + hashlib.sha256(f"{serial}:{number}".encode()).digest()[:6]


def blank_files() -> dict[int, bytearray]:
    """The EFs of a chip as it leaves the factory: every byte 00."""
    return {fid: bytearray(size) for fid, size in EF_SIZES.items()}


def contents_digest(files: Mapping[int, bytes]) -> str:
    """SHA-256 (hex) of the EFs' contents in file id order, each preceded by its id (2 bytes)."""
    digest = hashlib.sha256()
    for fid in sorted(files):
        digest.update(fid.to_bytes(2, "big"))
        digest.update(bytes(files[fid]))
    return digest.hexdigest()


def digest_of_writes(writes: Iterable[tuple[int, int, bytes]]) -> str:
    """The digest a blank chip has after UPDATE BINARY of each (file id, offset, data): what a
    test computes from its script to compare with `Chip.digest()`."""
    files = blank_files()
    for fid, offset, data in writes:
        files[fid][offset:offset + len(data)] = data
    return contents_digest(files)


class Chip:
    """One card's chip. `respond` is called by one thread at a time (the card's link); the lock
    lets a test read the digest while the link is answering."""

    def __init__(self, uid: bytes, *, fault: ChipFault = ChipFault.NONE, delay: float = 0.0,
                 atr: bytes = ATR):
        if len(uid) != 7:
            raise ValueError(f"a chip's UID has 7 bytes, not {len(uid)}")
        self.uid = uid
        self.atr = atr
        self.fault = fault
        #: Seconds the link waits before each answer (a SLOW chip; 0 otherwise).
        self.delay = delay if fault is ChipFault.SLOW else 0.0
        self._files = blank_files()
        self._current_df: int | None = None
        self._current_ef: int | None = None
        self._lock = threading.Lock()

    @property
    def present(self) -> bool:
        """False for a card without a chip: the reader never sees it."""
        return self.fault is not ChipFault.ABSENT

    def digest(self) -> str:
        with self._lock:
            return contents_digest(self._files)

    def power(self) -> None:
        """Power on, off or reset: the chip forgets what was selected."""
        with self._lock:
            self._current_df = self._current_ef = None

    def respond(self, apdu: bytes) -> bytes | None:
        """The response APDU to `apdu` (data and status word), or None when the chip is mute."""
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        if apdu[0] == 0xFF:
            return self._reader(apdu)
        if self.fault is ChipFault.MUTE:
            return None
        if self.fault is ChipFault.DEAD:
            return SW_NO_DIAGNOSIS
        with self._lock:
            answer = self._iso(apdu)
        if self.fault is ChipFault.WRONG:
            wrong = SW_WRONG_ANSWER if answer[-2:] == OK else OK
            answer = answer[:-2] + wrong
        return answer

    def _reader(self, apdu: bytes) -> bytes:
        """PC/SC part 3 pseudo-APDUs, answered by the reader: GET DATA (P1 00: the UID)."""
        ins, p1, p2 = apdu[1], apdu[2], apdu[3]
        if ins != 0xCA:
            return SW_INS_NOT_SUPPORTED
        if (p1, p2) != (0, 0):
            return SW_FUNCTION_NOT_SUPPORTED
        if len(apdu) != 5:
            return SW_WRONG_LENGTH
        le = apdu[4] or 256
        if le < len(self.uid) and apdu[4] != 0:
            return b"\x6c" + bytes([len(self.uid)])
        return self.uid + OK

    def _iso(self, apdu: bytes) -> bytes:
        cla, ins = apdu[0], apdu[1]
        if cla != 0x00:
            return SW_CLA_NOT_SUPPORTED
        handler = {0xA4: self._select, 0xB0: self._read, 0xD6: self._update}.get(ins)
        if handler is None:
            return SW_INS_NOT_SUPPORTED
        body = apdu[4:]
        if body[:1] == b"\x00" and len(body) > 1:
            return SW_WRONG_LENGTH   # extended length: not supported
        return handler(apdu[2], apdu[3], body)

    def _select(self, p1: int, p2: int, body: bytes) -> bytes:
        """SELECT by file id (P1 00, 01 or 02); P2 0C answers no FCP, P2 00 a short one."""
        if p1 not in (0x00, 0x01, 0x02) or p2 not in (0x00, 0x0C):
            return SW_WRONG_P1P2
        data = _command_data(body)
        if data is None or len(data) != 2:
            return SW_WRONG_LENGTH
        fid = int.from_bytes(data, "big")
        if fid in (MF, DF) and p1 != 0x02:
            self._current_df, self._current_ef = fid, None
            size = 0
        elif fid in self._files and self._current_df == DF and p1 in (0x00, 0x02):
            self._current_ef = fid
            size = len(self._files[fid])
        else:
            return SW_FILE_NOT_FOUND
        if p2 == 0x0C:
            return OK
        fcp = b"\x80\x02" + size.to_bytes(2, "big") + b"\x83\x02" + data
        return b"\x62" + bytes([len(fcp)]) + fcp + OK

    def _read(self, p1: int, p2: int, body: bytes) -> bytes:
        """READ BINARY at offset P1P2 (15 bits) of the current EF; Le 00 means 256."""
        if p1 & 0x80:
            return SW_FUNCTION_NOT_SUPPORTED   # short EF ids are not kept
        if len(body) != 1:
            return SW_WRONG_LENGTH
        if self._current_ef is None:
            return SW_NO_CURRENT_EF
        content = self._files[self._current_ef]
        offset, wanted = (p1 << 8) | p2, body[0] or 256
        if offset >= len(content):
            return SW_WRONG_P1P2
        data = bytes(content[offset:offset + wanted])
        return data + (OK if len(data) == wanted else SW_END_OF_FILE)

    def _update(self, p1: int, p2: int, body: bytes) -> bytes:
        """UPDATE BINARY of Lc bytes at offset P1P2 of the current EF."""
        if p1 & 0x80:
            return SW_FUNCTION_NOT_SUPPORTED
        data = _command_data(body)
        if not data:
            return SW_WRONG_LENGTH
        if self._current_ef is None:
            return SW_NO_CURRENT_EF
        content = self._files[self._current_ef]
        offset = (p1 << 8) | p2
        if offset >= len(content):
            return SW_WRONG_P1P2
        if offset + len(data) > len(content):
            return SW_NOT_ENOUGH_SPACE
        content[offset:offset + len(data)] = data
        return OK


def _command_data(body: bytes) -> bytes | None:
    """The data of a case 3 or 4 short APDU (Lc, data, optional Le), or None if Lc is wrong."""
    if not body:
        return None
    lc = body[0]
    if lc == 0 or len(body) not in (1 + lc, 2 + lc):
        return None
    return body[1:1 + lc]
