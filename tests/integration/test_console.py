"""The console end to end (CONTRACT §11) in Debian's headless Chromium, driven by Playwright.

Real parts only: the session's mosquitto and influxd, a real `firegrid ingest` with HTTP Basic on
`/events` (FIREGRID_CREDENTIALS from `make_credentials`), a real `firegrid console` process, and
device traffic published with the simulator's account. One stack serves the module (each test
uses devices of its own); each user gets a fresh browser context at phone size (390×844), and
every page visited is measured for horizontal scrolling. Screenshots of the inbox, an event and
the map go to docs/console/.
"""

from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Route,
    ViewportSize,
    expect,
    sync_playwright,
)

from access import CONSOLE_ACCOUNT, PASSWD, SECRETS, SIMULATOR_ACCOUNT, hash_password, make_credentials
from firegrid._services import Influxd, Mosquitto, WebConsole, free_port
from tests.helpers import HTTP, eventually, screenshot_path, write_registry
from tests.integration.conftest import IngestProcess, service_env
from tests.mqtt import TestClient

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: ViewportSize = {"width": 390, "height": 844}
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}

assert os.access(CHROMIUM, os.X_OK), "no chromium: run `make setup`"


@dataclass
class Stack:
    console: str
    """The console's base URL."""
    ingest: IngestProcess
    passwords: dict[str, str]
    """Clear passwords of the registry's principals (secrets.csv)."""
    sim: TestClient
    prefix: str
    browser: Browser
    process: WebConsole
    scratch: Path
    """Where screenshots go unless FIREGRID_REFRESH_SCREENSHOTS=1 (then docs/console/)."""

    def screenshot(self, page: Page, name: str, full_page: bool = False) -> None:
        """docs/console/``name`` (README, docs/CONSOLE.md), taken from the real page."""
        path = screenshot_path(f"console/{name}", self.scratch)
        page.screenshot(path=str(path), full_page=full_page)
        assert path.read_bytes().startswith(b"\x89PNG"), path

    def console_health(self) -> dict[str, Any] | None:
        assert self.process.running, f"firegrid console exited: {self.process.log_tail(10)}"
        return self.process.health()

    def publish(self, kind: str, device: str, payload: dict[str, Any]) -> None:
        self.sim.publish(f"{self.prefix}fire/D01/{kind}/{device}", payload)

    def api_event(self, event_id: str) -> dict[str, Any]:
        """The event as ingest's `/events/{id}` tells a supervisor."""
        response = HTTP.get(
            f"{self.ingest.http}/events/{event_id}", auth=("SUP1", self.passwords["SUP1"]), timeout=10
        )
        assert response.status_code == 200, response.text
        event: dict[str, Any] = response.json()
        return event

    def find_event(self, device: str, type_: str) -> dict[str, Any] | None:
        response = HTTP.get(f"{self.ingest.http}/events", auth=("SUP1", self.passwords["SUP1"]), timeout=10)
        assert response.status_code == 200, response.text
        found = [e for e in response.json() if e["device_id"] == device and e["type"] == type_]
        return found[0] if found else None

    def context(self) -> BrowserContext:
        context = self.browser.new_context(viewport=PHONE, device_scale_factor=1, base_url=self.console)
        context.route("**/*", _loopback_only)
        context.set_default_timeout(10_000)
        return context

    def sign_in(self, user: str, password: str | None = None) -> Page:
        page = self.context().new_page()
        page.goto("/login")
        page.get_by_label("User").fill(user)
        page.get_by_label("Password").fill(self.passwords[user] if password is None else password)
        page.get_by_role("button", name="Sign in").click()
        return page


def _loopback_only(route: Route) -> None:
    if urlsplit(route.request.url).hostname in LOOPBACK:
        route.continue_()
    else:
        route.abort()


def assert_fits(page: Page) -> None:
    """No horizontal scrolling at phone width (measured in the browser)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} scrolls sideways: {width} px"


def read_secrets(credentials: Path) -> dict[str, str]:
    with (credentials / SECRETS).open(newline="") as handle:
        return {row["principal"]: row["password"] for row in csv.DictReader(handle)}


def share_console_password(credentials: Path, password: str) -> None:
    """The console signs in to the broker and to ingest's API with one password (§10): give the
    credentials directory the suite broker's password for firegrid-console."""
    passwd = credentials / PASSWD
    lines = [line for line in passwd.read_text().splitlines() if not line.startswith(f"{CONSOLE_ACCOUNT}:")]
    lines.append(f"{CONSOLE_ACCOUNT}:{hash_password(password)}")
    temporary = passwd.with_name(".passwd.tmp")
    temporary.write_text("\n".join(lines) + "\n")
    temporary.chmod(0o600)
    temporary.replace(passwd)


@pytest.fixture(scope="module")
def stack(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    if not mosquitto.running:
        mosquitto.start()
    if not influxd.running:
        influxd.start()
    root = tmp_path_factory.mktemp("console")
    prefix = f"c{os.getpid()}/"
    registry = write_registry(root / "registry")
    credentials = root / "credentials"
    make_credentials(registry, credentials, topic_prefix=prefix)
    share_console_password(credentials, mosquitto.passwords[CONSOLE_ACCOUNT])
    (root / "data").mkdir()
    env = service_env(mosquitto, influxd, f"console{os.getpid()}", prefix, registry, root / "data")
    env["FIREGRID_CREDENTIALS"] = str(credentials)
    ingest = IngestProcess(env, root / "ingest.log")
    ingest.start()
    console = WebConsole(
        root / "console",
        {
            "FIREGRID_MQTT_URL": mosquitto.url_as(CONSOLE_ACCOUNT),
            "FIREGRID_CONSOLE_HTTP": f"127.0.0.1:{free_port()}",
            "FIREGRID_CONSOLE_API": ingest.http,
            "FIREGRID_CREDENTIALS": str(credentials),
            "FIREGRID_REGISTRY": str(registry),
            "FIREGRID_TOPIC_PREFIX": prefix,
        },
    )
    sim = TestClient(mosquitto.url_as(SIMULATOR_ACCOUNT))
    playwright: Playwright | None = None
    try:
        console.start(timeout=30)
        playwright = sync_playwright().start()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        passwords = read_secrets(credentials)
        yield Stack(console.url, ingest, passwords, sim, prefix, browser, console, root / "shots")
        browser.close()
    finally:
        if playwright is not None:
            playwright.stop()
        sim.close()
        assert console.stop(timeout=30) == 0, console.log_tail(20)
        ingest.stop()
    log = console.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    leaked = [p for p in read_secrets(credentials).values() if p in log]
    assert not leaked, "a password is in the console's log"


def within(seconds: float, condition: Callable[[], bool], what: str) -> float:
    """Poll ``condition`` until true; fail after ``seconds``. Returns the time it took."""
    started = time.monotonic()
    eventually(condition, timeout=seconds, interval=0.02, what=what)
    return time.monotonic() - started


def test_worker_works_an_alarm_through_its_lifecycle_live(stack: Stack) -> None:
    worker = stack.sign_in("W0")  # W0 works grid D01-G00 (with SUP1)
    expect(worker.get_by_role("heading", name="Events")).to_be_visible()
    assert_fits(worker)
    other = stack.sign_in("W1")  # W1 works grid D01-G01 only
    expect(other.get_by_role("heading", name="Events")).to_be_visible()
    for page in (worker, other):
        expect(page.locator("body[data-live='connected']")).to_have_count(1)
        page.evaluate("window.notReloaded = true")

    sent = time.monotonic()
    stack.publish("smoke", "S0000", {"alarm": True})  # FIRE_ALARM, critical, D01-G00
    row = worker.locator("li.event[data-type='FIRE_ALARM'][data-grid='D01-G00']")
    expect(row).to_have_count(1, timeout=2_000)
    assert time.monotonic() - sent < 2.0
    assert worker.evaluate("window.notReloaded") is True  # live, not a reload
    expect(row).to_contain_text("critical")
    expect(row).to_contain_text("open")
    expect(row).to_contain_text("S0000")
    expect(worker.locator(".announcer")).to_contain_text("Critical: FIRE_ALARM in D01-G00")
    assert_fits(worker)
    event_id = row.get_attribute("data-event-id")
    assert event_id
    stack.screenshot(worker, "inbox.png")

    # the map colours the grid by its most severe open event
    worker.get_by_role("link", name="Map").click()
    expect(worker.get_by_role("heading", name="Map")).to_be_visible()
    expect(worker.locator("svg.map path[data-grid='D01-G00']")).to_have_attribute("data-severity", "critical")
    expect(worker.locator("svg.map path[data-grid='D01-G01']")).to_have_attribute("data-severity", "none")
    assert_fits(worker)
    stack.screenshot(worker, "map.png")

    # a worker of another grid never sees it, not even by its URL
    assert other.evaluate("window.notReloaded") is True
    expect(other.locator(f"li.event[data-event-id='{event_id}']")).to_have_count(0)
    assert other.locator("li.event[data-type='FIRE_ALARM']").count() == 0
    other.goto(f"/events/{event_id}")
    expect(other.get_by_role("heading", name="No such event")).to_be_visible()
    assert "S0000" not in other.content() and "FIRE_ALARM" not in other.content()
    assert_fits(other)

    worker.goto(f"/events/{event_id}")
    expect(worker.get_by_role("heading", name="FIRE_ALARM")).to_be_visible()
    expect(worker.get_by_role("img", name="Map of the event's location in grid D01-G00")).to_be_visible()
    expect(worker.get_by_role("button", name="Close")).to_have_count(0)  # supervisors only
    assert_fits(worker)

    # out of order: the event store's own reason, nothing changed
    worker.get_by_role("button", name="Resolve").click()
    refusal = "cannot resolve an event that is open: acknowledge it first"
    expect(worker.get_by_role("alert")).to_have_text(refusal)
    assert stack.api_event(event_id)["state"] == "open"

    worker.get_by_label("Note").fill("on my way <b>now</b>")
    worker.get_by_role("button", name="Acknowledge").click()
    expect(worker.get_by_role("status").filter(has_text="Acknowledged.")).to_be_visible()
    expect(worker.locator(".state-text")).to_have_text("acknowledged")
    history = worker.get_by_role("list", name="History")
    expect(history).to_contain_text("by W0")
    expect(history).to_contain_text("on my way <b>now</b>")  # shown as text, not markup
    acknowledged = stack.api_event(event_id)
    assert acknowledged["state"] == "acknowledged"
    assert [(h["action"], h["worker_id"], h["note"]) for h in acknowledged["history"]][-1] == (
        "ack",
        "W0",
        "on my way <b>now</b>",
    )
    stack.screenshot(worker, "event.png", full_page=True)

    worker.get_by_role("button", name="Resolve").click()
    expect(worker.get_by_role("status").filter(has_text="Resolved.")).to_be_visible()
    expect(worker.locator(".state-text")).to_have_text("resolved")
    before = stack.api_event(event_id)
    assert before["state"] == "resolved"

    # a POST without the CSRF token, or with a wrong one: 403, nothing changes
    for body in ("action=close", "action=comment&note=x&csrf=forged"):
        answer = worker.evaluate(
            """async ([url, body]) => {
                const r = await fetch(url, {method: "POST", body,
                    headers: {"Content-Type": "application/x-www-form-urlencoded"}});
                return [r.status, await r.text()];
            }""",
            [f"/events/{event_id}/action", body],
        )
        assert answer[0] == 403 and "missing or wrong CSRF token" in answer[1], answer
    assert stack.api_event(event_id) == before

    # the supervisor verifies and closes; the worker's inbox drops it by itself
    worker.goto("/")
    expect(worker.locator(f"li.event[data-event-id='{event_id}']")).to_have_count(1)
    worker.evaluate("window.notReloaded = true")
    supervisor = stack.sign_in("SUP1")
    supervisor.goto(f"/events/{event_id}")
    assert_fits(supervisor)
    supervisor.get_by_role("button", name="Close").click()
    expect(supervisor.get_by_role("status").filter(has_text="Closed.")).to_be_visible()
    expect(supervisor.locator(".state-text")).to_have_text("closed")
    assert stack.api_event(event_id)["state"] == "closed"
    expect(worker.locator(f"li.event[data-event-id='{event_id}']")).to_have_count(0, timeout=2_000)
    assert worker.evaluate("window.notReloaded") is True

    # sign out, and the session is gone
    worker.get_by_role("button", name="Sign out").click()
    expect(worker.get_by_role("button", name="Sign in")).to_be_visible()
    worker.goto("/")
    expect(worker.get_by_role("button", name="Sign in")).to_be_visible()
    for page in (worker, other, supervisor):
        page.context.close()


def test_sign_in_refusals(stack: Stack) -> None:
    page = stack.context().new_page()
    page.goto("/login")
    assert_fits(page)
    cookie = page.context.cookies()[0]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    def attempt(user: str, password: str) -> None:
        page.get_by_label("User").fill(user)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()

    attempt("W2", "not-the-password")
    expect(page.get_by_role("alert")).to_have_text("Wrong user or password")
    attempt("nobody", stack.passwords["W2"])
    expect(page.get_by_role("alert")).to_have_text("Wrong user or password")  # the same words
    assert_fits(page)

    for _ in range(5):
        attempt("W3", "wrong")
        expect(page.get_by_role("alert")).to_have_text("Wrong user or password")
    attempt("W3", stack.passwords["W3"])  # the right password, but refused for now
    expect(page.get_by_role("alert")).to_contain_text("Too many failed sign-ins for this user: try again in")
    attempt("W2", stack.passwords["W2"])  # others are not held up
    expect(page.get_by_role("heading", name="Events")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    for principal in ("S0001", SIMULATOR_ACCOUNT):  # a device and a service account, right passwords
        attempt(principal, stack.passwords[principal])
        expect(page.get_by_role("alert")).to_have_text(
            "Devices and service accounts cannot sign in to the console"
        )

    # the sign-in form carries a CSRF token too
    answer = page.evaluate(
        """async () => {
            const r = await fetch("/login", {method: "POST", body: "user=W2&password=x",
                headers: {"Content-Type": "application/x-www-form-urlencoded"}});
            return [r.status, await r.text()];
        }"""
    )
    assert answer[0] == 403 and "missing or wrong CSRF token" in answer[1]
    # a real form whose token was tampered with: the refusal page, also at phone size
    page.evaluate("document.querySelector('input[name=csrf]').value = 'forged'")
    page.get_by_label("User").fill("W2")
    page.get_by_label("Password").fill(stack.passwords["W2"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("missing or wrong CSRF token")
    assert_fits(page)
    page.goto("/")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()  # not signed in
    page.context.close()


def test_console_port_in_use_stops_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREGRID_")}
        env.update(
            FIREGRID_CONSOLE_HTTP=f"127.0.0.1:{port}",
            FIREGRID_MQTT_URL="mqtt://firegrid-console:x@127.0.0.1:1",
            FIREGRID_REGISTRY=str(tmp_path),
        )
        result = subprocess.run(
            [sys.executable, "-m", "firegrid", "console"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"firegrid console: cannot serve HTTP on 127.0.0.1:{port}: Address already in use"
    )


def test_station_sees_its_critical_events_and_cannot_act(stack: Stack) -> None:
    stack.publish("water", "W0002", {"pressure_mpa": 0.01})  # PRESSURE_LOSS, critical
    event = eventually(lambda: stack.find_event("W0002", "PRESSURE_LOSS"), what="PRESSURE_LOSS raised")
    station = event["station_id"]
    page = stack.sign_in(station)
    row = page.locator(f"li.event[data-event-id='{event['event_id']}']")
    expect(row).to_have_count(1)
    page.goto(f"/events/{event['event_id']}")
    expect(page.get_by_role("heading", name="PRESSURE_LOSS")).to_be_visible()
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    assert_fits(page)
    page.goto("/no/such/page")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    assert_fits(page)
    page.context.close()


def test_inbox_keeps_up_through_an_ingest_restart_and_a_broker_restart(
    stack: Stack, mosquitto: Mosquitto
) -> None:
    worker = stack.sign_in("W0")
    expect(worker.locator("body[data-live='connected']")).to_have_count(1)
    worker.evaluate("window.notReloaded = true")

    # ingest down: the reading waits in its persistent session, the alert follows its restart
    assert stack.ingest.stop() == 0
    stack.publish("smoke", "S0001", {"alarm": False, "tamper": True})  # TAMPER, major, D01-G00
    stack.ingest.start()
    tamper = worker.locator("li.event[data-type='TAMPER'][data-grid='D01-G00']")
    expect(tamper).to_have_count(1, timeout=15_000)

    # broker down and up: the console reconnects, catches up, and goes on live
    mosquitto.stop()
    mosquitto.start()
    eventually(
        lambda: (h := stack.console_health()) is not None and h["mqtt"] == "connected" and h["synced"],
        timeout=30,
        what="the console back on the broker and synced",
    )
    eventually(stack.ingest.healthy, timeout=30, what="ingest back on the broker")
    eventually(stack.sim.client.is_connected, timeout=30, what="the simulator back on the broker")
    stack.publish("smoke", "S0001", {"alarm": False, "tamper": True, "fault": "chamber dirty"})
    fault = worker.locator("li.event[data-type='DEVICE_FAULT'][data-grid='D01-G00']")
    expect(fault).to_have_count(1, timeout=5_000)
    expect(tamper).to_have_count(1)
    assert worker.evaluate("window.notReloaded") is True
    assert_fits(worker)
    worker.context.close()


def test_supervisor_sees_the_grids_by_index_and_why(stack: Stack) -> None:
    # a critical alarm in D01-G02 (smoke detector S0002), acknowledged; D01-G01 stays quiet
    stack.publish("smoke", "S0002", {"alarm": True})
    alarm = eventually(lambda: stack.find_event("S0002", "FIRE_ALARM"), what="FIRE_ALARM on S0002")
    assert alarm["grid_id"] == "D01-G02"
    supervisor = stack.sign_in("SUP1")
    supervisor.goto(f"/events/{alarm['event_id']}")
    supervisor.get_by_role("button", name="Acknowledge").click()
    expect(supervisor.get_by_role("status").filter(has_text="Acknowledged.")).to_be_visible()

    # the event page's grid leads to the grid: its index, why, and the handling figures
    supervisor.get_by_role("link", name="D01-G02").click()
    expect(supervisor.get_by_role("heading", name="Grid D01-G02")).to_be_visible()
    hazards = supervisor.get_by_role("list", name="Open hazards indicators")
    critical = hazards.locator("li[data-indicator='hazards.critical']")
    expect(critical).to_contain_text("Critical hazards")
    expect(critical).to_contain_text(re.compile(r"weight 0\.6 · unresolved [1-9]\d* · devices \d+"))
    for group in ("Handling", "Patrol", "Devices"):
        expect(supervisor.get_by_role("list", name=f"{group} indicators")).to_be_visible()
    figures = supervisor.locator("dl.figures")
    expect(figures).to_contain_text(re.compile(r"Raised\s*[1-9]"))
    expect(figures).to_contain_text(re.compile(r"Acknowledged on time\s*[1-9]\d* of [1-9]"))
    expect(figures).to_contain_text(re.compile(r"Time to acknowledge\s*p50 \d+ s"))
    expect(supervisor.locator(f"li.event[data-event-id='{alarm['event_id']}']")).to_have_count(1)
    assert_fits(supervisor)
    stack.screenshot(supervisor, "grid.png", full_page=True)

    # the ranking: least safe first, the grid with the open critical event before the quiet one
    supervisor.get_by_role("navigation", name="Main").get_by_role("link", name="Grids").click()
    expect(supervisor.get_by_role("heading", name="Grids", exact=True)).to_be_visible()
    rows = supervisor.get_by_role("list", name="Grids by index").locator("li")
    expect(rows).to_have_count(4)
    ranked = rows.evaluate_all("rows => rows.map(r => [r.dataset.grid, Number(r.dataset.index)])")
    order = [grid for grid, _ in ranked]
    index = dict(ranked)
    assert order.index("D01-G02") < order.index("D01-G01"), ranked
    assert index["D01-G02"] < index["D01-G01"], ranked
    assert [i for _, i in ranked] == sorted(i for _, i in ranked)
    expect(rows.filter(has_text="D01-G02").locator(".chip")).to_have_count(4)
    assert_fits(supervisor)

    # workers do not get it: no link, and 403 by its address
    worker = stack.sign_in("W1")
    expect(worker.get_by_role("heading", name="Events")).to_be_visible()
    expect(worker.get_by_role("link", name="Grids")).to_have_count(0)
    for path in ("/grids", "/grids/D01-G01"):
        response = worker.goto(path)
        assert response is not None and response.status == 403
        expect(worker.get_by_role("alert")).to_have_text("Only supervisors see the grids' safety index.")
        assert_fits(worker)
    for page in (supervisor, worker):
        page.context.close()
