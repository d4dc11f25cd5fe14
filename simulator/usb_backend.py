"""A pyusb backend that shows one simulated Evolis card printer whose bulk pipes are a TCP socket.

Why: the USB transport (drivers/usb_transport.py) should be tested as it runs in production,
through pyusb's `usb.core.find`, `Device`, `Endpoint` and `usb.util`, without a printer on the
bench and without mocking pyusb. pyusb talks to the operating system only through a backend
object (`usb.backend.IBackend`), so this module is such a backend: pyusb builds real `Device`
objects from the descriptors below, and bulk transfers go to a TCP server that plays the
printer (the Evolis escape language is the same on TCP and USB).

* The device exists while a TCP connection to `address` can be made: every enumeration tries
  to connect (and closes again at once), so a stopped server is an unplugged printer and a
  restarted one is a re-plugged printer. A server therefore sees one short-lived connection
  per enumeration besides the connection of each open handle.
* Each `open_device` is one TCP connection; bulk OUT (0x01) sends on it, bulk IN (0x82)
  receives from it. A closed or refused connection is `ENODEV`, as libusb reports a device
  that was unplugged; a read with nothing to read is `USBTimeoutError`, as in libusb1.
* Vendor 0x0F49 is Evolis. Product 0xFFFF is not used by any Evolis model: it is reserved
  for the simulator, so a configuration can never mistake it for a real printer. Both ids
  are written once, in the driver's `protocol` module (`USB_VENDOR`, `SIM_USB_PRODUCT`).
* Like Linux, the `usblp` kernel driver holds the printer interface on every fresh handle
  until `detach_kernel_driver`; claiming the interface before that fails with EBUSY. This
  checks that the transport detaches before it claims.
* Standard GET_DESCRIPTOR(STRING) and the printer-class GET_DEVICE_ID are answered, so
  `usb.util.get_string`, `Device.serial_number` and IEEE 1284 device ids work.
"""

from __future__ import annotations

import array
import errno
import socket
from dataclasses import dataclass, field

import usb.backend
import usb.core

from printstation.drivers.evolis.protocol import SIM_USB_PRODUCT, USB_VENDOR

EP_OUT = 0x01
EP_IN = 0x82
MAX_PACKET = 512
PRINTER_CLASS, PRINTER_SUBCLASS, PRINTER_BIDIRECTIONAL = 7, 1, 2
CONFIG_VALUE = 1
LANGID_EN_US = 0x0409

_GET_DESCRIPTOR, _DESC_STRING = 0x06, 0x03
_STANDARD_IN_DEVICE = 0x80
_CLASS_IN_INTERFACE = 0xA1
_GET_DEVICE_ID = 0x00

# libusb error codes, so errors look exactly like the libusb1 backend's (see its `_check`).
_LIBUSB_ERROR_ACCESS, _LIBUSB_ERROR_NO_DEVICE, _LIBUSB_ERROR_BUSY = -3, -4, -6
_LIBUSB_ERROR_TIMEOUT, _LIBUSB_ERROR_PIPE = -7, -9
_NO_DEVICE_TEXT = "No such device (it may have been disconnected)"


@dataclass(frozen=True)
class _DeviceDescriptor:
    """The fields `usb.core.Device` copies (USB descriptor fields plus bus topology)."""

    idVendor: int
    idProduct: int
    bLength: int = 18
    bDescriptorType: int = 0x01
    bcdUSB: int = 0x0200
    bDeviceClass: int = 0  # class given per interface
    bDeviceSubClass: int = 0
    bDeviceProtocol: int = 0
    bMaxPacketSize0: int = 64
    bcdDevice: int = 0x0100
    iManufacturer: int = 1
    iProduct: int = 2
    iSerialNumber: int = 3
    bNumConfigurations: int = 1
    bus: int = 1
    address: int = 1
    port_number: int = 1
    port_numbers: tuple[int, ...] = (1,)
    speed: int = 3  # LIBUSB_SPEED_HIGH


@dataclass(frozen=True)
class _ConfigDescriptor:
    bLength: int = 9
    bDescriptorType: int = 0x02
    wTotalLength: int = 9 + 9 + 7 + 7
    bNumInterfaces: int = 1
    bConfigurationValue: int = CONFIG_VALUE
    iConfiguration: int = 0
    bmAttributes: int = 0xC0  # self-powered
    bMaxPower: int = 1
    extra_descriptors: bytes = b""


@dataclass(frozen=True)
class _InterfaceDescriptor:
    bLength: int = 9
    bDescriptorType: int = 0x04
    bInterfaceNumber: int = 0
    bAlternateSetting: int = 0
    bNumEndpoints: int = 2
    bInterfaceClass: int = PRINTER_CLASS
    bInterfaceSubClass: int = PRINTER_SUBCLASS
    bInterfaceProtocol: int = PRINTER_BIDIRECTIONAL
    iInterface: int = 0
    extra_descriptors: bytes = b""


@dataclass(frozen=True)
class _EndpointDescriptor:
    bEndpointAddress: int
    bLength: int = 7
    bDescriptorType: int = 0x05
    bmAttributes: int = 0x02  # bulk
    wMaxPacketSize: int = MAX_PACKET
    bInterval: int = 0
    bRefresh: int = 0
    bSynchAddress: int = 0
    extra_descriptors: bytes = b""


_ENDPOINTS = (_EndpointDescriptor(EP_OUT), _EndpointDescriptor(EP_IN))


@dataclass(frozen=True)
class SimDevice:
    """pyusb's opaque device identification: where the printer's TCP end listens."""

    host: str
    port: int


@dataclass
class SimHandle:
    """One open of the device: its TCP connection and the per-handle USB state."""

    sock: socket.socket
    configuration: int = CONFIG_VALUE
    kernel_driver: set[int] = field(default_factory=lambda: {0})
    claimed: set[int] = field(default_factory=set)


def no_device() -> usb.core.USBError:
    """The error libusb raises for an unplugged device (errno ENODEV)."""
    return usb.core.USBError(_NO_DEVICE_TEXT, _LIBUSB_ERROR_NO_DEVICE, errno.ENODEV)


class SimUsbBackend(usb.backend.IBackend):
    """One simulated Evolis printer on interface 0, bulk pipes bridged to `host:port`.

    `detach_count` and `attach_count` count kernel-driver detaches and re-attaches, so tests
    can check the transport hands the printer back to `usblp` when it closes.
    `deny_access` makes every open fail like a device node the user may not open.
    """

    def __init__(self, host: str, port: int, *, serial: str = "SIM-0001",
                 model: str = "Evolis Primacy (simulated)", connect_timeout: float = 1.0,
                 deny_access: bool = False) -> None:
        super().__init__()
        self.device = SimDevice(host, port)
        self.serial, self.model = serial, model
        self.connect_timeout = connect_timeout
        self.deny_access = deny_access
        self.detach_count = 0
        self.attach_count = 0
        self._strings = {1: "Evolis", 2: model, 3: serial}

    # ------------------------------------------------------------------ enumeration

    def enumerate_devices(self) -> list[SimDevice]:
        """The printer if its TCP end accepts a connection, else nothing ('unplugged')."""
        try:
            self._connect().close()
        except usb.core.USBError:
            return []
        return [self.device]

    def get_parent(self, dev: SimDevice) -> None:
        return None

    def get_device_descriptor(self, dev: SimDevice) -> _DeviceDescriptor:
        return _DeviceDescriptor(idVendor=USB_VENDOR, idProduct=SIM_USB_PRODUCT)

    def get_configuration_descriptor(self, dev: SimDevice, config: int) -> _ConfigDescriptor:
        if config != 0:
            raise IndexError(f"Invalid configuration index {config}")
        return _ConfigDescriptor()

    def get_interface_descriptor(self, dev: SimDevice, intf: int, alt: int,
                                 config: int) -> _InterfaceDescriptor:
        """IndexError past the last one: that is how pyusb's iteration finds the end."""
        self.get_configuration_descriptor(dev, config)
        if intf != 0 or alt != 0:
            raise IndexError(f"Invalid interface {intf} alternate setting {alt}")
        return _InterfaceDescriptor()

    def get_endpoint_descriptor(self, dev: SimDevice, ep: int, intf: int, alt: int,
                                config: int) -> _EndpointDescriptor:
        self.get_interface_descriptor(dev, intf, alt, config)
        if not 0 <= ep < len(_ENDPOINTS):
            raise IndexError(f"Invalid endpoint index {ep}")
        return _ENDPOINTS[ep]

    # ------------------------------------------------------------------ handles and state

    def open_device(self, dev: SimDevice) -> SimHandle:
        if self.deny_access:
            raise usb.core.USBError("Access denied (insufficient permissions)",
                                    _LIBUSB_ERROR_ACCESS, errno.EACCES)
        sock = self._connect()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return SimHandle(sock)

    def close_device(self, dev_handle: SimHandle) -> None:
        dev_handle.sock.close()

    def set_configuration(self, dev_handle: SimHandle, config_value: int) -> None:
        if config_value not in (0, CONFIG_VALUE):
            raise usb.core.USBError("Entity not found", -5, errno.ENOENT)
        if dev_handle.kernel_driver:
            raise _busy()
        dev_handle.configuration = config_value

    def get_configuration(self, dev_handle: SimHandle) -> int:
        return dev_handle.configuration

    def set_interface_altsetting(self, dev_handle: SimHandle, intf: int, altsetting: int) -> None:
        if intf != 0 or altsetting != 0:
            raise usb.core.USBError("Entity not found", -5, errno.ENOENT)

    def claim_interface(self, dev_handle: SimHandle, intf: int) -> None:
        """EBUSY while `usblp` holds it, as on Linux."""
        if intf in dev_handle.kernel_driver:
            raise _busy()
        dev_handle.claimed.add(intf)

    def release_interface(self, dev_handle: SimHandle, intf: int) -> None:
        dev_handle.claimed.discard(intf)

    def is_kernel_driver_active(self, dev_handle: SimHandle, intf: int) -> bool:
        return intf in dev_handle.kernel_driver

    def detach_kernel_driver(self, dev_handle: SimHandle, intf: int) -> None:
        if intf not in dev_handle.kernel_driver:
            raise usb.core.USBError("Entity not found", -5, errno.ENOENT)
        dev_handle.kernel_driver.discard(intf)
        self.detach_count += 1

    def attach_kernel_driver(self, dev_handle: SimHandle, intf: int) -> None:
        if intf in dev_handle.claimed:
            raise _busy()
        dev_handle.kernel_driver.add(intf)
        self.attach_count += 1

    def clear_halt(self, dev_handle: SimHandle, ep: int) -> None:
        return None

    def reset_device(self, dev_handle: SimHandle) -> None:
        dev_handle.claimed.clear()

    # ------------------------------------------------------------------ transfers

    def bulk_write(self, dev_handle: SimHandle, ep: int, intf: int, data: array.array,
                   timeout: int) -> int:
        _check_endpoint(dev_handle, ep, intf, EP_OUT)
        dev_handle.sock.settimeout(_seconds(timeout))
        try:
            dev_handle.sock.sendall(data)
        except TimeoutError:
            raise _timed_out() from None
        except OSError:
            raise no_device() from None
        return len(data) * data.itemsize

    def bulk_read(self, dev_handle: SimHandle, ep: int, intf: int, buff: array.array,
                  timeout: int) -> int:
        """Whatever has arrived, up to len(buff): a short packet ends a bulk read."""
        _check_endpoint(dev_handle, ep, intf, EP_IN)
        dev_handle.sock.settimeout(_seconds(timeout))
        try:
            count = dev_handle.sock.recv_into(buff, len(buff) * buff.itemsize)
        except TimeoutError:
            raise _timed_out() from None
        except OSError:
            raise no_device() from None
        if count == 0:
            raise no_device()
        return count

    def ctrl_transfer(self, dev_handle: SimHandle, bmRequestType: int, bRequest: int,
                      wValue: int, wIndex: int, data: array.array, timeout: int) -> int:
        """String descriptors and GET_DEVICE_ID; anything else stalls, like a real device."""
        if (bmRequestType, bRequest) == (_STANDARD_IN_DEVICE, _GET_DESCRIPTOR) \
                and wValue >> 8 == _DESC_STRING:
            return _fill(data, self._string_descriptor(wValue & 0xFF))
        if (bmRequestType, bRequest) == (_CLASS_IN_INTERFACE, _GET_DEVICE_ID) and wIndex >> 8 == 0:
            return _fill(data, self.device_id())
        raise usb.core.USBError("Pipe error", _LIBUSB_ERROR_PIPE, errno.EPIPE)

    def device_id(self) -> bytes:
        """IEEE 1284 device id: 2-byte big-endian length (counting itself), then the text."""
        text = f"MFG:Evolis;MDL:{self.model};CMD:ESC;SN:{self.serial};".encode()
        return (len(text) + 2).to_bytes(2, "big") + text

    def _string_descriptor(self, index: int) -> bytes:
        if index == 0:
            body = LANGID_EN_US.to_bytes(2, "little")
        elif index in self._strings:
            body = self._strings[index].encode("utf-16-le")[:252]
        else:
            raise usb.core.USBError("Pipe error", _LIBUSB_ERROR_PIPE, errno.EPIPE)
        return bytes((len(body) + 2, _DESC_STRING)) + body

    def _connect(self) -> socket.socket:
        try:
            return socket.create_connection((self.device.host, self.device.port),
                                            timeout=self.connect_timeout)
        except OSError:
            raise no_device() from None


def _check_endpoint(handle: SimHandle, ep: int, intf: int, expected: int) -> None:
    """Only the claimed printer interface's pipes exist; anything else is a caller bug."""
    if ep != expected or intf not in handle.claimed:
        raise usb.core.USBError(f"Invalid endpoint 0x{ep:02x} on interface {intf}",
                                -2, errno.EINVAL)


def _fill(buff: array.array, reply: bytes) -> int:
    count = min(len(reply), len(buff))
    buff[:count] = array.array("B", reply[:count])
    return count


def _seconds(timeout_ms: int) -> float | None:
    """libusb's timeout 0 means 'wait for ever'; a socket's is None."""
    return timeout_ms / 1000 if timeout_ms > 0 else None


def _timed_out() -> usb.core.USBTimeoutError:
    return usb.core.USBTimeoutError("Operation timed out", _LIBUSB_ERROR_TIMEOUT, errno.ETIMEDOUT)


def _busy() -> usb.core.USBError:
    return usb.core.USBError("Resource busy", _LIBUSB_ERROR_BUSY, errno.EBUSY)


def get_backend(address: str = "127.0.0.1:9100", serial: str = "SIM-0001",
                model: str = "Evolis Primacy (simulated)") -> SimUsbBackend:
    """Entry point for PRINTSTATION_USB_BACKEND=printstation.simulator.usb_backend:get_backend.

    Arguments are strings because they come from that variable's `?key=value` query.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"address must be HOST:PORT, not {address!r}")
    return SimUsbBackend(host.strip("[]"), int(port), serial=serial, model=model)
