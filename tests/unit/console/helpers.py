"""Helpers of the console's unit tests: a settable clock, the CSRF token of a page, signing in,
an event as ingest writes it, the console's settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from console import ConsoleSettings
from firegrid._services import free_port

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
CONSOLE_PASSWORD = "not-used"
"""The console's password in its FIREGRID_MQTT_URL (the fake ingest checks it)."""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(registry: Path, credentials: Path, api: str | None = None) -> ConsoleSettings:
    """No broker answers here; ingest's API at ``api`` (default: a closed port)."""
    return ConsoleSettings(
        console_http="127.0.0.1:8081",
        console_api=api or f"http://127.0.0.1:{free_port()}",
        mqtt_url=f"mqtt://firegrid-console:{CONSOLE_PASSWORD}@127.0.0.1:{free_port()}",
        mqtt_ca=None,
        credentials=credentials,
        registry=registry,
        topic_prefix="",
        console_cert=None,
        console_key=None,
    )


def token(html: str) -> str:
    match = CSRF.search(html)
    assert match, html
    return match.group(1)


def sign_in(client: TestClient, user: str, password: str) -> Any:
    """Sign in afresh (as a new visitor)."""
    client.cookies.clear()
    page = client.get("/login")
    return client.post("/login", data={"csrf": token(page.text), "user": user, "password": password})


def event(event_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": event_id,
        "type": "FIRE_ALARM",
        "severity": "critical",
        "state": "open",
        "cleared": False,
        "escalated": False,
        "district": "D01",
        "grid_id": "D01-G00",
        "site_id": "S0",
        "device_id": "S0000",
        "kind": "smoke",
        "lat": 34.302,
        "lon": 108.702,
        "station_id": "D01-ST1",
        "value": 1.0,
        "threshold": 1.0,
        "count": 1,
        "raised_at": 1_764_583_200_000,
        "updated_at": 1_764_583_200_000,
        "message": "Smoke alarm",
    }
    base.update(fields)
    return base
