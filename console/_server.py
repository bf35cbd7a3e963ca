"""Serving the console: uvicorn on ``FIREGRID_CONSOLE_HTTP`` (HTTPS with a certificate and key)."""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Final

import uvicorn

from console._app import Console
from console._settings import ConsoleSettings
from devices import listen

log = logging.getLogger(__name__)

GRACE_S: Final = 2.0
"""How long a stop waits for requests under way (live streams are cut after it)."""


def serve(settings: ConsoleSettings) -> None:
    """Run until SIGINT or SIGTERM. Raises :class:`SettingsError` for a port in use and
    :class:`devices.RegistryError` for a registry that does not load."""
    sock = listen(settings.http_host, settings.http_port)
    try:
        console = Console(settings)
        config = uvicorn.Config(
            console.app,
            http="h11",
            loop="asyncio",
            lifespan="on",
            log_config=None,
            access_log=False,  # a request line can hold an event id, never a password; still: off
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=int(GRACE_S),
            ssl_certfile=str(settings.console_cert) if settings.console_cert else None,
            ssl_keyfile=str(settings.console_key) if settings.console_key else None,
        )
        scheme = "https" if settings.tls else "http"
        log.info("console on %s://%s (ingest API %s)", scheme, settings.console_http, settings.console_api)
        # uvicorn raises the stopping signal again once it has shut down, to whatever handler was
        # there before it: let that be one that does nothing, so a SIGTERM ends with exit code 0
        previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            _Server(config, console).run(sockets=[sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        sock.close()


class _Server(uvicorn.Server):
    """uvicorn, ending the live streams as soon as a stop begins (they never end by themselves,
    and uvicorn waits for every open response before it shuts down)."""

    def __init__(self, config: uvicorn.Config, console: Console) -> None:
        super().__init__(config)
        self.console = console

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.console.hub.post(self.console.hub.close)
        super().handle_exit(sig, frame)


def _stopped(sig: int, frame: FrameType | None) -> None:
    """The signal that stopped uvicorn, raised again after a clean shutdown: nothing to do."""
