"""Byte transports under a printer driver: serial (any pyserial URL), TCP, and USB (pyusb).

A transport only moves bytes and knows no printer language: where a reply ends is the
language's business (for Evolis, `evolis.protocol.ReplyReader` reads replies over any of
these), as brother_ql keeps its backends apart from its reader. Every read and write has a
timeout, so a printer that goes silent or answers slowly gives a clear `TransportError` or
no bytes, never a hang.
"""

from __future__ import annotations

import abc
import socket
import termios

from .errors import TransportError


class Transport(abc.ABC):
    """One connection to one printer; owned by the printer thread."""

    description: str = "printer"

    @abc.abstractmethod
    def open(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def _write(self, data: bytes, timeout: float) -> None: ...

    @abc.abstractmethod
    def _read_some(self, timeout: float) -> bytes:
        """Whatever bytes arrive within `timeout` (b'' if none); raise TransportError if gone."""

    def write(self, data: bytes, timeout: float = 10.0) -> None:
        """All of `data`, within `timeout` seconds; TransportError if it cannot go."""
        self._write(data, timeout)

    def read(self, timeout: float) -> bytes:
        """Whatever bytes arrive within `timeout` seconds (b'' if none, never waiting longer);
        TransportError if the printer is gone."""
        return self._read_some(timeout)

    def discard_input(self) -> None:
        """Drop bytes that are already waiting (say, a late answer to a timed-out command)."""
        while self._read_some(0.01):
            pass


class SerialTransport(Transport):
    """Any pyserial port or URL: /dev/ttyUSB0, a pty, `spy://...`, `loop://`."""

    def __init__(self, port: str, *, baudrate: int = 9600):
        super().__init__()
        self.port = port
        self.baudrate = baudrate
        self.description = f"serial port {port}"
        self._serial = None

    def open(self) -> None:
        import serial

        try:
            self._serial = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0.05,
                                                 write_timeout=10, exclusive=None)
        except serial.SerialException as exc:
            raise TransportError(_serial_reason(self.port, exc)) from None

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            finally:
                self._serial = None

    def _port(self):
        if self._serial is None:
            raise TransportError(f"{self.description} is not open")
        return self._serial

    def _write(self, data: bytes, timeout: float) -> None:
        import serial

        port = self._port()
        try:
            port.write_timeout = timeout  # reconfigures the port: fails if it went away
            port.write(data)
            port.flush()
        except (serial.SerialException, OSError, termios.error) as exc:
            self.close()
            raise TransportError(f"{self.description}: write failed ({exc})") from None

    def _read_some(self, timeout: float) -> bytes:
        import serial

        port = self._port()
        try:
            port.timeout = max(timeout, 0.001)
            first = port.read(1)
            if not first:
                return b""
            return first + port.read(port.in_waiting or 0)
        except (serial.SerialException, OSError, termios.error) as exc:
            self.close()
            raise TransportError(f"{self.description}: the printer went away ({exc})") from None


def _serial_reason(port: str, exc: Exception) -> str:
    text = str(exc)
    if "Permission denied" in text or "Errno 13" in text:
        return (f"serial port {port}: permission denied; add the service user to the group "
                "that owns it (usually dialout)")
    if "No such file" in text or "Errno 2" in text:
        return f"serial port {port} does not exist; check the cable and the port name"
    return f"serial port {port} cannot be opened: {text}"


class TcpTransport(Transport):
    """A networked printer (or the simulator) on a TCP port."""

    def __init__(self, host: str, port: int, *, connect_timeout: float = 5.0):
        super().__init__()
        self.host, self.port = host, port
        self.connect_timeout = connect_timeout
        self.description = f"printer at {host}:{port}"
        self._sock: socket.socket | None = None

    def open(self) -> None:
        try:
            self._sock = socket.create_connection((self.host, self.port),
                                                  timeout=self.connect_timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except ConnectionRefusedError:
            raise TransportError(f"{self.description} refused the connection; is it on and "
                                 "is the port right?") from None
        except TimeoutError:
            raise TransportError(f"{self.description} did not answer within "
                                 f"{self.connect_timeout:g} s") from None
        except OSError as exc:
            raise TransportError(f"{self.description} cannot be reached: "
                                 f"{exc.strerror or exc}") from None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def _conn(self) -> socket.socket:
        if self._sock is None:
            raise TransportError(f"{self.description}: not connected")
        return self._sock

    def _write(self, data: bytes, timeout: float) -> None:
        sock = self._conn()
        sock.settimeout(timeout)
        try:
            sock.sendall(data)
        except OSError as exc:
            self.close()
            raise TransportError(f"{self.description}: write failed ({exc})") from None

    def _read_some(self, timeout: float) -> bytes:
        sock = self._conn()
        sock.settimeout(max(timeout, 0.001))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return b""
        except OSError as exc:
            self.close()
            raise TransportError(f"{self.description}: connection lost ({exc})") from None
        if not data:
            self.close()
            raise TransportError(f"{self.description} closed the connection")
        return data
