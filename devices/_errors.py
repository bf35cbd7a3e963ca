"""The firegrid error tree (one place for every package; ``devices`` is the package all may import).

FiregridError
├── ConfigError            refused at start-up; the message is one readable line
│   ├── SettingsError      invalid settings (environment or --config TOML)
│   ├── RegistryError      registry files: file, line and problem
│   └── RulesError         rules file: file, key and reason
└── ServiceError           a backing service misbehaves at run time
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


class ServiceError(FiregridError):
    """A backing service failed."""


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
