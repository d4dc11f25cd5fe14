"""Find a driver by the printer URL's scheme through the `printstation.drivers` entry points.

As with pyvisa's resource strings, the URL alone picks the backend. The Evolis driver, the
simulator's `sim://` and a driver installed by another package are all found the same way.
A scheme such as `evolis+usb` is looked up whole first, then by its part before `+`.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from .base import PrinterDriver
from .errors import DriverNotFound

GROUP = "printstation.drivers"
T = TypeVar("T")


def available() -> dict[str, str]:
    """Scheme → entry-point target, for `--help` and error messages."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def plugin_class(url: str, *, group: str, base: type[T], a_base: str,
                 not_found: type[Exception], url_name: str, example: str, what: str,
                 transports: bool = False) -> type[T]:
    """The class the entry point `group` names for `url`'s scheme (printer drivers and chip
    encoders are found alike); `transports`: `evolis+tcp` falls back to `evolis`."""
    scheme = urlsplit(url).scheme
    if not scheme:
        raise not_found(f"{url_name} {url!r} has no scheme (such as {example})")
    eps = {ep.name: ep for ep in entry_points(group=group)}
    ep = eps.get(scheme) or (eps.get(scheme.split("+", 1)[0]) if transports else None)
    if ep is None:
        known = ", ".join(sorted(eps)) or "none"
        raise not_found(f"no {what} for scheme {scheme!r}; installed: {known}")
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise not_found(f"entry point {ep.name} = {ep.value} is not {a_base}")
    return cls


def driver_class(url: str) -> type[PrinterDriver]:
    return plugin_class(url, group=GROUP, base=PrinterDriver, a_base="a PrinterDriver",
                        not_found=DriverNotFound, url_name="printer URL", example="sim://",
                        what="printer driver",
                        transports=True)


def open_driver(url: str, *, state_dir: Path) -> PrinterDriver:
    """Build the driver for `url` (not yet opened)."""
    return driver_class(url).from_url(url, state_dir=state_dir)
