"""InfluxDB through its v1 HTTP API: line protocol to /write, InfluxQL to /query.

InfluxDB's answers map to actions (ARCHITECTURE, delivery): 204 → done; 400/422 → the points are
bad: find them by bisection, report them, never retry them; 401/403 → fatal; 404 → create the
database and retry; 413 → split the batch; 429/5xx, timeouts and refused connections →
:class:`InfluxUnavailableError`, which the caller answers by spooling.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from devices import InfluxAuthError, InfluxRejectedError, InfluxUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RejectedLine:
    line: str
    error: str


class InfluxClient:
    """A small synchronous client; one instance per thread (httpx clients are not shared)."""

    def __init__(
        self,
        url: str,
        database: str,
        *,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.database = database
        headers = {"Authorization": f"Token {token}"} if token else {}
        auth = httpx.BasicAuth(username, password or "") if username else None
        self._http = httpx.Client(
            base_url=self.url, headers=headers, auth=auth, timeout=httpx.Timeout(timeout, connect=3.0)
        )
        self._database_ready = False

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.TimeoutException as exc:
            raise InfluxUnavailableError(f"InfluxDB at {self.url} timed out") from exc
        except httpx.TransportError as exc:
            raise InfluxUnavailableError(f"InfluxDB at {self.url} unreachable: {exc}") from exc
        if response.status_code in (401, 403):
            raise InfluxAuthError(
                f"InfluxDB at {self.url} refused the credentials ({response.status_code}): "
                "check FIREGRID_INFLUX_TOKEN or FIREGRID_INFLUX_USER/FIREGRID_INFLUX_PASSWORD"
            )
        if response.status_code == 429 or response.status_code >= 500:
            raise InfluxUnavailableError(
                f"InfluxDB at {self.url} answered {response.status_code}: {response.text[:200]}"
            )
        return response

    def ping(self) -> bool:
        try:
            return self._request("GET", "/ping").status_code == 204
        except InfluxUnavailableError:
            return False

    def ensure_database(self) -> None:
        response = self._request("POST", "/query", data={"q": f'CREATE DATABASE "{self.database}"'})
        if response.status_code != 200 or "error" in response.text[:200]:
            raise InfluxUnavailableError(f"could not create database {self.database}: {response.text[:200]}")
        self._database_ready = True

    def query(self, influxql: str) -> list[dict[str, object]]:
        """The ``results`` of an InfluxQL query (epoch ms)."""
        response = self._request("GET", "/query", params={"db": self.database, "q": influxql, "epoch": "ms"})
        if response.status_code != 200:
            raise InfluxRejectedError(response.status_code, response.text)
        results: list[dict[str, object]] = response.json().get("results", [])
        return results

    def write(self, lines: Sequence[str]) -> list[RejectedLine]:
        """Write ``lines``; return those InfluxDB refused as bad (all others are durable).

        Raises :class:`InfluxUnavailableError` (retry later) or :class:`InfluxAuthError` (fatal).
        """
        if not lines:
            return []
        if not self._database_ready:
            self.ensure_database()
        rejected: list[RejectedLine] = []
        self._write(list(lines), rejected)
        return rejected

    def _write(self, lines: list[str], rejected: list[RejectedLine]) -> None:
        body = ("\n".join(lines) + "\n").encode()
        response = self._request(
            "POST", "/write", params={"db": self.database, "precision": "ms"}, content=body
        )
        status = response.status_code
        if status == 204:
            return
        if status == 404 and "database not found" in response.text:
            self.ensure_database()
            self._write(lines, rejected)
            return
        if status == 413 and len(lines) > 1:
            middle = len(lines) // 2
            self._write(lines[:middle], rejected)
            self._write(lines[middle:], rejected)
            return
        if status in (400, 413, 422):
            # The good points of a partial write are stored; rewriting them is idempotent
            # (same series and time), so bisect to single lines to name the bad ones.
            if len(lines) == 1:
                rejected.append(RejectedLine(lines[0], response.text.strip()[:500]))
                return
            middle = len(lines) // 2
            self._write(lines[:middle], rejected)
            self._write(lines[middle:], rejected)
            return
        raise InfluxUnavailableError(f"InfluxDB answered {status}: {response.text[:200]}")
