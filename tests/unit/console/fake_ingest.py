"""A stand-in for ingest's HTTP API in the console's unit tests: real HTTP (uvicorn on a loopback
port, HTTP Basic checked), answering ``/index`` and ``/sla`` with JSON made by the ``safety``
package's own functions (:func:`safety.grid_index`, :func:`safety.figures`) in the envelope of
``Safety.index``/``Safety.sla``, so the console reads the shapes ingest really writes. ``/events``
is not served (the console keeps retrying its sync, as with no ingest at all)."""

from __future__ import annotations

import base64
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devices import listen
from firegrid._http import HttpServer
from safety import EventAt, GridEvents, GridFleet, figures, grid_index, load_weights

AT: Final = 1_764_583_200_000 + 40 * 86_400_000
HOUR: Final = 3_600_000
FLEET: Final = GridFleet(devices=4, monitored=3, with_fault=3, with_battery=2, checkpoints=1)


def event_at(grid_id: str, event_type: str, severity: str, raised_at: int, **times: Any) -> EventAt:
    fields: dict[str, Any] = {"acked_at": None, "resolved_at": None, "closed_at": None, "cleared": False}
    fields.update(times)
    return EventAt(
        event_id=f"E-{grid_id}-{event_type}-{raised_at}",
        district="D01",
        grid_id=grid_id,
        type=event_type,
        severity=severity,
        device_id="S0000",
        kind="smoke",
        raised_at=raised_at,
        **fields,
    )


HANDLED: Final = (
    # acknowledged after 60 s (on time), resolved after 2 h, closed after 3 h
    event_at(
        "D01-G00",
        "FIRE_ALARM",
        "critical",
        AT - 10 * HOUR,
        acked_at=AT - 10 * HOUR + 60_000,
        resolved_at=AT - 8 * HOUR,
        closed_at=AT - 7 * HOUR,
    ),
    # acknowledged after 150 s (late for a critical event), resolved after 9 h
    event_at(
        "D01-G00",
        "FIRE_ALARM",
        "critical",
        AT - 9 * HOUR - 60_000,
        acked_at=AT - 9 * HOUR + 90_000,
        resolved_at=AT - 60_000,
    ),
    # raised an hour ago, still open
    event_at("D01-G00", "FIRE_ALARM", "critical", AT - HOUR),
)
"""Grid D01-G00's last 30 days: the open critical hazard and two handled ones."""


def index_body() -> dict[str, Any]:
    """``GET /index`` as ``Safety.index`` answers it: D01-G00 with an open critical hazard,
    D01-G02 with a detector offline, D01-G01 and D01-G03 quiet."""
    weights = load_weights()
    offline = event_at("D01-G02", "DEVICE_OFFLINE", "minor", AT - HOUR)
    events = {
        "D01-G00": GridEvents(not_closed=HANDLED[1:], recent=HANDLED),
        "D01-G02": GridEvents(not_closed=(offline,), recent=(offline,)),
    }
    grids = {
        grid_id: grid_index(grid_id, "D01", FLEET, events.get(grid_id, GridEvents()), AT, weights).to_dict()
        for grid_id in ("D01-G00", "D01-G01", "D01-G02", "D01-G03")
    }
    return {"at": AT, "weights": weights.source, "grids": grids}


def sla_body(grid_id: str) -> dict[str, Any]:
    """``GET /sla?grid=`` as ``Safety.sla`` answers it (the 30 days before ``at``)."""
    mine = [e.handling for e in HANDLED if e.grid_id == grid_id]
    grid = figures(mine, AT).to_dict()
    return {"at": AT, "since": AT - 30 * 24 * HOUR, "until": None, "total": grid, "grids": {grid_id: grid}}


class FakeIngest:
    def __init__(self, user: str, password: str) -> None:
        self._authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.requests: list[str] = []
        """Path and query of every request to /index and /sla."""
        self.status = 200
        """Answer every request with this status (a JSON error unless 200)."""
        self.events: dict[str, dict[str, Any]] = {}
        """Served at /events/{event_id} (with an empty history)."""
        app = Starlette(
            routes=[
                Route("/index", self._index, methods=["GET"]),
                Route("/sla", self._sla, methods=["GET"]),
                Route("/events/{event_id}", self._event, methods=["GET"]),
            ]
        )
        self._server = HttpServer(app, listen("127.0.0.1", 0))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def start(self) -> FakeIngest:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def _refusal(self, request: Request) -> Response | None:
        if request.headers.get("authorization") != self._authorization:
            return _json(401, {"error": "wrong or missing credentials"})
        if self.status != 200:
            return _json(self.status, {"error": "failing on purpose"})
        return None

    async def _index(self, request: Request) -> Response:
        self.requests.append(f"/index?{request.url.query}")
        return self._refusal(request) or _json(200, index_body())

    async def _sla(self, request: Request) -> Response:
        self.requests.append(f"/sla?{request.url.query}")
        return self._refusal(request) or _json(200, sla_body(request.query_params.get("grid", "")))

    async def _event(self, request: Request) -> Response:
        event = self.events.get(request.path_params["event_id"])
        if event is None:
            return _json(404, {"error": "no such event"})
        return self._refusal(request) or _json(200, {**event, "history": []})


def _json(status: int, value: object) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")
