"""The HTTP API of `firegrid ingest` (CONTRACT §9, §10): Starlette, served by uvicorn on a thread.

- ``GET /healthz``, ``GET /metrics``: open (bind ``FIREGRID_HTTP`` to an internal address);
- ``GET /events``, ``GET /events/{event_id}``: HTTP Basic against the ``passwd`` of
  ``FIREGRID_CREDENTIALS``, each principal seeing only its events (:class:`access.Visibility`);
- ``GET /sla``, ``GET /index`` (CONTRACT §12, package ``safety``): the same authentication, each
  principal seeing the grids (and for ``/sla`` the events) it may see.

Everything runs in the ingest process, under the pipeline's GIL, so the handlers are kept cheap:
``/healthz`` answers on the event loop from counters; ``/metrics``, password checks, event queries
and their JSON run on the :data:`QUERY_THREADS` long-lived thread(s) of :class:`ApiThreads`, each
answer bounded (at most :data:`MAX_LIMIT` events), on the event store's per-thread SQLite reader
(WAL: readers never wait for the pipeline's writes, nor it for them). The threads are fixed
because the event store opens one SQLite connection per thread and keeps it until it closes: on
a pool whose idle threads exit and are replaced (anyio's, Starlette's default) every new thread
opened another connection, and a soak run ran out of file descriptors. uvicorn runs plain (h11,
asyncio) with its access log off: a request line is never logged, nor any header.

Query parameters are hostile input: :meth:`EventQuery.parse` turns anything but the documented
forms into :class:`BadQuery` (400 with a message), never an exception that becomes a 500.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, Protocol

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from access import PASSWD, Access, PasswordFile, Visibility, authenticate
from alerts import STATES
from devices import SettingsError, is_identifier
from safety import IndexQuery, Scope, SlaQuery

log = logging.getLogger(__name__)

QUERY_THREADS: Final = 1
"""Requests (password check, query, JSON; /metrics) handled at once; more wait their turn. One:
each is a GIL contender of the pipeline (~20 µs per event answered, measured)."""
MAX_CONNECTIONS: Final = 200
"""Open connections beyond this are answered 503 by uvicorn."""
REALM: Final = 'Basic realm="firegrid"'
DEFAULT_LIMIT: Final = 1000
MAX_LIMIT: Final = 10_000
"""The most events one answer holds (the event store's own cap, ``alerts._store.MAX_LIST``)."""
_MAX_SINCE_DIGITS: Final = 16  # ms epoch up to year ~318,000; fits SQLite's 64-bit integers
_MAX_LIMIT_DIGITS: Final = 9
_ECHO: Final = 60  # characters of a refused value quoted back in a 400


def json_response(status: int, value: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(value),
        status_code=status,
        headers={"X-Content-Type-Options": "nosniff", **(headers or {})},
        media_type="application/json",
    )


# -- query parameters -----------------------------------------------------------------------------


class BadQuery(ValueError):
    """A query parameter that is not of the documented form (HTTP 400); the message says which."""


def _quote(value: str) -> str:
    """``value`` as a Python literal (control characters escaped), cut to :data:`_ECHO` characters."""
    shown = repr(value)
    return shown if len(shown) <= _ECHO else shown[: _ECHO - 1] + "…"


def _digits(name: str, value: str, max_digits: int, what: str) -> int:
    if not (0 < len(value) <= max_digits and value.isascii() and value.isdigit()):
        raise BadQuery(f"{name} must be {what}, not {_quote(value)}")
    return int(value)


@dataclass(frozen=True, slots=True)
class EventQuery:
    """The filters of ``GET /events`` (CONTRACT §9), validated."""

    state: str | None = None
    district: str | None = None
    grid: str | None = None
    type: str | None = None
    since_ms: int | None = None
    """``raised_at`` ≥ this (Unix epoch ms)."""
    limit: int = DEFAULT_LIMIT
    """At most this many, newest first (an extension of §9; above ``MAX_LIMIT`` it is ``MAX_LIMIT``)."""

    PARAMETERS: ClassVar[tuple[str, ...]] = ("state", "district", "grid", "type", "since", "limit")

    @classmethod
    def parse(cls, items: Sequence[tuple[str, str]]) -> EventQuery:
        """From the query string's (name, value) pairs; an empty value means "no filter".

        Raises :class:`BadQuery` for an unknown or repeated parameter, a state that is not one of
        ``STATES``, a district, grid or type that is not an identifier (§2), a ``since`` that is
        not a non-negative integer, a ``limit`` below 1."""
        values = _parameters(items, cls.PARAMETERS)
        state = values.get("state") or None
        if state is not None and state not in STATES:
            raise BadQuery(f"state must be one of {', '.join(STATES)}, not {_quote(state)}")
        district, grid, type_ = (_name(values, name) for name in ("district", "grid", "type"))
        since_ms = _epoch(values, "since")
        limit = DEFAULT_LIMIT
        if values.get("limit"):
            limit = _digits("limit", values["limit"], _MAX_LIMIT_DIGITS, "a whole number from 1")
            if limit < 1:
                raise BadQuery("limit must be at least 1")
        return cls(
            state=state,
            district=district,
            grid=grid,
            type=type_,
            since_ms=since_ms,
            limit=min(limit, MAX_LIMIT),
        )


def _parameters(items: Sequence[tuple[str, str]], known: Sequence[str]) -> dict[str, str]:
    """name → value; :class:`BadQuery` for a name not in ``known`` or given twice."""
    values: dict[str, str] = {}
    for name, value in items:
        if name not in known:
            raise BadQuery(f"unknown query parameter {_quote(name)} (known: {', '.join(known)})")
        if name in values:
            raise BadQuery(f"query parameter {name} given more than once")
        values[name] = value
    return values


def _name(values: Mapping[str, str], name: str) -> str | None:
    """An identifier (§2) filter; None when absent or empty."""
    given = values.get(name) or None
    if given is not None and not is_identifier(given):
        raise BadQuery(
            f"{name} must be letters, digits, _ . - (at most 64, starting with a letter or "
            f"digit), not {_quote(given)}"
        )
    return given


def _epoch(values: Mapping[str, str], name: str) -> int | None:
    """A time in Unix epoch ms (digits only); None when absent or empty."""
    given = values.get(name) or None
    if given is None:
        return None
    return _digits(name, given, _MAX_SINCE_DIGITS, "Unix epoch milliseconds (digits only)")


SLA_PARAMETERS: Final = ("district", "grid", "type", "since", "until", "at")
INDEX_PARAMETERS: Final = ("district", "grid", "at")


def parse_sla(items: Sequence[tuple[str, str]]) -> SlaQuery:
    """``GET /sla``'s parameters (CONTRACT §12), checked like those of ``/events``."""
    values = _parameters(items, SLA_PARAMETERS)
    return SlaQuery(
        district=_name(values, "district"),
        grid=_name(values, "grid"),
        type=_name(values, "type"),
        since_ms=_epoch(values, "since"),
        until_ms=_epoch(values, "until"),
        at_ms=_epoch(values, "at"),
    )


def parse_index(items: Sequence[tuple[str, str]]) -> IndexQuery:
    """``GET /index``'s parameters (CONTRACT §12, plus ``at``)."""
    values = _parameters(items, INDEX_PARAMETERS)
    return IndexQuery(
        district=_name(values, "district"), grid=_name(values, "grid"), at_ms=_epoch(values, "at")
    )


# -- who may see what ---------------------------------------------------------------------------


class EventSource(Protocol):
    """Events as a principal may see them (the hazard sink of the service; a fake in tests)."""

    def visible_events(self, seen: Visibility, query: EventQuery) -> list[dict[str, Any]]: ...

    def visible_event(self, seen: Visibility, event_id: str) -> dict[str, Any] | None: ...


class SafetySource(Protocol):
    """Handling figures and the index (CONTRACT §12) for a :class:`safety.Scope`."""

    def sla(self, scope: Scope, query: SlaQuery) -> dict[str, Any]: ...

    def index(self, scope: Scope, query: IndexQuery) -> dict[str, Any]: ...


def scope_of(seen: Visibility) -> Scope:
    """What ``/sla`` and ``/index`` show a principal: the rule of ``/events`` (§10, §12)."""
    return Scope(grids=seen.grids, station=seen.station)


class Gatekeeper:
    """HTTP Basic against ``{credentials}/passwd`` (reread when it changes), rights from the
    registry's :class:`access.Access` (replaced at each registry reload). Thread-safe.

    Without a ``passwd`` nobody is let in: event requests answer 503 until one appears (then it
    is used without a restart)."""

    def __init__(self, credentials: Path, access: Access) -> None:
        self.passwd = credentials / PASSWD
        self._passwords = PasswordFile(self.passwd)
        self._access = access
        if not self.configured:
            log.warning(
                "no HTTP credentials: %s does not exist; /events answers 503 until "
                "`firegrid credentials` writes it (FIREGRID_CREDENTIALS)",
                self.passwd,
            )

    @property
    def configured(self) -> bool:
        return self.passwd.is_file()

    def set_access(self, access: Access) -> None:
        self._access = access

    def visibility(self, authorization: str | None) -> Visibility:
        """What the sender of this ``Authorization`` header may see; raises HTTPException
        503 (no credentials configured), 401 (none or wrong) or 403 (a device, an unknown role)."""
        if not self.configured:
            raise HTTPException(503, "no credentials configured")
        user = authenticate(authorization, self._passwords)
        if user is None:
            raise HTTPException(401, "wrong or missing credentials", headers={"WWW-Authenticate": REALM})
        seen = self._access.for_user(user)
        if seen.forbidden:
            raise HTTPException(403, f"{user} may not read events")
        return seen

    def close(self) -> None:
        self._passwords.close()


# -- the application ------------------------------------------------------------------------------


class ApiThreads:
    """The threads that handle requests: :data:`QUERY_THREADS` of them, alive until :meth:`close`."""

    def __init__(self, threads: int = QUERY_THREADS) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="http-worker")

    async def run(self, handler: Callable[[Request], Response], request: Request) -> Response:
        return await asyncio.get_running_loop().run_in_executor(self._pool, handler, request)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def build_app(
    health: Callable[[], tuple[int, dict[str, object]]],
    metrics: Callable[[], bytes],
    events: EventSource,
    gate: Gatekeeper,
    threads: ApiThreads,
    safety: SafetySource | None = None,
) -> Starlette:
    """The ASGI app of ingest's API; everything but /healthz runs on ``threads``. Without
    ``safety`` there is no ``/sla`` nor ``/index``."""

    async def healthz(request: Request) -> Response:
        return json_response(*health())

    def metrics_text(request: Request) -> Response:
        return Response(metrics(), media_type="text/plain; version=0.0.4")

    def list_events(request: Request) -> Response:
        seen = gate.visibility(request.headers.get("authorization"))
        try:
            query = EventQuery.parse(request.query_params.multi_items())
        except BadQuery as exc:
            raise HTTPException(400, str(exc)) from exc
        return json_response(200, events.visible_events(seen, query))

    def get_event(request: Request) -> Response:
        seen = gate.visibility(request.headers.get("authorization"))
        event_id: str = request.path_params["event_id"]
        # an event the user may not see answers exactly as one that does not exist
        event = events.visible_event(seen, event_id) if is_identifier(event_id) else None
        if event is None:
            return json_response(404, {"error": f"no event {event_id}"})
        return json_response(200, event)

    def figures(request: Request, answer: Callable[[Scope, Sequence[tuple[str, str]]], Any]) -> Response:
        seen = gate.visibility(request.headers.get("authorization"))
        try:
            return json_response(200, answer(scope_of(seen), request.query_params.multi_items()))
        except BadQuery as exc:
            raise HTTPException(400, str(exc)) from exc

    def sla(request: Request) -> Response:
        assert safety is not None
        return figures(request, lambda scope, items: safety.sla(scope, parse_sla(items)))

    def index(request: Request) -> Response:
        assert safety is not None
        return figures(request, lambda scope, items: safety.index(scope, parse_index(items)))

    def on_threads(handler: Callable[[Request], Response]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return await threads.run(handler, request)

        return endpoint

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return json_response(exc.status_code, {"error": exc.detail}, exc.headers)

    async def not_found(request: Request, exc: Exception) -> Response:
        return json_response(404, {"error": f"no such resource {request.url.path}"})

    async def internal_error(request: Request, exc: Exception) -> Response:
        # uvicorn logs the traceback; the body says nothing of the cause
        return json_response(500, {"error": "internal error"})

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", on_threads(metrics_text), methods=["GET"]),
        Route("/events", on_threads(list_events), methods=["GET"]),
        Route("/events/{event_id}", on_threads(get_event), methods=["GET"]),
    ]
    if safety is not None:
        routes += [
            Route("/sla", on_threads(sla), methods=["GET"]),
            Route("/index", on_threads(index), methods=["GET"]),
        ]
    return Starlette(
        routes=routes,
        exception_handlers={404: not_found, HTTPException: http_error, Exception: internal_error},
    )


# -- the server -----------------------------------------------------------------------------------


class HttpServer:
    """An ASGI app served by uvicorn on a thread of its own (named ``http``), on a socket from
    :func:`listen`. :meth:`start` returns once uvicorn accepts connections; :meth:`stop` closes
    the socket, waiting at most ``grace_s`` for requests under way."""

    def __init__(self, app: Starlette, sock: socket.socket, *, grace_s: float = 2.0) -> None:
        self._socket = sock
        config = uvicorn.Config(
            app,
            http="h11",
            loop="asyncio",
            lifespan="off",
            log_config=None,  # our logging; uvicorn's own only at warning and above
            log_level=logging.WARNING,
            access_log=False,  # never a request line, let alone a header, in the log
            server_header=False,
            limit_concurrency=MAX_CONNECTIONS,
            timeout_graceful_shutdown=int(grace_s) or 1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)
        self._failure: BaseException | None = None

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # SystemExit included: uvicorn exits on start-up errors
            self._failure = exc
            log.error("the HTTP server stopped: %s", exc)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)  # uvicorn has no start-up event to wait on; this is ~1 ms
        if not self._server.started:
            raise SettingsError(f"the HTTP server did not start: {self._failure or 'timed out'}")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)
        self._socket.close()
