"""The read-only HTTP API (CONTRACT §9): /healthz, /metrics, and routes added by other parts."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

Route = Callable[[str, dict[str, str]], tuple[int, str, bytes]]
"""(path, query) → (status, content type, body)."""


def json_response(status: int, value: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(value, ensure_ascii=False).encode()


class HttpApi:
    def __init__(self, host: str, port: int) -> None:
        self._routes: list[tuple[str, Route]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "firegrid"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                status, content_type, body = api.dispatch(parts.path, query)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http: " + format, *args)

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise OSError(f"cannot serve HTTP on {host}:{port}: {exc.strerror}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def route(self, prefix: str, handler: Route) -> None:
        """Serve paths equal to ``prefix`` or under ``prefix/``; the longest prefix wins."""
        self._routes.append((prefix, handler))
        self._routes.sort(key=lambda item: -len(item[0]))

    def dispatch(self, path: str, query: dict[str, str]) -> tuple[int, str, bytes]:
        for prefix, handler in self._routes:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                try:
                    return handler(path, query)
                except Exception:
                    log.exception("HTTP handler for %s failed", path)
                    return json_response(500, {"error": "internal error"})
        return json_response(404, {"error": f"no such resource {path}"})

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
