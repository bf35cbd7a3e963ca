"""The console's web application (CONTRACT §11): Starlette, server-rendered pages, live updates.

Pages (the accessible names are the contract's)::

    GET  /login                  sign-in form (User, Password, Sign in)
    POST /login                  check against FIREGRID_CREDENTIALS/passwd, throttled per user
    POST /logout                 Sign out
    GET  /                       the inbox: heading Events, open events critical first, newest first
    GET  /events/{event_id}      one event: facts, map, history; Acknowledge, Resolve, Close, Comment
    POST /events/{event_id}/action   publish the action, wait for its result, show it
    GET  /map                    the grids, coloured by their most severe open event
    GET  /grids                  supervisors: their grids by fire-safety index, least safe first
    GET  /grids/{grid_id}        supervisors: a grid's index, groups, indicators and handling figures
    GET  /live                   Server-Sent Events: a change the user may see, or "reload"
    GET  /healthz                {"status", "mqtt", "synced", "sessions", "live"} (no session needed)

``?part=…`` on a page answers only its live region (what the page's script fetches after a
change). Every form carries the session's CSRF token; a POST without it, or with a wrong one,
answers 403 and changes nothing. Templates autoescape everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

import anyio
import orjson
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from access import PASSWD, Access, PasswordFile, Role, Visibility
from console import _format
from console._api import ApiError, IngestApi
from console._grids import GridBoard, band
from console._live import SEVERITY_RANK, EventCache, Hub, is_event
from console._map import GridMap, SvgMap
from console._mqtt import ConsoleMqtt
from console._sessions import Flash, LoginThrottle, Session, SessionStore
from console._settings import ConsoleSettings
from devices import Registry, RegistryError, Topics, is_identifier

log = logging.getLogger(__name__)

HERE: Final = Path(__file__).resolve().parent
COOKIE: Final = "firegrid_console"
ACTIONS: Final[dict[str, str]] = {
    "ack": "Acknowledged.",
    "resolve": "Resolved.",
    "close": "Closed.",
    "comment": "Comment added.",
}
"""The actions of CONTRACT §8, and what the page says when one succeeds."""
SIGN_IN_ROLES: Final = (Role.WORKER, Role.SUPERVISOR, Role.STATION)
ACTING_ROLES: Final = (Role.WORKER, Role.SUPERVISOR)
GRID_ROLES: Final = (Role.SUPERVISOR,)
"""Who sees the grids' index and handling figures (issue 15: supervisors; docs/CONSOLE.md)."""
MAX_GRIDS: Final = 300
"""Grids listed on /grids (the least safe); the rest are counted."""
ACTION_TIMEOUT_S: Final = 10.0
MAX_FORM_BYTES: Final = 64 * 1024
MAX_INBOX: Final = 500
MAX_SHARED_LISTS: Final = 256
"""Rendered inbox lists kept for sharing (by rights and cache state); all dropped when full."""
KEEPALIVE_S: Final = 15.0
WRONG: Final = "Wrong user or password"
CSRF_REFUSED: Final = (
    "This form was not sent by this console's page (missing or wrong CSRF token); nothing was changed."
)
SECURITY_HEADERS: Final = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response (pure ASGI: streams stay streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# -- templates ----------------------------------------------------------------------------------


def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        clock=_format.clock,
        number=_format.number,
        duration=_format.duration,
        score=_format.score,
        percent=_format.percent,
        band=band,
    )
    return env


async def _form(request: Request) -> dict[str, str] | None:
    """An ``application/x-www-form-urlencoded`` body as single values; None if not one."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[0] for name, values in parsed.items()}


class Console:
    """Everything one console process holds; :attr:`app` is its ASGI application."""

    def __init__(self, settings: ConsoleSettings, *, clock: Any = time.monotonic) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.passwords = PasswordFile(settings.credentials / PASSWD)
        self.registry = Registry.load(settings.registry)
        self.access = Access(self.registry)
        self.grid_map = GridMap.load(settings.registry / "grids.geojson")
        self.sessions = SessionStore(clock)
        self.throttle = LoginThrottle(clock)
        self.cache = EventCache()
        self.hub = Hub()
        broker = settings.broker
        assert broker.user is not None and broker.password is not None  # the settings check it
        self.api = IngestApi(settings.api_urls, broker.user, broker.password)
        self.board = GridBoard(self.api, clock=clock)
        self.mqtt = ConsoleMqtt(
            broker,
            self.topics,
            on_alert=self._alert,
            on_result=self._result,
            on_connected=self._connected,
            ca_file=settings.mqtt_ca,
        )
        self.templates = _templates()
        self._lists: dict[tuple[object, ...], str] = {}
        self._pending: dict[tuple[str, str, str], deque[asyncio.Future[dict[str, Any]]]] = {}
        self._sync_wanted: asyncio.Event | None = None
        self.app = SecurityHeaders(self._build())

    # -- wiring ------------------------------------------------------------------------------------

    def _build(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/login", self.login_page, methods=["GET"]),
                Route("/login", self.login, methods=["POST"]),
                Route("/logout", self.logout, methods=["POST"]),
                Route("/", self.inbox, methods=["GET"]),
                Route("/events/{event_id}", self.event_page, methods=["GET"]),
                Route("/events/{event_id}/action", self.act, methods=["POST"]),
                Route("/map", self.map_page, methods=["GET"]),
                Route("/grids", self.grids_page, methods=["GET"]),
                Route("/grids/{grid_id}", self.grid_page, methods=["GET"]),
                Route("/live", self.live, methods=["GET"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
            ],
            exception_handlers={404: self._not_found, 405: self._not_allowed},
            lifespan=self._lifespan,
        )

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        self.hub.bind(loop)
        self._sync_wanted = asyncio.Event()
        self._sync_wanted.set()  # the first sync does not wait for the broker
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        syncer = loop.create_task(self._syncer(), name="sync")
        self.mqtt.start()
        try:
            yield
        finally:
            syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await syncer
            await anyio.to_thread.run_sync(self.mqtt.stop)
            await self.api.close()
            self.passwords.close()

    async def reload(self) -> None:
        """SIGHUP: the registry again (who sees what, the map); sessions and events stay."""
        try:
            registry = await anyio.to_thread.run_sync(Registry.load, self.settings.registry, self.registry)
            access = Access(registry)
            grid_map = await anyio.to_thread.run_sync(GridMap.load, self.settings.registry / "grids.geojson")
        except RegistryError as exc:
            log.error("registry not reloaded, the old one stays: %s", exc)
            return
        self.registry, self.access, self.grid_map = registry, access, grid_map
        log.info("registry reloaded: %d grids, %d workers", len(registry.grids), len(registry.workers))
        self.hub.resync()

    # -- MQTT (callbacks on paho's thread hand over to the event loop) ----------------------------

    def _connected(self) -> None:
        self.hub.post(self._want_sync)

    def _want_sync(self) -> None:
        self.cache.synced = False
        if self._sync_wanted is not None:
            self._sync_wanted.set()

    def _alert(self, document: dict[str, Any]) -> None:
        if is_event(document):
            self.hub.post(lambda: self._apply(document))

    def _apply(self, event: dict[str, Any]) -> None:
        if self.cache.apply(event):
            self.hub.change(event)

    def _result(self, worker_id: str, document: dict[str, Any]) -> None:
        self.hub.post(lambda: self._resolve(worker_id, document))

    def _resolve(self, worker_id: str, result: dict[str, Any]) -> None:
        key = (worker_id, str(result.get("event_id")), str(result.get("action")))
        waiting = self._pending.get(key)
        while waiting:
            future = waiting.popleft()
            if not future.done():
                future.set_result(result)
                break
        if waiting is not None and not waiting:
            del self._pending[key]

    async def _syncer(self) -> None:
        """Fetch every open event from ingest whenever asked (start, each broker reconnect),
        retrying until it works; then every page reloads its live region."""
        assert self._sync_wanted is not None
        while True:
            await self._sync_wanted.wait()
            self._sync_wanted.clear()
            delay = 0.5
            while True:
                mark = self.cache.mark()
                try:
                    events = await self.api.open_events()
                except ApiError as exc:
                    log.warning("%s; retrying in %.1f s", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                self.cache.sync(events, mark)
                log.info("synced with firegrid ingest: %d open events", len(self.cache))
                self.hub.resync()
                break

    # -- sessions --------------------------------------------------------------------------------

    def _session(self, request: Request, *, touch: bool = True) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE), touch=touch)

    def _signed_in(self, request: Request, *, touch: bool = True) -> tuple[Session, Visibility] | None:
        """The signed-in session and what its user may see, or None."""
        session = self._session(request, touch=touch)
        if session is None or session.user is None:
            return None
        seen = self.access.for_user(session.user)
        if seen.forbidden or seen.role not in SIGN_IN_ROLES:  # gone from the registry since
            self.sessions.end(session)
            return None
        return session, seen

    def _set_cookie(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            session.sid,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )

    # -- rendering -------------------------------------------------------------------------------

    def _render(
        self,
        name: str,
        context: Mapping[str, Any],
        *,
        status: int = 200,
        signed_in: tuple[Session, Visibility] | None = None,
    ) -> HTMLResponse:
        values: dict[str, Any] = {
            "user": None,
            "role": None,
            "csrf": "",
            "synced": True,
            "now_ms": int(time.time() * 1000),
        }
        if signed_in is not None:
            session, seen = signed_in
            values.update(
                user=session.user,
                role=seen.role.value if seen.role else "",
                csrf=session.csrf,
                synced=self.cache.synced,
            )
        values.update(context)
        html = self.templates.get_template(name).render(values)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def _to_login(self) -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        signed_in = self._signed_in(request, touch=False)
        return self._render("missing.html", {"what": "page"}, status=404, signed_in=signed_in)

    async def _not_allowed(self, request: Request, exc: Exception) -> Response:
        return Response("Method not allowed", status_code=405, media_type="text/plain")

    def _forbidden(self, message: str, signed_in: tuple[Session, Visibility] | None) -> HTMLResponse:
        return self._render("refused.html", {"message": message}, status=403, signed_in=signed_in)

    def _unavailable(self, exc: ApiError, signed_in: tuple[Session, Visibility]) -> HTMLResponse:
        """ingest not answering (or not as expected): a readable page, 503."""
        return self._render("unavailable.html", {"message": str(exc)}, status=503, signed_in=signed_in)

    # -- sign-in ---------------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        if self._signed_in(request) is not None:
            return RedirectResponse("/", status_code=303)
        session = self._session(request) or self.sessions.anonymous()
        response = self._render("login.html", {"csrf": session.csrf, "error": None, "entered": ""})
        self._set_cookie(request, response, session)
        return response

    async def login(self, request: Request) -> Response:
        session = self._session(request)
        form = await _form(request)
        if session is None or form is None or not session.check_csrf(form.get("csrf")):
            return self._forbidden(CSRF_REFUSED, None)
        user = form.get("user", "").strip()
        password = form.get("password", "")

        def refuse(message: str, status: int) -> Response:
            assert session is not None
            return self._render(
                "login.html", {"csrf": session.csrf, "error": message, "entered": user[:64]}, status=status
            )

        if not is_identifier(user):  # no principal has such a name (§2): nothing to track
            log.info("sign-in refused: wrong user or password")
            return refuse(WRONG, 401)
        locked = self.throttle.locked_for(user)
        if locked > 0:
            return refuse(f"Too many failed sign-ins for this user: try again in {int(locked) + 1} s", 429)
        if not password or not await anyio.to_thread.run_sync(self.passwords.check, user, password):
            self.throttle.failed(user)
            log.info("sign-in refused: wrong user or password")  # never the name: it may be a password
            return refuse(WRONG, 401)
        self.throttle.succeeded(user)
        role = self.access.principals.role_of(user)
        if role not in SIGN_IN_ROLES:
            log.info(
                "sign-in refused for %s: a %s", user, role.value if role else "user unknown to the registry"
            )
            return refuse("Devices and service accounts cannot sign in to the console", 403)
        signed = self.sessions.sign_in(session, user)
        log.info("%s signed in", user)
        response = RedirectResponse("/", status_code=303)
        self._set_cookie(request, response, signed)
        return response

    async def logout(self, request: Request) -> Response:
        session = self._session(request)
        form = await _form(request)
        if session is None or form is None or not session.check_csrf(form.get("csrf")):
            return self._forbidden(CSRF_REFUSED, self._signed_in(request, touch=False))
        self.sessions.end(session)
        response = self._to_login()
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    # -- pages -------------------------------------------------------------------------------------

    def _is_live(self, request: Request) -> bool:
        """A live region's fetch after a change: not a use of the session (idle expiry)."""
        return request.headers.get("x-firegrid-live") == "1"

    async def inbox(self, request: Request) -> Response:
        signed_in = self._signed_in(request, touch=not self._is_live(request))
        if signed_in is None:
            return self._to_login()
        seen = signed_in[1]
        if request.query_params.get("part") == "list":
            return self._inbox_list(seen)
        return self._render("inbox.html", self._inbox_context(seen), signed_in=signed_in)

    def _inbox_context(self, seen: Visibility) -> dict[str, Any]:
        events = self.cache.visible(seen)
        return {"events": events[:MAX_INBOX], "more": max(0, len(events) - MAX_INBOX)}

    def _inbox_list(self, seen: Visibility) -> HTMLResponse:
        """The inbox's live region: it depends only on the events ``seen`` allows, so every
        session with the same rights shares one rendering per state of the cache (a change
        reaching 20 supervisors costs one render, not 20)."""
        key = (seen.role, seen.grids, seen.station, self.cache.mark())
        html = self._lists.get(key)
        if html is None:
            html = self.templates.get_template("_inbox_list.html").render(self._inbox_context(seen))
            if len(self._lists) >= MAX_SHARED_LISTS:
                self._lists.clear()
            self._lists[key] = html
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    async def _visible_event(self, seen: Visibility, event_id: str) -> dict[str, Any] | None:
        """The event with its history if ``seen`` allows it; None otherwise (or none such)."""
        if not is_identifier(event_id):
            return None
        event = await self.api.event(event_id)
        return event if event is not None and seen.allows(event) else None

    async def event_page(self, request: Request) -> Response:
        signed_in = self._signed_in(request, touch=not self._is_live(request))
        if signed_in is None:
            return self._to_login()
        session, seen = signed_in
        event_id: str = request.path_params["event_id"]
        try:
            event = await self._visible_event(seen, event_id)
        except ApiError as exc:
            return self._unavailable(exc, signed_in)
        if event is None:  # not there, or not the user's: the same answer
            return self._render("missing.html", {"what": "event"}, status=404, signed_in=signed_in)
        lon, lat = event.get("lon"), event.get("lat")
        svg = self.grid_map.around(
            str(event.get("grid_id")),
            float(lon) if isinstance(lon, int | float) else None,
            float(lat) if isinstance(lat, int | float) else None,
        )
        part = request.query_params.get("part") == "body"
        context = {
            "e": event,
            "svg": svg,
            "can_act": seen.role in ACTING_ROLES,
            "supervisor": seen.role is Role.SUPERVISOR,
            "flash": None if part else self._flash_for(session, event_id),
        }
        return self._render("_event_body.html" if part else "event.html", context, signed_in=signed_in)

    @staticmethod
    def _flash_for(session: Session, event_id: str) -> Flash | None:
        flash = session.take_flash()
        return flash if flash is not None and flash.event_id == event_id else None

    async def act(self, request: Request) -> Response:
        signed_in = self._signed_in(request)
        form = await _form(request)
        if signed_in is None or form is None or not signed_in[0].check_csrf(form.get("csrf")):
            return self._forbidden(CSRF_REFUSED, signed_in)
        session, seen = signed_in
        event_id: str = request.path_params["event_id"]
        action = form.get("action", "")
        if action not in ACTIONS:
            return self._render(
                "refused.html",
                {"message": f"Unknown action {action[:20]!r}"},
                status=400,
                signed_in=signed_in,
            )
        if seen.role not in ACTING_ROLES or session.user is None:
            return self._forbidden("Only grid workers and supervisors act on events.", signed_in)
        try:
            event = await self._visible_event(seen, event_id)
        except ApiError as exc:
            return self._unavailable(exc, signed_in)
        if event is None:
            return self._render("missing.html", {"what": "event"}, status=404, signed_in=signed_in)
        session.flash = await self.perform(session.user, event_id, action, form.get("note", "").strip())
        return RedirectResponse(f"/events/{event_id}", status_code=303)

    async def perform(self, worker_id: str, event_id: str, action: str, note: str) -> Flash:
        """Publish the action on ``actions/{worker_id}`` and wait for its result."""
        key = (worker_id, event_id, action)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, deque()).append(future)
        payload: dict[str, Any] = {"event_id": event_id, "action": action}
        if note:
            payload["note"] = note
        try:
            if not self.mqtt.publish_action(worker_id, payload):
                return Flash(
                    False, "The console is not connected to the broker; try again in a moment.", event_id
                )
            try:
                result = await asyncio.wait_for(asyncio.shield(future), ACTION_TIMEOUT_S)
            except TimeoutError:
                return Flash(
                    False,
                    f"No answer from firegrid ingest within {ACTION_TIMEOUT_S:.0f} s; "
                    "the action may still be applied (this page updates when it is).",
                    event_id,
                )
        finally:
            waiting = self._pending.get(key)
            if waiting is not None and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._pending[key]
        if result.get("ok") is True:
            log.info("%s: %s %s", worker_id, action, event_id)
            return Flash(True, ACTIONS[action], event_id)
        error = result.get("error")
        return Flash(False, str(error) if error else "refused by firegrid ingest", event_id)

    async def map_page(self, request: Request) -> Response:
        signed_in = self._signed_in(request, touch=not self._is_live(request))
        if signed_in is None:
            return self._to_login()
        seen = signed_in[1]
        events = self.cache.visible(seen)
        worst: dict[str, str] = {}
        for event in events:
            grid, severity = str(event.get("grid_id")), str(event.get("severity"))
            if SEVERITY_RANK.get(severity, -1) > SEVERITY_RANK.get(worst.get(grid, ""), -1):
                worst[grid] = severity
        districts = None if seen.grids is None else self.grid_map.districts_of(seen.grids)
        svg: SvgMap = self.grid_map.draw(worst, districts=districts)
        hot = sorted(worst.items(), key=lambda item: (-SEVERITY_RANK.get(item[1], -1), item[0]))
        context = {"svg": svg, "hot": hot}
        name = "_map_body.html" if request.query_params.get("part") == "svg" else "map.html"
        return self._render(name, context, signed_in=signed_in)

    async def grids_page(self, request: Request) -> Response:
        signed_in = self._signed_in(request)
        if signed_in is None:
            return self._to_login()
        seen = signed_in[1]
        if seen.role not in GRID_ROLES:
            return self._forbidden("Only supervisors see the grids' safety index.", signed_in)
        try:
            ranking = await self.board.ranking(seen)
        except ApiError as exc:
            return self._unavailable(exc, signed_in)
        context = {
            "at": ranking.at_ms,
            "grids": ranking.grids[:MAX_GRIDS],
            "more": ranking.grids[MAX_GRIDS:],
            "names": {g.grid_id: g.name for g in self.registry.grids.values()},
        }
        return self._render("grids.html", context, signed_in=signed_in)

    async def grid_page(self, request: Request) -> Response:
        signed_in = self._signed_in(request)
        if signed_in is None:
            return self._to_login()
        seen = signed_in[1]
        if seen.role not in GRID_ROLES:
            return self._forbidden("Only supervisors see the grids' safety index.", signed_in)
        grid_id: str = request.path_params["grid_id"]
        try:
            page = await self.board.grid(seen, grid_id) if is_identifier(grid_id) else None
        except ApiError as exc:
            return self._unavailable(exc, signed_in)
        if page is None:  # not there, or not the user's: the same answer
            return self._render("missing.html", {"what": "grid"}, status=404, signed_in=signed_in)
        events = [e for e in self.cache.visible(seen) if e.get("grid_id") == grid_id]
        grid = self.registry.grids.get(grid_id)
        context = {
            "g": page.safety,
            "name": grid.name if grid is not None else "",
            "at": page.at_ms,
            "handling": page.handling,
            "events": events[:MAX_INBOX],
            "more": max(0, len(events) - MAX_INBOX),
        }
        return self._render("grid.html", context, signed_in=signed_in)

    # -- live updates ------------------------------------------------------------------------------

    async def live(self, request: Request) -> Response:
        signed_in = self._signed_in(request, touch=False)
        if signed_in is None:
            return Response("sign in first", status_code=401, media_type="text/plain")
        session, seen = signed_in
        listener = self.hub.join(seen)
        sessions = self.sessions

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n\nevent: hello\ndata: {}\n\n"
                while True:
                    try:
                        kind, message = await asyncio.wait_for(listener.queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        kind, message = "", {}
                    if not sessions.alive(session):
                        yield b"event: expired\ndata: {}\n\n"
                        return
                    if kind == "bye":
                        return
                    if not kind:
                        yield b": keep-alive\n\n"
                        continue
                    yield b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(message) + b"\n\n"
            finally:
                self.hub.leave(listener)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def healthz(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "mqtt": "connected" if self.mqtt.connected else "disconnected",
                "synced": self.cache.synced,
                "events": len(self.cache),
                "sessions": len(self.sessions),
                "live": len(self.hub),
            }
        )
