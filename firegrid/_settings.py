"""Settings (CONTRACT §9): environment variables, or a TOML file given with --config; the
environment wins. Validated once at start-up; an error is one readable line."""

from __future__ import annotations

import os
import re
import ssl
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from devices import KIND_BY_NAME, MqttUrl, SettingsError, is_identifier
from firegrid._clock import Clock
from firegrid._districts import districts_suffix, parse_districts
from ingest import DeviceRate
from safety import Weights, load_weights

_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9_.:\[\]-]+):(?P<port>\d{1,5})$")


def check_topic_prefix(value: str) -> str:
    """A topic prefix (``FIREGRID_TOPIC_PREFIX``, ``simulate run --prefix``): empty, or ending
    with ``/`` and free of MQTT wildcards; ``ValueError`` otherwise."""
    if any(c in value for c in "+#\x00") or (value and not value.endswith("/")):
        raise ValueError("must end with '/' and contain no MQTT wildcards")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIREGRID_", extra="forbid", frozen=True)

    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_ca: Path | None = None
    """CA file (PEM) that an ``mqtts://`` broker's certificate must chain to; unset: the system's."""
    influx_url: str = "http://127.0.0.1:8086"
    influx_db: str = "firegrid"
    influx_token: SecretStr | None = None
    influx_user: str | None = None
    influx_password: SecretStr | None = None
    registry: Path = Path("./registry")
    rules: Path | None = None
    data_dir: Path = Path("./.firegrid")
    http: str = "127.0.0.1:8080"
    credentials: Path = Path("./credentials")
    """Directory written by ``firegrid credentials``: its ``passwd`` checks HTTP passwords (§10)."""
    # extensions of the contract
    client_id: str | None = None
    """MQTT client id: fixed, so the persistent session survives restarts. Unset:
    ``firegrid-ingest``; with ``districts``, ``-`` and the districts' suffix is appended (to the
    one given too), so that instances of different districts never share a session."""
    districts: str = ""
    """The districts this instance owns (comma-separated; issue 17, docs/DEPLOY.md); empty: all."""
    topic_prefix: str = ""
    """Prepended to every topic (several deployments on one broker; tests)."""
    instance: str | None = None
    """Tag of this process's ``ingest_stats`` points; unset: ``ingest-1``, or with ``districts``
    ``ingest-`` and the districts' suffix."""
    alarm_kinds: str = "smoke"
    """Device kinds whose messages take the alarm lane (comma-separated; empty: no alarm lane):
    a second session of their topics only, served before the readings (ingest/_lanes.py)."""
    batch_max: int = Field(default=5000, ge=1, le=100_000)
    influx_timeout_s: float = Field(default=5.0, gt=0, le=120)
    stats_interval_s: float = Field(default=10.0, gt=0)
    durable_fsync: bool = False
    """fsync every spool commit (survives power loss, not only kill -9), at a cost in speed."""
    spool_max_mb: float = Field(default=1024.0, gt=0)
    """The spool's bound (compressed batches); at it, acknowledgements are held (never dropped)."""
    device_rate: str = "5/300"
    """Per-device rate limit (CONTRACT §10): ``rate/burst`` (messages a second sustained, burst),
    or ``0`` (off)."""
    index: Path | None = None
    """The index's weights (CONTRACT §12, a TOML file; docs/INDEX.md); unset: the defaults."""
    index_interval_s: float = Field(default=900.0, gt=0)
    """``grid_index`` points at every multiple of this (15 min)."""
    sla_period_s: float = Field(default=86_400.0, gt=0)
    """``grid_sla`` points for each period of this length (a UTC day) once it has ended."""
    clock_scale: float = Field(default=1.0, gt=0, le=1_000_000, allow_inf_nan=False)
    """Service ms per wall ms (simulation and demos only; firegrid/_clock.py). 1: the wall clock."""
    clock_anchor: str = Field(default="", validate_default=True)
    """``WALL_MS=SERVICE_MS``: the service clock reads SERVICE_MS at wall time WALL_MS (epoch ms);
    required with a ``clock_scale`` other than 1."""

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        MqttUrl.parse(value)
        return value

    @field_validator("mqtt_ca", mode="before")
    @classmethod
    def _mqtt_ca_unset(cls, value: object) -> object:
        return None if value == "" else value  # FIREGRID_MQTT_CA= (empty) means unset

    @field_validator("mqtt_ca")
    @classmethod
    def _mqtt_ca(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        url = info.data.get("mqtt_url")
        if isinstance(url, str) and not MqttUrl.parse(url).tls:
            raise ValueError("is set but FIREGRID_MQTT_URL is not mqtts://, so no TLS would use it")
        try:
            ssl.create_default_context(cafile=value)
        except OSError as exc:  # ssl.SSLError included
            reason = exc.strerror or getattr(exc, "reason", None) or str(exc)
            raise ValueError(f"cannot load CA certificates from {value}: {reason}") from exc
        return value

    @field_validator("influx_url")
    @classmethod
    def _influx_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must look like http://host:port, got {value!r}")
        return value

    @field_validator("influx_db", "instance")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        if value is not None and not is_identifier(value):
            raise ValueError(f"{value!r} must be letters, digits, _ . - (at most 64)")
        return value

    @field_validator("http")
    @classmethod
    def _http(cls, value: str) -> str:
        match = _HOST_PORT.match(value)
        if not match or not (0 < int(match["port"]) < 65536):
            raise ValueError(f"must be host:port, got {value!r}")
        return value

    @field_validator("client_id", mode="before")
    @classmethod
    def _client_id_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        if value is not None and (len(value.encode()) > 200 or "\x00" in value):
            raise ValueError(f"{value!r} must be at most 200 bytes, without NUL")
        return value

    @field_validator("districts")
    @classmethod
    def _districts(cls, value: str) -> str:
        for district in parse_districts(value):
            if not is_identifier(district):
                raise ValueError(f"{district!r} is not a district id (letters, digits, _ . -, at most 64)")
        return value

    @property
    def district_list(self) -> tuple[str, ...]:
        """The districts this instance owns, sorted; empty: all of the registry's."""
        return parse_districts(self.districts)

    @property
    def alarm_kind_list(self) -> tuple[str, ...]:
        """The kinds of the alarm lane, sorted; empty: no alarm lane."""
        return tuple(sorted({part.strip() for part in self.alarm_kinds.split(",") if part.strip()}))

    @field_validator("alarm_kinds")
    @classmethod
    def _alarm_kinds(cls, value: str) -> str:
        unknown = sorted({part.strip() for part in value.split(",") if part.strip()} - set(KIND_BY_NAME))
        if unknown:
            raise ValueError(f"unknown kind {', '.join(unknown)} (known: {', '.join(KIND_BY_NAME)})")
        return value

    @property
    def mqtt_client_id(self) -> str:
        base = self.client_id or "firegrid-ingest"
        districts = self.district_list
        return f"{base}-{districts_suffix(districts)}" if districts else base

    @property
    def instance_name(self) -> str:
        if self.instance is not None:
            return self.instance
        districts = self.district_list
        return f"ingest-{districts_suffix(districts)}" if districts else "ingest-1"

    @field_validator("device_rate", mode="before")
    @classmethod
    def _device_rate(cls, value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):  # TOML: device_rate = 0
            value = f"{value:g}"
        if isinstance(value, str):
            DeviceRate.parse(value)
            return value.strip()
        return value

    @property
    def device_rate_limit(self) -> DeviceRate | None:
        """The parsed ``device_rate``; None: off."""
        return DeviceRate.parse(self.device_rate)

    @field_validator("index", mode="before")
    @classmethod
    def _index_unset(cls, value: object) -> object:
        return None if value == "" else value  # FIREGRID_INDEX= (empty) means the defaults

    @field_validator("index")
    @classmethod
    def _index(cls, value: Path | None) -> Path | None:
        if value is not None:
            load_weights(value)  # WeightsError (a ValueError): one line naming the file and the problem
        return value

    @field_validator("clock_anchor")
    @classmethod
    def _clock_anchor(cls, value: str, info: ValidationInfo) -> str:
        scale = info.data.get("clock_scale")
        if isinstance(scale, float):
            Clock.parse(scale, value)  # ValueError: one line
        return value.strip()

    @property
    def clock(self) -> Clock:
        """The service clock (the wall clock unless ``clock_scale`` / ``clock_anchor`` say otherwise)."""
        return Clock.parse(self.clock_scale, self.clock_anchor)

    @property
    def index_weights(self) -> Weights:
        return load_weights(self.index)

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_topic_prefix(value)

    @property
    def http_host(self) -> str:
        return self.http.rsplit(":", 1)[0].strip("[]")

    @property
    def http_port(self) -> int:
        return int(self.http.rsplit(":", 1)[1])

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)  # the environment wins over the TOML file


def load_settings(config: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Settings from ``config`` (TOML, keys as in the table without the prefix) and the environment."""
    file_values: dict[str, Any] = {}
    if config is not None:
        try:
            raw = tomllib.loads(config.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"cannot read config file {config}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {config} is not valid TOML: {exc}") from exc
        section = raw.get("firegrid", raw)
        file_values = {str(k).lower().removeprefix("firegrid_"): v for k, v in section.items()}
    saved = None
    if environ is not None:
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(environ)
    try:
        return Settings(**file_values)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        name = str(error["loc"][0]) if error["loc"] else "settings"
        where = f" (in {config})" if config is not None and name in file_values else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        raise SettingsError(f"invalid setting FIREGRID_{name.upper()}{where}: {message}") from exc
    finally:
        if saved is not None:
            os.environ.clear()
            os.environ.update(saved)
