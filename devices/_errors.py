"""The firegrid error tree (one place for every package; ``devices`` is the package all may import).

FiregridError
├── ConfigError            refused at start-up; the message is one readable line
│   ├── SettingsError      invalid settings (environment or --config TOML)
│   ├── RegistryError      registry files: file, line and problem
│   ├── RulesError         rules file: file, key and reason
│   └── ScenarioError      a simulator scenario file is wrong or cannot be planned (also a ValueError)
├── DemoError              stops ``firegrid demo`` with one readable line
└── ServiceError           a backing service misbehaves at run time
    ├── ServiceStartError  a local service (mosquitto, influxd, ingest) could not be started
    │   └── PortInUseError a port asked for explicitly is taken
    ├── InfluxError
    │   ├── InfluxAuthError        401/403: fatal, credentials are wrong
    │   ├── InfluxRejectedError    400/422: the points are bad; record, never retry
    │   └── InfluxUnavailableError 5xx, 429, timeouts, refused connections: spool and retry
    └── MqttError          the broker refused us (bad credentials, bad URL)
"""

from __future__ import annotations


class FiregridError(Exception):
    """Base of every error firegrid raises on purpose."""


class ConfigError(FiregridError):
    """Configuration that stops the start-up."""


class SettingsError(ConfigError):
    """Invalid settings."""


class RegistryError(ConfigError):
    """A registry file is wrong; ``problems`` lists ``file:line: problem`` strings."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"registry refused: {problems[0]}{more}")


class RulesError(ConfigError):
    """A rules file is wrong."""


class ScenarioError(ConfigError, ValueError):
    """A scenario file is wrong or cannot be planned; the message names file and key."""


class DemoError(FiregridError):
    """Stops the demo with one readable line."""


class ServiceError(FiregridError):
    """A backing service failed."""


class ServiceStartError(ServiceError):
    """A local service could not be started; the message says why and where its log is."""


class PortInUseError(ServiceStartError):
    """A port asked for explicitly is taken."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is already in use")
        self.port = port


class InfluxError(ServiceError):
    """InfluxDB answered with an error or could not be reached."""


class InfluxAuthError(InfluxError):
    """InfluxDB refused our credentials (401/403)."""


class InfluxRejectedError(InfluxError):
    """InfluxDB refused the points themselves (400/422); ``body`` is its answer."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body
        super().__init__(f"InfluxDB rejected the write ({status}): {body[:300]}")


class InfluxUnavailableError(InfluxError):
    """InfluxDB is down, slow or overloaded; the write may succeed later."""


class MqttError(ServiceError):
    """The MQTT broker refused the connection."""


class SpoolFullError(ServiceError):
    """The spool cannot take a batch: its filesystem is full. The batch is not durable, so it is
    not acknowledged; the caller holds it and tries again."""


class StoreStoppingError(ServiceError):
    """The store was stopped while a batch waited for room: that batch stays unacknowledged (the
    broker delivers it again)."""


class EventStoreFullError(ServiceError):
    """The event store's disk is full: the change was not committed (the store reloaded what it
    had). Readings wait (unacknowledged) and are processed again; an action is refused."""
