"""The web console of grid workers, supervisors and stations (CONTRACT §11).

A client of ingest like any other: MQTT as ``firegrid-console`` (live changes from ``alerts/#``,
the workers' actions on ``actions/{worker_id}`` and their results) and ingest's HTTP API (lists
and histories), so any number of consoles can run and none can slow the pipeline. Typical use::

    settings = load_console_settings()   # FIREGRID_CONSOLE_HTTP, FIREGRID_CONSOLE_API, ...
    serve(settings)                      # until SIGTERM

or, to mount it elsewhere, ``Console(settings).app`` (an ASGI application).
"""

from console._api import ApiError, IngestApi
from console._app import Console
from console._live import EventCache, Hub, inbox_order
from console._map import GridMap, SvgMap
from console._server import serve
from console._sessions import Flash, LoginThrottle, Session, SessionStore
from console._settings import ConsoleSettings, load_console_settings

__all__ = [
    "ApiError",
    "Console",
    "ConsoleSettings",
    "EventCache",
    "Flash",
    "GridMap",
    "Hub",
    "IngestApi",
    "LoginThrottle",
    "Session",
    "SessionStore",
    "SvgMap",
    "inbox_order",
    "load_console_settings",
    "serve",
]
