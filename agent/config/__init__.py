"""The station's configuration: what it reads at start, and the broker password kept apart.

- `settings`: the `Settings` model (defaults, then a TOML file, then PRINTSTATION_*
  variables, then flags) and `load_settings`, which turns any bad value into one line.
- `secrets`: the broker password read from a file only the service may read, and
  `mask_url`/`mask_secrets` for every URL shown anywhere.
- `errors`: `ConfigError`, the one error a bad configuration raises.
"""

from printstation.agent.config.errors import ConfigError
from printstation.agent.config.secrets import (
    BROKER_PASSWORD_CREDENTIAL,
    exposed_password_warning,
    mask_secrets,
    mask_url,
    readable_by_others,
)
from printstation.agent.config.settings import (
    RIBBON_TYPES,
    Names,
    Settings,
    Threshold,
    default_state_dir,
    default_station_id,
    load_settings,
)

__all__ = [
    "BROKER_PASSWORD_CREDENTIAL",
    "RIBBON_TYPES",
    "ConfigError",
    "Names",
    "Settings",
    "Threshold",
    "default_state_dir",
    "default_station_id",
    "exposed_password_warning",
    "load_settings",
    "mask_secrets",
    "mask_url",
    "readable_by_others",
]
