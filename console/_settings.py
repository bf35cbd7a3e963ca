"""The console's settings (CONTRACT §9, §10, §11): the ``FIREGRID_*`` variables it reads.

Only what the console needs; every other ``FIREGRID_*`` variable (ingest's) is ignored, so one
environment can serve both processes.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from devices import MqttUrl, SettingsError

_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9_.:\[\]-]+):(?P<port>\d{1,5})$")
_PREFIX = re.compile(r"^([A-Za-z0-9_.-]+/)?$")


class ConsoleSettings(BaseSettings):
    """``FIREGRID_CONSOLE_HTTP``, ``FIREGRID_CONSOLE_API`` (one URL, or several separated by
    commas: one per ingest instance), ``FIREGRID_MQTT_URL`` (its user is the
    console's account on the broker and on ingest's API), ``FIREGRID_MQTT_CA``,
    ``FIREGRID_CREDENTIALS``, ``FIREGRID_REGISTRY``, ``FIREGRID_TOPIC_PREFIX``; and, to serve
    HTTPS, ``FIREGRID_CONSOLE_CERT`` and ``FIREGRID_CONSOLE_KEY`` (PEM files)."""

    model_config = SettingsConfigDict(env_prefix="FIREGRID_", extra="ignore", frozen=True)

    console_http: str = "127.0.0.1:8081"
    console_api: str = "http://127.0.0.1:8080"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_ca: Path | None = None
    credentials: Path = Path("./credentials")
    registry: Path = Path("./registry")
    topic_prefix: str = ""
    console_cert: Path | None = None
    console_key: Path | None = None

    @field_validator("console_http")
    @classmethod
    def _http(cls, value: str) -> str:
        match = _HOST_PORT.match(value)
        if not match or not (0 < int(match["port"]) < 65536):
            raise ValueError(f"must be host:port, got {value!r}")
        return value

    @field_validator("console_api")
    @classmethod
    def _api(cls, value: str) -> str:
        urls = [url.strip().rstrip("/") for url in value.split(",") if url.strip()]
        if not urls:
            raise ValueError(f"must look like http://host:port (no credentials in it), got {value!r}")
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
                raise ValueError(
                    f"must look like http://host:port (no credentials in it), or several of them "
                    f"separated by commas, got {url!r}"
                )
        if len(set(urls)) != len(urls):
            raise ValueError(f"names an ingest API twice: {value!r}")
        return ",".join(urls)

    @property
    def api_urls(self) -> tuple[str, ...]:
        """ingest's API, one URL per instance (several instances each own some districts)."""
        return tuple(self.console_api.split(","))

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        broker = MqttUrl.parse(value)
        if not broker.user or not broker.password:
            raise ValueError("must name the console's account: mqtt://firegrid-console:PASSWORD@host:port")
        return value

    @field_validator("mqtt_ca", "console_cert", "console_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX.match(value):
            raise ValueError(f"must be one level ending in '/' (like 't1/') or empty, got {value!r}")
        return value

    @property
    def broker(self) -> MqttUrl:
        return MqttUrl.parse(self.mqtt_url)

    @property
    def http_host(self) -> str:
        return self.console_http.rsplit(":", 1)[0].strip("[]")

    @property
    def http_port(self) -> int:
        return int(self.console_http.rsplit(":", 1)[1])

    @property
    def tls(self) -> bool:
        return self.console_cert is not None


def load_console_settings(environ: dict[str, str] | None = None) -> ConsoleSettings:
    """From the environment (or ``environ``); :class:`SettingsError` with one readable line."""
    try:
        if environ is None:
            settings = ConsoleSettings()
        else:
            values = {
                k.removeprefix("FIREGRID_").lower(): v
                for k, v in environ.items()
                if k.startswith("FIREGRID_")
            }
            settings = ConsoleSettings.model_validate(
                {k: v for k, v in values.items() if k in ConsoleSettings.model_fields}
            )
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        name = str(error["loc"][0]) if error["loc"] else "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"FIREGRID_{name.upper()} {message}") from exc
    if (settings.console_cert is None) != (settings.console_key is None):
        raise SettingsError("FIREGRID_CONSOLE_CERT and FIREGRID_CONSOLE_KEY go together (HTTPS needs both)")
    return settings
