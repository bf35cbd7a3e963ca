"""ingest's HTTP API as the console uses it (CONTRACT §9, §10, §12): HTTP Basic as the console's
account, which sees every event and every grid; the console applies each user's visibility itself.

Several ingest instances, each owning some districts (issue 17), are several APIs
(``FIREGRID_CONSOLE_API`` lists them, comma-separated): :class:`IngestApi` asks all of them,
merges the lists (newest first) and the ``/index`` grids, and sends an event's page and a grid's
``/sla`` to the instance that has it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

import httpx

from console._live import is_event

OPEN_STATES: Final = ("open", "acknowledged", "resolved")
LIST_LIMIT: Final = 10_000
"""ingest's most events per answer."""


class ApiError(Exception):
    """ingest did not answer as expected; the message is fit for a page and a log line."""


class _Upstream:
    """One ingest instance's API."""

    def __init__(self, base_url: str, user: str, password: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url
        self._client = httpx.AsyncClient(
            base_url=base_url, auth=httpx.BasicAuth(user, password), timeout=timeout_s
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        try:
            return await self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ApiError(
                f"firegrid ingest at {self.base_url} is not answering ({type(exc).__name__})"
            ) from exc

    @staticmethod
    def _refused(response: httpx.Response) -> ApiError:
        if response.status_code in (401, 403):
            return ApiError(
                f"firegrid ingest refused the console's account (HTTP {response.status_code}): "
                "check FIREGRID_MQTT_URL's user and password against FIREGRID_CREDENTIALS"
            )
        return ApiError(f"firegrid ingest answered HTTP {response.status_code}")

    async def open_events(self) -> list[dict[str, Any]]:
        """Every event not closed (one query per state)."""
        events: list[dict[str, Any]] = []
        for state in OPEN_STATES:
            response = await self._get("/events", {"state": state, "limit": str(LIST_LIMIT)})
            if response.status_code != 200:
                raise self._refused(response)
            body = response.json()
            if not isinstance(body, list):
                raise ApiError("firegrid ingest answered /events with something other than a list")
            events.extend(e for e in body if is_event(e))
        return events

    async def event(self, event_id: str) -> dict[str, Any] | None:
        """The event with its ``history``; None when there is none."""
        response = await self._get(f"/events/{event_id}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._refused(response)
        body = response.json()
        if not is_event(body):
            raise ApiError(f"firegrid ingest answered /events/{event_id} with something other than an event")
        assert isinstance(body, dict)
        return body

    async def _object(self, path: str, params: dict[str, str], key: str) -> dict[str, Any]:
        """A JSON object answer whose ``key`` holds an object (``grids`` of /index and /sla)."""
        response = await self._get(path, params)
        if response.status_code == 404:
            raise ApiError(f"firegrid ingest at {self.base_url} has no {path} (a version before §12?)")
        if response.status_code != 200:
            raise self._refused(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get(key), dict):
            raise ApiError(f"firegrid ingest answered {path} with something other than its JSON object")
        return body

    async def index(self) -> dict[str, Any]:
        """``GET /index`` (§12) of every grid: ``{"at", "grids": {grid_id: {"district", "index",
        "groups"}}}``."""
        return await self._object("/index", {}, "grids")

    async def sla(self, grid_id: str) -> dict[str, Any]:
        """``GET /sla?grid=`` (§12), the events raised in the 30 days before now (ingest's default):
        ``{"at", "since", "until", "total", "grids": {grid_id: {figures}}}``."""
        return await self._object("/sla", {"grid": grid_id}, "grids")


def _newest_first(event: dict[str, Any]) -> tuple[int, str]:
    raised = event.get("raised_at")
    return (raised if isinstance(raised, int) else 0), str(event.get("event_id"))


class IngestApi:
    """ingest's API, of one instance or of several (each owning some districts)."""

    def __init__(
        self, base_url: str | Sequence[str], user: str, password: str, timeout_s: float = 5.0
    ) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("IngestApi needs at least one URL")
        self.upstreams = [_Upstream(url, user, password, timeout_s) for url in urls]
        self.base_url = ", ".join(urls)
        self._home: dict[str, _Upstream] = {}
        """event_id → the instance whose list had it (an event stays with its instance)."""

    async def close(self) -> None:
        for upstream in self.upstreams:
            await upstream.close()

    async def open_events(self) -> list[dict[str, Any]]:
        """Every event not closed, of every instance, newest first."""
        if len(self.upstreams) == 1:
            return await self.upstreams[0].open_events()
        lists = await asyncio.gather(*(upstream.open_events() for upstream in self.upstreams))
        merged: list[dict[str, Any]] = []
        home: dict[str, _Upstream] = {}
        for upstream, events in zip(self.upstreams, lists, strict=True):
            merged.extend(events)
            home.update((str(event["event_id"]), upstream) for event in events)
        self._home = home
        merged.sort(key=_newest_first, reverse=True)
        return merged

    async def event(self, event_id: str) -> dict[str, Any] | None:
        """The event with its ``history`` from the instance that has it; None when none has."""
        home = self._home.get(event_id)
        if home is not None:
            found = await home.event(event_id)
            if found is not None:
                return found
        others = [upstream for upstream in self.upstreams if upstream is not home]
        answers = await asyncio.gather(*(upstream.event(event_id) for upstream in others))
        for upstream, answer in zip(others, answers, strict=True):
            if answer is not None:
                self._home[event_id] = upstream
                return answer
        return None

    async def index(self) -> dict[str, Any]:
        """``GET /index`` (§12) of every grid of every instance (each answers for its own)."""
        if len(self.upstreams) == 1:
            return await self.upstreams[0].index()
        answers = await asyncio.gather(*(upstream.index() for upstream in self.upstreams))
        merged = dict(answers[0])
        merged["grids"] = {grid: body for answer in answers for grid, body in answer["grids"].items()}
        return merged

    async def sla(self, grid_id: str) -> dict[str, Any]:
        """``GET /sla?grid=`` (§12) from the instance that has the grid (the first otherwise)."""
        if len(self.upstreams) == 1:
            return await self.upstreams[0].sla(grid_id)
        answers = await asyncio.gather(*(upstream.sla(grid_id) for upstream in self.upstreams))
        return next((answer for answer in answers if grid_id in answer["grids"]), answers[0])
