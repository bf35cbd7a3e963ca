"""The console reading several ingest instances (issue 17): FIREGRID_CONSOLE_API lists them; the
lists are merged newest first, an event's page and a grid's /sla go to the instance that has it."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import IngestApi
from console._api import ApiError
from console._settings import load_console_settings
from devices import SettingsError, listen
from firegrid._http import HttpServer
from tests.unit.console.helpers import event

USER, PASSWORD = "firegrid-console", "pw"


class Instance:
    """One ingest instance's API owning some events and grids."""

    def __init__(self, events: list[dict[str, Any]], grids: list[str]) -> None:
        self.events = {e["event_id"]: e for e in events}
        self.grids = grids
        self.asked: list[str] = []
        self._auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        app = Starlette(
            routes=[
                Route("/events", self._list),
                Route("/events/{event_id}", self._one),
                Route("/index", self._index),
                Route("/sla", self._sla),
            ]
        )
        self.server = HttpServer(app, listen("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.port}"

    def _check(self, request: Request) -> Response | None:
        self.asked.append(request.url.path)
        if request.headers.get("authorization") != self._auth:
            return _json(401, {"error": "no"})
        return None

    async def _list(self, request: Request) -> Response:
        state = request.query_params.get("state")
        listed = sorted(
            (e for e in self.events.values() if e["state"] == state),
            key=lambda e: (e["raised_at"], e["event_id"]),
            reverse=True,
        )
        return self._check(request) or _json(200, listed)

    async def _one(self, request: Request) -> Response:
        found = self.events.get(request.path_params["event_id"])
        if found is None:
            return self._check(request) or _json(404, {"error": "no such event"})
        return self._check(request) or _json(200, {**found, "history": [{"action": "raise"}]})

    async def _index(self, request: Request) -> Response:
        grids = {g: {"district": g[:3], "index": 90.0, "groups": {}} for g in self.grids}
        return self._check(request) or _json(200, {"at": 1, "grids": grids})

    async def _sla(self, request: Request) -> Response:
        grid = request.query_params.get("grid", "")
        grids = {grid: {"raised": len(self.grids)}} if grid in self.grids else {}
        return self._check(request) or _json(200, {"at": 1, "total": {}, "grids": grids})


def _json(status: int, value: object) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


@pytest.fixture
def instances() -> Iterator[tuple[Instance, Instance]]:
    a = Instance(
        [
            event("A1", district="D01", grid_id="D01-G00", raised_at=1000, state="open"),
            event("A2", district="D01", grid_id="D01-G01", raised_at=3000, state="acknowledged"),
        ],
        ["D01-G00", "D01-G01"],
    )
    b = Instance([event("B1", district="D02", grid_id="D02-G00", raised_at=2000, state="open")], ["D02-G00"])
    a.server.start()
    b.server.start()
    yield a, b
    a.server.stop()
    b.server.stop()


def test_lists_merge_and_pages_route(instances: tuple[Instance, Instance]) -> None:
    a, b = instances

    async def scenario() -> None:
        api = IngestApi([a.url, b.url], USER, PASSWORD)
        try:
            events = await api.open_events()
            assert [e["event_id"] for e in events] == ["A2", "B1", "A1"]  # newest first, both instances
            a.asked.clear()
            b.asked.clear()
            found = await api.event("B1")
            assert found is not None and found["district"] == "D02" and found["history"]
            assert (a.asked, b.asked) == ([], ["/events/B1"])  # straight to the instance that listed it
            assert await api.event("NOPE") is None
            b.events["B9"] = event("B9", district="D02", raised_at=9000, state="closed")
            closed = await api.event("B9")  # not in any list (closed): asked everywhere, found on b
            assert closed is not None and closed["event_id"] == "B9"
            index = await api.index()
            assert sorted(index["grids"]) == ["D01-G00", "D01-G01", "D02-G00"]
            sla = await api.sla("D02-G00")
            assert sla["grids"] == {"D02-G00": {"raised": 1}}
            sla = await api.sla("D01-G01")
            assert sla["grids"] == {"D01-G01": {"raised": 2}}
            b.server.stop()
            with pytest.raises(ApiError, match=f"at {b.url} is not answering"):
                await api.open_events()  # one instance down: said, naming it
        finally:
            await api.close()

    asyncio.run(scenario())


def test_settings_take_a_list() -> None:
    base = {"FIREGRID_MQTT_URL": "mqtt://firegrid-console:pw@127.0.0.1:1883"}
    one = load_console_settings(base)
    assert one.api_urls == ("http://127.0.0.1:8080",)
    two = load_console_settings({**base, "FIREGRID_CONSOLE_API": "http://a:8080/, http://b:8080"})
    assert two.api_urls == ("http://a:8080", "http://b:8080")
    with pytest.raises(SettingsError, match=r"^FIREGRID_CONSOLE_API must look like"):
        load_console_settings({**base, "FIREGRID_CONSOLE_API": "http://a:8080,b:8080"})
    with pytest.raises(SettingsError, match="names an ingest API twice"):
        load_console_settings({**base, "FIREGRID_CONSOLE_API": "http://a:8080,http://a:8080/"})
