"""The one MQTT broker URL of every process (ingest, the console, the simulators, the benches):
``mqtt[s]://[user:password@]host[:port]``, the user and password percent-decoded, so a password
with ``@``, ``:`` or ``/`` is written ``%40``, ``%3A``, ``%2F``."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

_PLAIN = ("mqtt", "tcp")
_TLS = ("mqtts", "ssl")


def _shown(url: str, parts: SplitResult) -> str:
    """``url`` for an error message: never its password."""
    return url if parts.password is None else url.replace(f":{parts.password}@", ":***@", 1)


@dataclass(frozen=True, slots=True)
class MqttUrl:
    host: str
    port: int
    user: str | None
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> MqttUrl:
        """``ValueError`` (one line, without the password) for anything else."""
        parts = urlsplit(url)
        if parts.scheme not in _PLAIN + _TLS or not parts.hostname:
            raise ValueError(f"must look like mqtt://[user:pass@]host[:port], got {_shown(url, parts)!r}")
        tls = parts.scheme in _TLS
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ValueError(f"has an invalid port: {_shown(url, parts)!r}") from exc
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.hostname, port, user, password, tls)

    def __str__(self) -> str:  # never the password
        return f"{self.host}:{self.port}"
