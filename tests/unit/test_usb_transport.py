"""The real UsbTransport, through pyusb, against the simulated Evolis USB printer.

Nothing of pyusb is mocked: `SimUsbBackend` is a pyusb backend whose bulk pipes are a TCP
connection, and `FakePrinter` below is the TCP end, answering each ESC ... CR command. So
enumeration, descriptors, string descriptors, kernel-driver detach, claiming and bulk
transfers all run through pyusb's own code, as they do with libusb and a real printer.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import usb.core
import usb.util

from printstation.drivers.errors import ReplyTimeout, TransportError
from printstation.drivers.evolis.protocol import SIM_USB_PRODUCT as SIM_PRODUCT
from printstation.drivers.evolis.protocol import USB_VENDOR as EVOLIS_VENDOR
from printstation.drivers.evolis.protocol import ReplyReader
from printstation.drivers.usb_transport import (
    ENV_BACKEND,
    UsbTransport,
    backend_from_env,
    parse_device_id,
)
from printstation.simulator.usb_backend import SimUsbBackend

pytestmark = pytest.mark.timeout(10)

ESC, CR = b"\x1b", b"\r"
SERIAL = "SIM-0001"


class FakePrinter:
    """TCP end of the simulated printer: 'OK' to every command, its serial to `Rsn`.

    `answer=False` makes a printer that takes commands and never replies. Every byte
    received (on any connection) is kept in `received`; every command goes to `commands`.
    """

    def __init__(self, port: int = 0, *, answer: bool = True, serial: str = SERIAL) -> None:
        self.answer, self.serial = answer, serial
        self.received = bytearray()
        self.commands: queue.Queue[bytes] = queue.Queue()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def unplug(self) -> None:
        """Stop listening and drop every connection: the simulated printer disappears."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._acceptor.join(timeout=2)
        self._listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        pending = b""
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.received += data
            *commands, pending = (pending + data).split(CR)
            for command in commands:
                self._reply(conn, command)

    def _reply(self, conn: socket.socket, command: bytes) -> None:
        self.commands.put(command)
        if not self.answer:
            return
        reply = self.serial.encode() if command == ESC + b"Rsn" else b"OK"
        with contextlib.suppress(OSError):
            conn.sendall(reply + b"\x00")


@pytest.fixture
def printer() -> Iterator[FakePrinter]:
    fake = FakePrinter()
    yield fake
    fake.unplug()


@pytest.fixture
def backend(printer: FakePrinter) -> SimUsbBackend:
    return SimUsbBackend("127.0.0.1", printer.port)


@pytest.fixture
def transport(backend: SimUsbBackend) -> Iterator[UsbTransport]:
    usb_transport = UsbTransport(EVOLIS_VENDOR, backend=backend)
    yield usb_transport
    usb_transport.close()


def ask(transport: UsbTransport, command: bytes, timeout: float = 2.0) -> bytes:
    transport.write(ESC + command + CR)
    return ReplyReader(transport).read(timeout)


@pytest.mark.parametrize("select", [{}, {"product": SIM_PRODUCT}, {"serial": SERIAL},
                                    {"product": SIM_PRODUCT, "serial": SERIAL}])
def test_open_finds_the_printer(backend: SimUsbBackend, select: dict) -> None:
    transport = UsbTransport(EVOLIS_VENDOR, backend=backend, **select)
    transport.open()
    try:
        assert transport.description == "USB printer 0f49:ffff serial SIM-0001"
        assert ask(transport, b"Rsn") == b"SIM-0001"
    finally:
        transport.close()


def test_wrong_serial_names_it_and_lists_what_was_seen(backend: SimUsbBackend) -> None:
    transport = UsbTransport(EVOLIS_VENDOR, SIM_PRODUCT, "EV-12345", backend=backend)
    with pytest.raises(TransportError) as caught:
        transport.open()
    assert "EV-12345" in caught.value.reason
    assert "seen: 0f49:ffff serial SIM-0001" in caught.value.reason


def test_no_printer_at_all(printer: FakePrinter) -> None:
    printer.unplug()
    transport = UsbTransport(EVOLIS_VENDOR, backend=SimUsbBackend("127.0.0.1", printer.port))
    with pytest.raises(TransportError, match="no device of vendor 0f49"):
        transport.open()


def test_command_round_trip(transport: UsbTransport, printer: FakePrinter) -> None:
    transport.open()
    assert ask(transport, b"Rsn") == b"SIM-0001"
    assert printer.commands.get(timeout=2) == ESC + b"Rsn"
    assert ask(transport, b"Pem;0") == b"OK"


def test_large_write_arrives_intact(transport: UsbTransport, printer: FakePrinter) -> None:
    """A colour panel is ~600 KB: more than one write chunk and many packets."""
    panel = os.urandom(600_000).replace(CR, b"x")
    command = ESC + b"Db;y;128;" + panel + CR
    transport.open()
    transport.write(command, timeout=5)
    assert ReplyReader(transport).read(3) == b"OK"  # sent after the printer got the final CR
    with printer._lock:
        assert bytes(printer.received) == command


def test_silent_printer_gives_reply_timeout(backend: SimUsbBackend,
                                            printer: FakePrinter) -> None:
    printer.answer = False
    transport = UsbTransport(EVOLIS_VENDOR, backend=backend)
    transport.open()
    try:
        transport.write(ESC + b"Rsn" + CR)
        started = time.monotonic()
        with pytest.raises(ReplyTimeout):
            ReplyReader(transport).read(0.5)
        assert time.monotonic() - started < 1.5
    finally:
        transport.close()


def test_unplug_then_replug(transport: UsbTransport, printer: FakePrinter) -> None:
    transport.open()
    assert ask(transport, b"Rsn") == b"SIM-0001"
    printer.unplug()
    with pytest.raises(TransportError, match="unplugged") as caught:
        ReplyReader(transport).read(2)
    assert not isinstance(caught.value, ReplyTimeout)
    with pytest.raises(TransportError, match="no USB printer"):
        transport.open()
    replugged = FakePrinter(printer.port)
    try:
        transport.open()
        assert ask(transport, b"Rsn") == b"SIM-0001"
    finally:
        transport.close()
        replugged.unplug()


def test_kernel_driver_detached_on_open_and_given_back_on_close(
        transport: UsbTransport, backend: SimUsbBackend) -> None:
    transport.open()
    assert (backend.detach_count, backend.attach_count) == (1, 0)
    transport.close()
    assert (backend.detach_count, backend.attach_count) == (1, 1)


def test_simulator_refuses_claim_while_kernel_driver_bound(backend: SimUsbBackend) -> None:
    """Like Linux with usblp bound; this is what makes the detach test above meaningful."""
    dev = usb.core.find(idVendor=EVOLIS_VENDOR, backend=backend)
    assert dev is not None
    try:
        with pytest.raises(usb.core.USBError, match="busy"):
            usb.util.claim_interface(dev, 0)
    finally:
        usb.util.dispose_resources(dev)


def test_device_id(transport: UsbTransport) -> None:
    assert transport.device_id() is None  # not open
    transport.open()
    assert transport.device_id() == (
        "MFG:Evolis;MDL:Evolis Primacy (simulated);CMD:ESC;SN:SIM-0001;")


def test_parse_device_id_takes_either_byte_order() -> None:
    text = b"MFG:Evolis;MDL:Primacy;"
    size = len(text) + 2
    assert parse_device_id(size.to_bytes(2, "big") + text) == text.decode()
    assert parse_device_id(size.to_bytes(2, "little") + text) == text.decode()
    assert parse_device_id(b"\x00") is None


def test_backend_from_env(monkeypatch: pytest.MonkeyPatch, printer: FakePrinter) -> None:
    monkeypatch.setenv(ENV_BACKEND, "printstation.simulator.usb_backend:get_backend"
                       f"?address=127.0.0.1:{printer.port}&serial=SIM-0042")
    chosen = backend_from_env()
    assert isinstance(chosen, SimUsbBackend)
    assert chosen.serial == "SIM-0042"
    transport = UsbTransport(EVOLIS_VENDOR, serial="SIM-0042")
    transport.open()
    try:
        assert transport.description == "USB printer 0f49:ffff serial SIM-0042"
        assert ask(transport, b"Pem;0") == b"OK"
    finally:
        transport.close()


@pytest.mark.parametrize("spec", ["no-colon", "printstation.nope:get_backend",
                                  "printstation.simulator.usb_backend:get_backend?bogus=1"])
def test_backend_from_env_rejects_bad_values(spec: str) -> None:
    with pytest.raises(TransportError, match=ENV_BACKEND):
        backend_from_env({ENV_BACKEND: spec})


def test_backend_from_env_unset_means_default() -> None:
    assert backend_from_env({}) is None


def test_permission_denied_says_how_to_fix(printer: FakePrinter) -> None:
    backend = SimUsbBackend("127.0.0.1", printer.port, deny_access=True)
    transport = UsbTransport(EVOLIS_VENDOR, backend=backend)
    with pytest.raises(TransportError, match="permission denied") as caught:
        transport.open()
    assert "60-printstation.rules" in caught.value.reason
    assert "group lp" in caught.value.reason


def test_missing_libusb_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_backend(**_: object) -> None:
        raise usb.core.NoBackendError("No backend available")

    monkeypatch.delenv(ENV_BACKEND, raising=False)
    monkeypatch.setattr(usb.core, "find", no_backend)
    with pytest.raises(TransportError, match="libusb is missing"):
        UsbTransport(EVOLIS_VENDOR).open()


def test_io_before_open_is_an_error() -> None:
    transport = UsbTransport(EVOLIS_VENDOR)
    with pytest.raises(TransportError, match="not open"):
        transport.write(b"x")
