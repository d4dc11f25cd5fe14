"""The card side of vsmartcard-vpcd's protocol: a simulated chip seen by a real pcscd.

vpcd is a pcscd reader driver that listens on a TCP port; the "card" is the client. Each
message either way is a 2-byte big-endian length and a payload. From vpcd the payload is one
control byte (0 power off, 1 power on, 2 reset, 4 get ATR: answered with the ATR) or an APDU
(answered with the response APDU). A connected card is present; a closed connection is a
removed card. pcscd asks for the ATR every 400 ms to see whether a card is there, so the card
must answer at any time: one thread owns the socket and does nothing else.

vpcd writes the length and the payload in two send() calls; a client that does not set
TCP_QUICKACK after each receive waits for the delayed ACK (~40 ms) on every APDU.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time

from printstation.simulator.chip import Chip

#: vpcd's first reader ("Virtual PCD 00 00"); the second listens on the next port.
DEFAULT_PORT = 35963
POWER_OFF, POWER_ON, RESET, GET_ATR = 0, 1, 2, 4


class VpcdCard:
    """A card slot in front of one vpcd reader: `insert(chip)` presents a chip, `remove()` takes
    it away. The link thread connects, answers and disconnects; callers only say what they
    want, so the socket has one owner."""

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT):
        self.host, self.port = host, port
        self._wanted: Chip | None = None
        self._connected: Chip | None = None
        self._closing = False
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name=f"vpcd-{port}", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> Chip | None:
        """The chip vpcd is talking to now (None while none is connected)."""
        return self._connected

    def insert(self, chip: Chip) -> None:
        """Put a card with `chip` at the reader (replacing any card there). A card without a
        chip (ChipFault.ABSENT) is never connected: the reader sees no card."""
        self._want(chip if chip.present else None)

    def remove(self) -> None:
        self._want(None)

    def close(self) -> None:
        with self._lock:
            self._closing = True
        self._wake()
        self._thread.join(timeout=10)
        self._wake_r.close()
        self._wake_w.close()

    def _want(self, chip: Chip | None) -> None:
        with self._lock:
            self._wanted = chip
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"!")

    def _desired(self) -> tuple[bool, Chip | None]:
        with self._lock:
            return self._closing, self._wanted

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self._wake_r.setblocking(False)
            while self._wake_r.recv(64):
                pass

    def _run(self) -> None:
        while True:
            self._drain_wake()
            closing, chip = self._desired()
            if closing:
                return
            if chip is None:
                select.select([self._wake_r], [], [])
                continue
            sock = self._connect()
            if sock is None:   # vpcd not listening yet: try again soon, or when told
                select.select([self._wake_r], [], [], 0.1)
                continue
            chip.power()
            self._connected = chip
            try:
                self._serve(sock, chip)
            finally:
                self._connected = None
                sock.close()

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=2)
        except OSError:
            return None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _serve(self, sock: socket.socket, chip: Chip) -> None:
        """Answer vpcd until the card is removed or replaced, the chip falls mute, or vpcd
        goes away."""
        while True:
            ready, _, _ = select.select([sock, self._wake_r], [], [])
            if self._wake_r in ready:
                self._drain_wake()
                closing, wanted = self._desired()
                if closing or wanted is not chip:
                    return
            if sock not in ready:
                continue
            message = _receive(sock)
            if message is None:
                return
            if len(message) == 1:
                answer = self._control(message[0], chip)
            else:
                if chip.delay and not self._still_wanted_after(chip, chip.delay):
                    return     # removed while it was slowly answering
                answer = chip.respond(message)
                if answer is None:
                    return     # mute: gone from the field
            if answer is not None:
                sock.sendall(struct.pack(">H", len(answer)) + answer)

    def _still_wanted_after(self, chip: Chip, seconds: float) -> bool:
        """Wait `seconds` (a slow chip) unless the card is removed, replaced or closed."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if select.select([self._wake_r], [], [], left)[0]:
                self._drain_wake()
                closing, wanted = self._desired()
                if closing or wanted is not chip:
                    return False
        return True

    @staticmethod
    def _control(code: int, chip: Chip) -> bytes | None:
        if code == GET_ATR:
            return chip.atr
        if code in (POWER_OFF, POWER_ON, RESET):
            chip.power()
        return None


def _receive(sock: socket.socket) -> bytes | None:
    """One vpcd message, or None when vpcd closed the connection."""
    header = _exactly(sock, 2)
    if header is None:
        return None
    return _exactly(sock, struct.unpack(">H", header)[0])


def _exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except OSError:
            return None
        # Quick ACK is cleared by the kernel after use: set it after every receive.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        if not chunk:
            return None
        data += chunk
    return data
