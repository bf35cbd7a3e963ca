"""The grids' index and handling figures for supervisors (/grids, /grids/{grid_id}), against a
fake ingest API over real HTTP whose JSON the safety package's own functions make
(tests/unit/console/fake_ingest.py): ranking, the reasons of a score, the figures in human units,
who may see them, the short-lived cache, and ingest failing."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from console import Console
from console._grids import INDEX_TTL_S
from tests.unit.console.conftest import World, make_console
from tests.unit.console.fake_ingest import AT, FakeIngest
from tests.unit.console.helpers import CONSOLE_PASSWORD, Clock, event, sign_in

GRID_ROW = re.compile(r'<li class="grid-card band-(\w+)" data-grid="([^"]+)" data-index="([^"]*)"')


@pytest.fixture
def ingest() -> Iterator[FakeIngest]:
    fake = FakeIngest("firegrid-console", CONSOLE_PASSWORD).start()
    yield fake
    fake.stop()


@pytest.fixture
def board(world: World, clock: Clock, ingest: FakeIngest) -> Iterator[tuple[Console, TestClient]]:
    console = make_console(world, clock, ingest.url)
    with TestClient(console.app, follow_redirects=False) as client:
        yield console, client


def test_supervisor_sees_every_grid_least_safe_first_with_its_groups(
    board: tuple[Console, TestClient], passwords: dict[str, str]
) -> None:
    _, client = board
    sign_in(client, "SUP1", passwords["SUP1"])
    inbox = client.get("/").text
    assert '<a href="/grids">Grids</a>' in inbox  # in the navigation
    page = client.get("/grids")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    rows = GRID_ROW.findall(page.text)
    # D01-G00 has an open critical hazard, D01-G02 a detector offline, the others nothing
    assert rows == [
        ("mid", "D01-G00", "62.8"),
        ("high", "D01-G02", "95.6"),
        ("high", "D01-G01", "100"),
        ("high", "D01-G03", "100"),
    ]
    assert page.text.count('class="chip band-') == 4 * 4  # the four groups of each grid
    assert '<span class="chip band-low" data-band="low">Open hazards <b>42.3</b></span>' in page.text
    assert '<a class="grid-link" href="/grids/D01-G00">D01-G00</a>' in page.text
    assert "Grid D01-G00 · D01" in page.text  # its name from the registry
    assert f'data-ms="{AT}"' in page.text  # as of ingest's `at`


def test_grid_page_says_why_and_shows_the_handling_figures(
    board: tuple[Console, TestClient], passwords: dict[str, str]
) -> None:
    console, client = board
    console.cache.apply(event("E1", message="<b>smoke</b>"))  # open, in D01-G00
    console.cache.apply(event("E2", grid_id="D01-G01"))
    sign_in(client, "SUP1", passwords["SUP1"])
    page = client.get("/grids/D01-G00")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<h1>Grid D01-G00</h1>" in html
    assert '<span class="index-value" data-band="mid">62.8</span>' in html
    # every group and indicator with its weight and the counts behind it
    for title in ("Open hazards", "Handling", "Patrol", "Devices"):
        assert f'aria-label="{title} indicators"' in html
    critical = html[html.index('data-indicator="hazards.critical"') :]
    critical = critical[: critical.index("</li>")]
    assert "Critical hazards" in critical and '<b class="score">3.8</b>' in critical
    assert "weight 0.6 · unresolved 1 · devices 4" in critical
    assert "weight 0.4 · acknowledged on time 1 · due 3" in html
    assert "weight 0.4 · resolved within 8 h 1 · raised ≥ 8 h ago 2" in html
    # the figures of the last 30 days, in human units
    figures = html[html.index('aria-label="Handling figures"') :]
    figures = figures[: figures.index("</dl>")]
    assert "<dt>Raised</dt><dd>3</dd>" in figures
    assert "<dt>Acknowledged on time</dt><dd>1 of 3</dd>" in figures
    assert "<dd>1 (50 % of those raised 8 h ago or earlier)</dd>" in figures
    assert "<dt>Closed</dt><dd>1 (33.3 %)</dd>" in figures
    assert "<dd>p50 1 min · p90 2 min 30 s</dd>" in figures
    assert "<dd>p50 2 h 0 min · p90 9 h 0 min</dd>" in figures
    # its open events, escaped, and only its own
    assert 'data-event-id="E1"' in html and 'data-event-id="E2"' not in html
    assert "&lt;b&gt;smoke&lt;/b&gt;" in html
    quiet = client.get("/grids/D01-G01").text
    assert "<dt>Raised</dt><dd>0</dd>" in quiet and "<dd>p50 — · p90 —</dd>" in quiet


def test_event_page_links_its_grid_for_supervisors_only(
    board: tuple[Console, TestClient], ingest: FakeIngest, passwords: dict[str, str]
) -> None:
    _, client = board
    ingest.events["E1"] = event("E1")
    sign_in(client, "SUP1", passwords["SUP1"])
    assert '<dd><a href="/grids/D01-G00">D01-G00</a></dd>' in client.get("/events/E1").text
    sign_in(client, "W0", passwords["W0"])
    page = client.get("/events/E1").text
    assert "<dd>D01-G00</dd>" in page and 'href="/grids' not in page


def test_workers_and_stations_are_refused(
    board: tuple[Console, TestClient], ingest: FakeIngest, passwords: dict[str, str]
) -> None:
    _, client = board
    for user in ("W0", "D01-ST1"):
        sign_in(client, user, passwords[user])
        assert 'href="/grids"' not in client.get("/").text
        for path in ("/grids", "/grids/D01-G00", "/grids/D01-G01"):
            refused = client.get(path)
            assert refused.status_code == 403
            assert "Only supervisors see the grids&#39; safety index." in refused.text
            assert "62.8" not in refused.text
    assert ingest.requests == []  # not even asked
    client.cookies.clear()
    assert client.get("/grids").headers["location"] == "/login"


def test_unknown_grids_answer_404_without_asking_for_their_figures(
    board: tuple[Console, TestClient], ingest: FakeIngest, passwords: dict[str, str]
) -> None:
    _, client = board
    sign_in(client, "SUP1", passwords["SUP1"])
    missing = client.get("/grids/D09-G99")
    assert missing.status_code == 404 and "<h1>No such grid</h1>" in missing.text
    assert client.get("/grids/..%2Fetc").status_code == 404
    assert not [r for r in ingest.requests if r.startswith("/sla")]


def test_answers_are_kept_30_s_for_every_supervisor(
    board: tuple[Console, TestClient], ingest: FakeIngest, clock: Clock, passwords: dict[str, str]
) -> None:
    _, client = board
    sign_in(client, "SUP1", passwords["SUP1"])
    for _ in range(3):
        assert client.get("/grids").status_code == 200
        assert client.get("/grids/D01-G00").status_code == 200
    assert ingest.requests == ["/index?", "/sla?grid=D01-G00"]
    clock.now += INDEX_TTL_S - 1
    client.get("/grids/D01-G00")
    assert len(ingest.requests) == 2
    clock.now += 1
    client.get("/grids/D01-G00")
    assert ingest.requests[2:] == ["/index?", "/sla?grid=D01-G00"]


def test_ingest_failing_is_a_readable_page(
    board: tuple[Console, TestClient], ingest: FakeIngest, clock: Clock, passwords: dict[str, str]
) -> None:
    _, client = board
    sign_in(client, "SUP1", passwords["SUP1"])
    ingest.status = 500
    for path in ("/grids", "/grids/D01-G00"):
        answer = client.get(path)
        assert answer.status_code == 503
        assert '<p class="error" role="alert">firegrid ingest answered HTTP 500</p>' in answer.text
    ingest.status = 200  # a failure is not kept: the next view asks again
    assert client.get("/grids").status_code == 200
    ingest.stop()
    clock.now += INDEX_TTL_S
    down = client.get("/grids")
    assert down.status_code == 503 and "is not answering (ConnectError)" in down.text


def test_refusals_and_an_older_ingest_say_so(
    world: World, clock: Clock, passwords: dict[str, str], ingest: FakeIngest
) -> None:
    strict = FakeIngest("firegrid-console", "another-password").start()
    try:
        with TestClient(make_console(world, clock, strict.url).app, follow_redirects=False) as client:
            sign_in(client, "SUP1", passwords["SUP1"])
            refused = client.get("/grids")
            assert refused.status_code == 503
            assert "firegrid ingest refused the console&#39;s account (HTTP 401)" in refused.text
    finally:
        strict.stop()
    ingest.status = 404  # an ingest before §12: no such route
    with TestClient(make_console(world, clock, ingest.url).app, follow_redirects=False) as client:
        sign_in(client, "SUP1", passwords["SUP1"])
        assert f"firegrid ingest at {ingest.url} has no /index" in client.get("/grids").text
