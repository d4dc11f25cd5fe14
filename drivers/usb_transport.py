"""USB transport for card printers (USB printer class, bulk OUT/IN), through pyusb.

Why pyusb and not /dev/usb/lp*: the kernel's `usblp` device gives no way to pick a printer
by serial number, loses bidirectional replies on some models and needs the `lp` group for
every printer. With pyusb the agent finds the printer by vendor, product and serial, takes
the interface from `usblp` for as long as it talks to it and gives it back on close.

Nothing about the device is cached between opens: after an unplug the next `open()`
enumerates again, so a re-plugged printer (new bus address) is found without a restart.

pyusb talks to the system through a backend. Tests and demos use the simulated printer of
`printstation.simulator.usb_backend`, chosen with the `backend` argument or the environment
variable PRINTSTATION_USB_BACKEND="module.path:function?key=value&...".
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import math
import os
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import usb.core
import usb.util

from .transport import Transport, TransportError

ENV_BACKEND = "PRINTSTATION_USB_BACKEND"
UDEV_RULE = "systemd/60-printstation.rules"
#: Bytes per bulk OUT call: big enough to be fast, small enough that a write's overall
#: timeout is checked between chunks while a 600 KB colour panel goes out.
WRITE_CHUNK = 64 * 1024
#: Errors that mean the printer is no longer there (unplugged, switched off, reset).
_GONE_ERRNOS = frozenset({errno.ENODEV, errno.EIO, errno.EPIPE})
_LIBUSB_ERROR_ACCESS = -3
_USB_PRINTER_GET_DEVICE_ID = 0x00
_CLASS_IN_INTERFACE = 0xA1
_DEVICE_ID_MAX = 1023


class UsbTransport(Transport):
    """One USB printer, picked by vendor id and optionally product id and serial number."""

    def __init__(self, vendor: int, product: int | None = None, serial: str | None = None, *,
                 interface: int = 0, backend: Any | None = None) -> None:
        super().__init__()
        self.vendor, self.product, self.serial = vendor, product, serial
        self.interface = interface
        self._backend_arg = backend
        self.description = f"USB printer {_ids(vendor, product, serial)}"
        self._dev: usb.core.Device | None = None
        self._ep_out: usb.core.Endpoint | None = None
        self._ep_in: usb.core.Endpoint | None = None
        self._detached = False

    # ------------------------------------------------------------------ open and close

    def open(self) -> None:
        self.close()
        dev = self._find()
        self._dev = dev
        try:
            self._claim(dev)
        except usb.core.USBError as exc:
            self.close()
            raise TransportError(self._open_reason(exc)) from None
        except TransportError:
            self.close()
            raise

    def close(self) -> None:
        """Release the interface and hand it back to the kernel driver; never raises.

        It runs after errors too, when the device may already be gone, so every step is
        best effort.
        """
        dev, self._dev = self._dev, None
        detached, self._detached = self._detached, False
        self._ep_out = self._ep_in = None
        if dev is None:
            return
        with contextlib.suppress(Exception):
            usb.util.release_interface(dev, self.interface)
        if detached:
            with contextlib.suppress(Exception):
                dev.attach_kernel_driver(self.interface)
        with contextlib.suppress(Exception):
            usb.util.dispose_resources(dev)

    def device_id(self) -> str | None:
        """The open printer's IEEE 1284 device id ('MFG:...;MDL:...;SN:...;'), or None."""
        if self._dev is None:
            return None
        return ieee1284_device_id(self._dev, interface=self.interface)

    def _backend(self) -> Any | None:
        """Resolved at every open, so a changed environment takes effect on reconnect."""
        if self._backend_arg is not None:
            return self._backend_arg
        return backend_from_env()

    def _find(self) -> usb.core.Device:
        seen = self._enumerate()
        chosen = next(((d, s) for d, s in seen if self._wanted(d, s)), None)
        for dev, _ in seen:
            if chosen is None or dev is not chosen[0]:
                _dispose(dev)
        if chosen is None:
            raise TransportError(self._not_found(seen))
        dev, serial = chosen
        self.description = f"USB printer {_ids(dev.idVendor, dev.idProduct, serial)}"
        return dev

    def _enumerate(self) -> list[tuple[usb.core.Device, str | None]]:
        """Every device of the vendor with its serial; other products are listed on a miss."""
        try:
            devices = list(usb.core.find(find_all=True, idVendor=self.vendor,
                                         backend=self._backend()))
        except usb.core.NoBackendError:
            raise TransportError(f"{self.description}: libusb is missing; install it "
                                 "(apt install libusb-1.0-0)") from None
        except usb.core.USBError as exc:
            raise TransportError(f"{self.description}: cannot list USB devices ({exc})") from None
        return [(dev, read_serial(dev)) for dev in devices]

    def _wanted(self, dev: usb.core.Device, serial: str | None) -> bool:
        return ((self.product is None or dev.idProduct == self.product)
                and (self.serial is None or serial == self.serial))

    def _not_found(self, seen: list[tuple[usb.core.Device, str | None]]) -> str:
        want = f"no USB printer {_ids(self.vendor, self.product, self.serial)} is connected"
        if not seen:
            return (f"{want}, and no device of vendor {self.vendor:04x} at all; check the "
                    "cable and that the printer is switched on")
        listed = ", ".join(_ids(d.idVendor, d.idProduct, "?" if s is None else s)
                           for d, s in seen)
        hint = ""
        if any(s is None for _, s in seen):
            hint = (f"; unreadable serial numbers (?) usually mean permission denied: install the "
                    f"udev rule ({UDEV_RULE}) or add the service user to group lp")
        return f"{want}; devices of vendor {self.vendor:04x} seen: {listed}{hint}"

    def _claim(self, dev: usb.core.Device) -> None:
        """Take the printer interface from `usblp`, configure if needed, find the bulk pipes."""
        self._detach_kernel_driver(dev)
        try:
            cfg = dev.get_active_configuration()
        except usb.core.USBError:  # pyusb's 'Configuration not set': a fresh device
            dev.set_configuration()
            cfg = dev.get_active_configuration()
        intf = usb.util.find_descriptor(cfg, bInterfaceNumber=self.interface)
        if intf is None:
            raise TransportError(f"{self.description} has no interface {self.interface}")
        usb.util.claim_interface(dev, intf)
        self._ep_out = _bulk_endpoint(intf, usb.util.ENDPOINT_OUT)
        self._ep_in = _bulk_endpoint(intf, usb.util.ENDPOINT_IN)
        if self._ep_out is None or self._ep_in is None:
            raise TransportError(f"{self.description}: interface {self.interface} has no bulk "
                                 "OUT and IN endpoints; is this the printer interface?")

    def _detach_kernel_driver(self, dev: usb.core.Device) -> None:
        try:
            active = dev.is_kernel_driver_active(self.interface)
        except NotImplementedError:  # Windows and macOS backends have no kernel drivers
            return
        if active:
            dev.detach_kernel_driver(self.interface)
            self._detached = True

    def _open_reason(self, exc: usb.core.USBError) -> str:
        if _is_denied(exc):
            return (f"{self.description}: permission denied; install the udev rule "
                    f"({UDEV_RULE}) or add the service user to group lp")
        if exc.errno == errno.EBUSY:
            return (f"{self.description} is busy: another program or driver holds interface "
                    f"{self.interface} (CUPS, or a second agent?)")
        if _is_gone(exc):
            return f"{self.description}: printer unplugged while opening it"
        return f"{self.description} cannot be opened: {exc}"

    # ------------------------------------------------------------------ bytes

    def _endpoint(self, ep: usb.core.Endpoint | None) -> usb.core.Endpoint:
        if ep is None:
            raise TransportError(f"{self.description} is not open")
        return ep

    def _write(self, data: bytes, timeout: float) -> None:
        """In chunks, so `timeout` bounds the whole write, not each chunk.

        An endpoint write may return fewer bytes than given (libusb reports a partial
        transfer that timed out as a short success), so the loop resends the rest.
        """
        ep = self._endpoint(self._ep_out)
        deadline = time.monotonic() + timeout
        sent = 0
        while sent < len(data):
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._write_timeout(sent, len(data), timeout)
            try:
                sent += ep.write(data[sent:sent + WRITE_CHUNK], _ms(left))
            except usb.core.USBTimeoutError:
                raise self._write_timeout(sent, len(data), timeout) from None
            except usb.core.USBError as exc:
                raise self._failed("write", exc) from None

    def _read_some(self, timeout: float) -> bytes:
        ep = self._endpoint(self._ep_in)
        try:
            data = ep.read(_read_size(ep), _ms(timeout))
        except usb.core.USBTimeoutError:
            return b""
        except usb.core.USBError as exc:
            raise self._failed("read", exc) from None
        return bytes(data)

    def _write_timeout(self, sent: int, total: int, timeout: float) -> TransportError:
        return TransportError(f"{self.description}: write timed out after {timeout:g} s "
                              f"({sent} of {total} bytes sent); the printer is not taking data")

    def _failed(self, what: str, exc: usb.core.USBError) -> TransportError:
        """Close (the handle is useless now) and say whether the printer went away."""
        self.close()
        if _is_gone(exc):
            return TransportError(f"{self.description}: printer unplugged or switched off "
                                  f"({what} failed: {exc.strerror or exc})")
        return TransportError(f"{self.description}: USB {what} failed ({exc})")


def read_serial(dev: usb.core.Device) -> str | None:
    """The serial number; '' if the device has none, None if it cannot be read.

    pyusb hides a failed language-id request (typically permission denied) and then
    raises ValueError('The device has no langid') from get_string, hence ValueError here.
    """
    if not dev.iSerialNumber:
        return ""
    try:
        return usb.util.get_string(dev, dev.iSerialNumber)
    except (usb.core.USBError, ValueError, NotImplementedError):
        return None


def ieee1284_device_id(dev: usb.core.Device, *, interface: int = 0, alternate: int = 0,
                       timeout_ms: int = 1000) -> str | None:
    """The printer-class GET_DEVICE_ID string ('MFG:...;MDL:...;SN:...;'), None on any error.

    wIndex carries the interface in its high byte and the alternate setting in its low
    byte (USB printer class 1.1, 4.2.1). pyusb claims interface `wIndex & 0xff` for every
    interface-recipient request, i.e. the alternate setting, not the interface: harmless for
    printers on interface 0, and the reason to call this on an open transport, whose
    interface is already taken from `usblp`.
    """
    try:
        raw = dev.ctrl_transfer(_CLASS_IN_INTERFACE, _USB_PRINTER_GET_DEVICE_ID, 0,
                                (interface << 8) | alternate, _DEVICE_ID_MAX, timeout_ms)
    except (usb.core.USBError, ValueError, NotImplementedError):
        return None
    return parse_device_id(bytes(raw))


def parse_device_id(raw: bytes) -> str | None:
    """Text of a device id reply; its 2-byte length counts itself and is big-endian.

    Some printers send the length little-endian, so that is tried when big-endian
    does not fit the reply.
    """
    if len(raw) < 2:
        return None
    for order in ("big", "little"):
        length = int.from_bytes(raw[:2], order)
        if 2 <= length <= len(raw):
            return raw[2:length].decode("utf-8", "replace").rstrip("\x00")
    return raw[2:].decode("utf-8", "replace").rstrip("\x00")


def backend_from_env(environ: Mapping[str, str] | None = None) -> Any | None:
    """The pyusb backend named by PRINTSTATION_USB_BACKEND, or None for pyusb's default.

    The value is "module.path:function", optionally followed by "?key=value&..." whose
    values are passed to the function as keyword string arguments, e.g.
    "printstation.simulator.usb_backend:get_backend?address=127.0.0.1:9100".
    """
    spec = (os.environ if environ is None else environ).get(ENV_BACKEND, "").strip()
    if not spec:
        return None
    target, _, query = spec.partition("?")
    module_name, _, func_name = target.partition(":")
    if not module_name or not func_name:
        raise TransportError(f"{ENV_BACKEND}={spec!r}: use module.path:function[?key=value]")
    try:
        factory = getattr(importlib.import_module(module_name), func_name)
        backend = factory(**dict(parse_qsl(query, keep_blank_values=True)))
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        raise TransportError(f"{ENV_BACKEND}={spec!r} gives no USB backend: {exc}") from None
    if backend is None:
        raise TransportError(f"{ENV_BACKEND}={spec!r}: {func_name}() returned no backend")
    return backend


def _bulk_endpoint(intf: usb.core.Interface, direction: int) -> usb.core.Endpoint | None:
    def match(ep: usb.core.Endpoint) -> bool:
        return (usb.util.endpoint_direction(ep.bEndpointAddress) == direction
                and usb.util.endpoint_type(ep.bmAttributes) == usb.util.ENDPOINT_TYPE_BULK)

    return usb.util.find_descriptor(intf, custom_match=match)


def _read_size(ep: usb.core.Endpoint) -> int:
    """A whole number of packets: a buffer that ends mid-packet makes libusb report overflow."""
    return max(ep.wMaxPacketSize, 512) * 8


def _ms(seconds: float) -> int:
    """Milliseconds for pyusb, at least 1: libusb takes a timeout of 0 as 'wait for ever'."""
    return max(1, math.ceil(seconds * 1000))


def _ids(vendor: int, product: int | None, serial: str | None) -> str:
    ids = f"{vendor:04x}:{'*' if product is None else f'{product:04x}'}"
    if serial is None:
        return ids
    return f"{ids} serial {serial or '(none)'}"


def _is_gone(exc: usb.core.USBError) -> bool:
    return exc.errno in _GONE_ERRNOS or "No such device" in str(exc)


def _is_denied(exc: usb.core.USBError) -> bool:
    return (exc.errno == errno.EACCES or exc.backend_error_code == _LIBUSB_ERROR_ACCESS
            or "Access denied" in str(exc))


def _dispose(dev: usb.core.Device) -> None:
    """Close a handle opened only to read a serial number; pyusb would keep it until GC."""
    with contextlib.suppress(Exception):
        usb.util.dispose_resources(dev)
