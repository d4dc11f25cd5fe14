"""The one error configuration raises."""

from printstation.drivers.errors import PrintstationError


class ConfigError(PrintstationError):
    """A configuration that cannot be used; the message names the key and the problem."""

    code = "config"
