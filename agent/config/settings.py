"""Station configuration: defaults, then a TOML file, then PRINTSTATION_* variables, then flags.

Every name in the contract's topology is configurable, and the defaults work with no
configuration at all (a simulated printer, the local broker). A bad value stops start-up
with one message that names the key and the problem (`ConfigError`).
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from printstation.agent.config.errors import ConfigError, problems
from printstation.agent.config.nodes import join_nodes, node_problems, split_nodes
from printstation.agent.config.secrets import mask_url, resolve_broker_password, with_password
from printstation.agent.contract import NAME_PATTERN, NAME_RE

#: Ribbon types the agent knows how to count (their use per card: consumables.RIBBON_USE).
RIBBON_TYPES = ("YMCKO", "YMCKK", "YMCKOK", "KO", "K")
#: The consumables that have alert thresholds: the table names under `[thresholds.*]`.
Consumable = Literal["ribbon", "film", "cards"]
CONSUMABLES: tuple[str, ...] = get_args(Consumable)


def default_station_id() -> str:
    """The host name, cut to the contract's alphabet, so an unconfigured station still has one."""
    name = re.sub(r"[^a-z0-9_\-]", "-", socket.gethostname().lower()).strip("-")
    return (name or "station")[:64]


def default_state_dir() -> Path:
    """systemd's StateDirectory when run as a service, else the user's state folder."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "printstation"


class Names(BaseModel):
    """Broker object names of contract section 1; `{station}` and `{pool}` are filled in."""

    model_config = ConfigDict(extra="forbid")

    job_exchange: str = "printstation.jobs"
    event_exchange: str = "printstation.events"
    control_exchange: str = "printstation.control"
    dead_exchange: str = "printstation.dead"
    dead_queue: str = "printstation.dead"
    station_queue: str = "printstation.station.{station}"
    pool_queue: str = "printstation.pool.{pool}"
    control_queue: str = "printstation.control.{station}"
    handback_exchange: str = "printstation.handback"
    handback_queue: str = "printstation.handback"


class Threshold(BaseModel):
    model_config = ConfigDict(extra="forbid")

    warning: int = Field(ge=0)
    critical: int = Field(ge=0)


def _default_thresholds() -> dict[str, Threshold]:
    return {
        "ribbon": Threshold(warning=100, critical=20),
        "film": Threshold(warning=100, critical=20),
        "cards": Threshold(warning=50, critical=10),
    }


class Settings(BaseSettings):
    """Everything a station needs to know; see `printstation.example.toml` for each key."""

    model_config = SettingsConfigDict(
        env_prefix="PRINTSTATION_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    station_id: str = Field(default_factory=default_station_id, pattern=NAME_PATTERN)
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    pools: Annotated[list[str], NoDecode] = Field(default_factory=list)
    printer_url: str = "sim://"
    #: The chip encoder, chosen by URL scheme through the `printstation.encoders` entry
    #: points (e.g. "pcsc://?reader=Virtual%20PCD%2000%2000"); unset: no encoder, so the
    #: station takes no job with a `chip` section (contract v2 §3).
    encoder_url: str | None = None
    card_stock: str = Field(default="ektp", pattern=NAME_PATTERN)
    state_dir: Path = Field(default_factory=default_state_dir)
    trusted_keys: dict[str, Path] = Field(default_factory=dict)
    verify_signatures: bool = True
    #: A table name that is not a consumable (`[thresholds.ribon]`) is an unknown key; a
    #: consumable left out keeps its default levels (its alerts are not switched off).
    thresholds: dict[Consumable, Threshold] = Field(default_factory=_default_thresholds)
    stocks: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["ektp", "kia"])
    ribbon_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(RIBBON_TYPES))
    uses_film: bool = True
    cleaning_interval: int = Field(default=1000, ge=0)
    names: Names = Field(default_factory=Names)
    delivery_limit: int = Field(default=20, ge=1, le=1000)
    #: x-quorum-initial-group-size of the quorum queues the agent declares: on how many
    #: cluster nodes each is replicated. Unset: the broker's default (argument left out).
    #: The broker refuses a re-declaration with another value, so every station and
    #: `declare-shared` must give the same one.
    quorum_group_size: int | None = Field(default=None, ge=1, le=99)
    max_attempts: int = Field(default=3, ge=1, le=20)
    #: Jobs held here with their images at once (README, "A bounded local backlog"):
    #: beyond that the station queue waits at the broker until cards print.
    max_held_jobs: int = Field(default=50, ge=1, le=100000)
    handback_after: float = Field(default=300.0, ge=0)
    telemetry_interval: float = Field(default=30.0, gt=0, le=30.0)
    reconnect_max_delay: float = Field(default=30.0, gt=0)
    heartbeat: int = Field(default=30, ge=0)
    log_level: str = "info"
    broker_ca_file: Path | None = None
    broker_cert_file: Path | None = None
    broker_key_file: Path | None = None
    control_socket: Path | None = None
    control_group: str | None = None
    web_listen: str = "127.0.0.1:8470"
    metrics_listen: str = "127.0.0.1:9470"
    #: The card stock each pool's jobs need, where a pool serves one (contract 7.3: a
    #: station whose feeder holds another stock takes nothing from that pool).
    pool_stocks: dict[str, str] = Field(default_factory=dict)
    # Contract version 2: migration, replay and retention (docs/CONTRACT.md 5 and 7.7).
    accept_contract_v1: bool = False
    control_max_skew: float = Field(default=600.0, gt=0)
    job_retention_days: float = Field(default=400.0, gt=0, le=36500)
    event_retention_days: float = Field(default=14.0, gt=0, le=36500)
    #: What operators read: "id" (Bahasa Indonesia) or "en"; unset follows the locale
    #: (LANG=id_ID.UTF-8 is Indonesian). See printstation.agent.i18n.
    language: Literal["id", "en"] | None = None

    @field_validator("broker_url", mode="before")
    @classmethod
    def _one_string(cls, value: Any) -> Any:
        if isinstance(value, list):
            raise ValueError("give several nodes as one string of URLs separated by commas, "
                             'e.g. "amqp://u@node-1/%2F,amqp://u@node-2/%2F"; not a list')
        return value

    @field_validator("broker_url")
    @classmethod
    def _amqp_url(cls, value: str) -> str:
        found = node_problems(value)
        if found:
            raise ValueError("\n".join(found))
        return join_nodes(split_nodes(value))

    @field_validator("pools", "stocks", "ribbon_types", mode="before")
    @classmethod
    def _split_pools(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("pools", "stocks")
    @classmethod
    def _names(cls, value: list[str], info: ValidationInfo) -> list[str]:
        what = (info.field_name or "name").removesuffix("s")  # "pool", "stock"
        for name in value:
            if not NAME_RE.fullmatch(name):
                raise ValueError(f"{what} {name!r} is not 1-64 characters of a-z 0-9 - _")
        return value

    @field_validator("pool_stocks")
    @classmethod
    def _pool_stock_names(cls, value: dict[str, str]) -> dict[str, str]:
        for pool, stock in value.items():
            if not NAME_RE.fullmatch(pool) or not NAME_RE.fullmatch(stock):
                raise ValueError(f"{pool!r} = {stock!r}: pool and stock names are 1-64 "
                                 "characters of a-z 0-9 - _")
        return value

    @field_validator("ribbon_types")
    @classmethod
    def _ribbons(cls, value: list[str]) -> list[str]:
        for ribbon in value:
            if ribbon.upper() not in RIBBON_TYPES:
                raise ValueError(f"ribbon type {ribbon!r} is unknown; known: "
                                 f"{', '.join(RIBBON_TYPES)}")
        return [r.upper() for r in value]

    @field_validator("printer_url")
    @classmethod
    def _has_scheme(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("must be a URL such as sim:// or evolis+usb://0f49:...")
        return value

    @field_validator("encoder_url")
    @classmethod
    def _encoder_has_scheme(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError("must be a URL such as pcsc://?reader=...")
        return value

    @field_validator("thresholds")
    @classmethod
    def _levels_in_order(cls, value: dict[str, Threshold]) -> dict[str, Threshold]:
        for kind, threshold in value.items():
            if threshold.critical > threshold.warning:
                raise ValueError(f"{kind}: critical level is above the warning level")
        return {**_default_thresholds(), **value}

    @field_validator("broker_ca_file", "broker_cert_file", "broker_key_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file {value} not found")
        return value

    @field_validator("web_listen", "metrics_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value == "":
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:8470, or empty to switch it off")
        return value

    def socket_path(self) -> Path:
        """The control socket: as configured, else in systemd's RuntimeDirectory, else state."""
        if self.control_socket is not None:
            return self.control_socket
        runtime = os.environ.get("RUNTIME_DIRECTORY")
        base = Path(runtime.split(":")[0]) if runtime else self.state_dir
        return base / "control.sock"

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in ("debug", "info", "warning", "error"):
            raise ValueError("must be debug, info, warning or error")
        return value.lower()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if _TOML_FILE.path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=_TOML_FILE.path))
        return tuple(sources)

    def broker_nodes(self) -> list[str]:
        """broker_url's node URLs, in the order given (one for a single broker)."""
        return split_nodes(self.broker_url)

    def station_queue(self) -> str:
        return self.names.station_queue.format(station=self.station_id)

    def control_queue(self) -> str:
        return self.names.control_queue.format(station=self.station_id)

    def pool_queue(self, pool: str) -> str:
        return self.names.pool_queue.format(pool=pool)

    # ------------------------------------------------------------------ broker password
    # The config file is readable by the operators' group (they need it for the control
    # socket), so the broker password does not belong in broker_url there: it is read from
    # a file only the service may read, or from the systemd credential `broker-password`,
    # and takes the place of broker_url's own. Restart-only (not in Agent.LIVE_SETTINGS):
    # the connections keep the password they started with.

    broker_password_file: Path | None = None
    _broker_password: SecretStr | None = PrivateAttr(default=None)
    _broker_password_problem: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _resolve_broker_password(self) -> Self:
        """Read the password once; a file group or others can read is refused (ConfigError).

        A file this user may not read is refused only when a connection needs it
        (`broker_connection_url`): operators load this configuration too, to find the
        control socket, and must be able to without the service's password.
        """
        self._broker_password, self._broker_password_problem = resolve_broker_password(
            self.broker_url, self.broker_password_file)
        return self

    def broker_connection_url(self) -> str:
        """broker_url with the password from broker_password_file or the credential in it.

        Only the code that opens broker connections calls this, and hands the result to
        pika; it is never logged. ConfigError (one line) when no usable password is there.
        """
        if self._broker_password_problem is not None:
            raise ConfigError(self._broker_password_problem)
        if self._broker_password is None:
            return self.broker_url
        return with_password(self.broker_url, self._broker_password.get_secret_value())

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """A repr (a traceback's locals, a debug line) shows broker_url's password as ***."""
        for key, value in super().__repr_args__():
            yield key, mask_url(value) if key == "broker_url" else value


class _TomlFile:
    path: Path | None = None


_TOML_FILE = _TomlFile()


def load_settings(config_file: Path | str | None = None, **flags: Any) -> Settings:
    """Settings from file, environment and flags, or ConfigError naming every problem,
    one line each."""
    flags = {k: v for k, v in flags.items() if v is not None}
    path = Path(config_file) if config_file else None
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file {path}: not found")
        try:
            with path.open("rb") as fh:
                tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: not valid TOML: {exc}") from None
    _TOML_FILE.path = path
    try:
        return Settings(**flags)
    except ValidationError as exc:
        raise ConfigError.of(problems(exc, Settings)) from None
    finally:
        _TOML_FILE.path = None
