"""Find a driver by the printer URL's scheme through the `printstation.drivers` entry points.

As with pyvisa's resource strings, the URL alone picks the backend. The Evolis driver, the
simulator's `sim://` and a driver installed by another package are all found the same way.
A scheme such as `evolis+usb` is looked up whole first, then by its part before `+`.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlsplit

from .base import PrinterDriver
from .errors import DriverNotFound

GROUP = "printstation.drivers"


def available() -> dict[str, str]:
    """Scheme → entry-point target, for `--help` and error messages."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def driver_class(url: str) -> type[PrinterDriver]:
    scheme = urlsplit(url).scheme
    if not scheme:
        raise DriverNotFound(f"printer URL {url!r} has no scheme (such as sim://)")
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    ep = eps.get(scheme) or eps.get(scheme.split("+", 1)[0])
    if ep is None:
        known = ", ".join(sorted(eps)) or "none"
        raise DriverNotFound(f"no printer driver for scheme {scheme!r}; installed: {known}")
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, PrinterDriver)):
        raise DriverNotFound(f"entry point {ep.name} = {ep.value} is not a PrinterDriver")
    return cls


def open_driver(url: str, *, state_dir: Path) -> PrinterDriver:
    """Build the driver for `url` (not yet opened)."""
    return driver_class(url).from_url(url, state_dir=state_dir)
