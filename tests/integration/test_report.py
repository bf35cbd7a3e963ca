"""`firegrid report` end to end (CONTRACT §12, issue 15): a real `firegrid ingest` fills its event
store from readings published with the simulator's account, workers act on some events over MQTT
(`actions/{worker}`) and leave others open; ingest's `/sla` for the month is asked before it
stops; then `python -m firegrid report` runs as a process on the same settings. The HTML must
show every grid, the same figures as `/sla`, the worst grids' open hazards, reference nothing
outside itself, and render in Debian's headless Chromium without sideways scrolling at phone
width; the desktop rendering is docs/report.png.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Route, sync_playwright

from access import SIMULATOR_ACCOUNT
from firegrid._report_month import Month
from firegrid._services import Influxd, Mosquitto
from safety import FIGURES
from tests.helpers import API_AUTH, HTTP, eventually, screenshot_path
from tests.integration.conftest import IngestProcess, service_env
from tests.integration.test_console import CHROMIUM, CHROMIUM_ARGS, PHONE
from tests.mqtt import TestClient

DESKTOP = {"width": 1280, "height": 900}
READINGS = (
    ("smoke", "S0000", {"alarm": True}),  # FIRE_ALARM, critical, G00: acked, resolved, closed
    ("smoke", "S0001", {"alarm": False, "tamper": True}),  # TAMPER, major, G00: acknowledged only
    ("smoke", "S0002", {"alarm": True}),  # FIRE_ALARM, critical, G02 (and FIRE_CONFIRMED): left open
    ("water", "W0002", {"pressure_mpa": 0.01}),  # PRESSURE_LOSS, critical: left open
)


def api(ingest: IngestProcess, path: str, **params: Any) -> Any:
    response = HTTP.get(f"{ingest.http}{path}", params=params, auth=API_AUTH, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def act(sim: TestClient, ingest: IngestProcess, prefix: str, worker: str, event_id: str, action: str) -> None:
    sim.publish(f"{prefix}actions/{worker}", {"event_id": event_id, "action": action})
    state = {"ack": "acknowledged", "resolve": "resolved", "close": "closed"}[action]
    eventually(lambda: api(ingest, f"/events/{event_id}")["state"] == state, what=f"{worker} {action}")


def fill_event_store(ingest: IngestProcess, broker: Mosquitto, prefix: str) -> list[dict[str, Any]]:
    sim = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    try:
        for kind, device, payload in READINGS:
            sim.publish(f"{prefix}fire/D01/{kind}/{device}", payload)

        def raised() -> list[dict[str, Any]] | None:
            events: list[dict[str, Any]] = api(ingest, "/events")
            types = sorted(e["type"] for e in events)
            return (
                events
                if types.count("FIRE_ALARM") == 2 and {"TAMPER", "PRESSURE_LOSS"} <= set(types)
                else None
            )

        events = eventually(raised, what="the test's events raised")
        by = {(e["device_id"], e["type"]): e["event_id"] for e in events}
        fire, tamper = by["S0000", "FIRE_ALARM"], by["S0001", "TAMPER"]
        act(sim, ingest, prefix, "W0", fire, "ack")
        act(sim, ingest, prefix, "W0", fire, "resolve")
        act(sim, ingest, prefix, "SUP1", fire, "close")
        act(sim, ingest, prefix, "W0", tamper, "ack")
    finally:
        sim.close()
    return events


def month_of(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m")


def figures_in(html: str) -> dict[str, dict[str, Any]]:
    """grid_id (or ``total``) → figures, from the figures table's ``data-value`` cells."""
    table = html.split('id="figures"', 1)[1]
    rows = re.findall(r'<tr(?: class="total")? data-grid="([^"]+)">(.*?)</tr>', table, re.S)
    return {
        grid: {
            name: json.loads(value)
            for name, value in re.findall(r'data-figure="(\w+)" data-value="([^"]*)"', cells)
        }
        for grid, cells in rows
    }


def test_the_monthly_report_of_a_real_event_store(
    broker: Mosquitto,
    influx: Influxd,
    influx_db: str,
    topic_prefix: str,
    registry_dir: Path,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    env = service_env(broker, influx, influx_db, topic_prefix, registry_dir, data_dir)
    ingest = IngestProcess(env, tmp_path / "ingest.log")
    ingest.start()
    try:
        events = fill_event_store(ingest, broker, topic_prefix)
        month = month_of(min(e["raised_at"] for e in events))
        window = Month.parse(month, max(e["raised_at"] for e in events))
        sla = api(ingest, "/sla", district="D01", since=window.start_ms, until=window.end_ms)
    finally:
        assert ingest.stop() == 0
    assert sla["total"]["raised"] == len(events) >= 5

    out = tmp_path / "report.html"
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "firegrid",
            "report",
            "--district",
            "D01",
            "--month",
            month,
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert report.returncode == 0 and report.stderr == "", report.stderr
    assert report.stdout.startswith(f"{out}: D01, {window.label}: 4 grids, {len(events)} events (")
    html = out.read_text(encoding="utf-8")

    # the grids, their ranking, the figures of /sla (total and per grid), the open hazards
    grids = ["D01-G00", "D01-G01", "D01-G02", "D01-G03"]
    ranking = html.split('id="ranking"', 1)[1].split("</table>", 1)[0]
    assert sorted(re.findall(r'<tr data-grid="([^"]+)">', ranking)) == grids
    shown = figures_in(html)
    assert shown.pop("total") == sla["total"]
    assert shown == sla["grids"] and list(shown) == sorted(shown)
    assert all(list(figures) == list(FIGURES) for figures in shown.values())
    worst = dict(re.findall(r'<article class="worst" data-grid="([^"]+)">(.*?)</article>', html, re.S))
    assert {"D01-G00", "D01-G02"} <= set(worst)
    assert "TAMPER" in worst["D01-G00"] and "acknowledged" in worst["D01-G00"]
    assert "FIRE_ALARM" not in worst["D01-G00"]  # resolved (and closed): no longer a hazard
    assert "FIRE_ALARM" in worst["D01-G02"] and ">open<" in worst["D01-G02"]

    # self-contained: no script, nothing fetched
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"url\(|@import|<link|<img|<iframe", html, re.I)

    requested: list[str] = []

    def record(route: Route) -> None:
        requested.append(route.request.url)
        if urlsplit(route.request.url).scheme == "file":
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for viewport in (PHONE, DESKTOP):
                context = browser.new_context(viewport=viewport, device_scale_factor=1)  # type: ignore[arg-type]
                context.route("**/*", record)
                page = context.new_page()
                page.goto(out.as_uri())
                assert page.title() == f"Fire-safety report · D01 · {window.label}"
                assert page.locator("svg.chart g.series").count() == 1 + len(worst)
                assert page.locator("svg.chart").bounding_box()["width"] > 300  # type: ignore[index]
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"], (
                    f"the report scrolls sideways at {viewport['width']} px: {width}"
                )
                if viewport is DESKTOP:
                    shot = screenshot_path("report.png", tmp_path)  # README's picture of a report
                    page.screenshot(path=str(shot), full_page=True)
                    assert shot.read_bytes().startswith(b"\x89PNG"), shot
                    assert page.pdf(format="A4").startswith(b"%PDF")  # printable
                context.close()
        finally:
            browser.close()
    assert requested == [out.as_uri(), out.as_uri()], requested
