"""The console's pages through Starlette's test client: sign-in, throttling, sessions, CSRF,
escaping, visibility and security headers. No broker or ingest answers here (both addresses are
closed ports), so the events are put into the console's cache directly; the browser tests in
tests/integration/test_console.py run the same pages against the real services."""

from __future__ import annotations

from starlette.testclient import TestClient

from access import SIMULATOR_ACCOUNT
from console import Console
from console._sessions import IDLE_S, LOCK_S
from tests.unit.console.helpers import Clock, event, sign_in, token


def test_login_page_form_cookie_and_headers(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert '<label for="user">User</label>' in page.text
    assert '<label for="password">Password</label>' in page.text
    assert '<button type="submit">Sign in</button>' in page.text
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "secure" not in cookie
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert client.get("/static/console.js").headers["x-content-type-options"] == "nosniff"


def test_cookie_is_secure_under_tls(console: Console) -> None:
    with TestClient(console.app, base_url="https://console.example") as client:
        assert "secure" in client.get("/login").headers["set-cookie"].lower()


def test_sign_in_and_out(client: TestClient, passwords: dict[str, str]) -> None:
    assert client.get("/").headers["location"] == "/login"
    answer = sign_in(client, "W0", passwords["W0"])
    assert (answer.status_code, answer.headers["location"]) == (303, "/")
    inbox = client.get("/")
    assert "<h1>Events</h1>" in inbox.text and ">Sign out</button>" in inbox.text
    assert client.post("/logout", data={}).status_code == 403  # without the token
    assert client.get("/").status_code == 200
    out = client.post("/logout", data={"csrf": token(inbox.text)})
    assert (out.status_code, out.headers["location"]) == (303, "/login")
    assert client.get("/").headers["location"] == "/login"


def test_wrong_user_or_password_same_words(client: TestClient, passwords: dict[str, str]) -> None:
    too_long = "W" * 5000
    for user, password in (
        ("W0", "wrong"),
        ("nobody", passwords["W0"]),
        ("W0", ""),
        ("", "x"),
        (too_long, "x"),
        ("W0:x", "y"),
    ):
        answer = sign_in(client, user, password)
        assert answer.status_code == 401
        assert 'role="alert">Wrong user or password</p>' in answer.text
        assert passwords["W0"] not in answer.text
        assert too_long not in answer.text  # what is echoed into the form is cut short


def test_five_failures_lock_the_user_for_a_minute(
    client: TestClient, passwords: dict[str, str], clock: Clock
) -> None:
    for _ in range(5):
        assert sign_in(client, "W1", "wrong").status_code == 401
    locked = sign_in(client, "W1", passwords["W1"])
    assert locked.status_code == 429
    assert "Too many failed sign-ins for this user: try again in 61 s" in locked.text
    assert sign_in(client, "W2", passwords["W2"]).status_code == 303  # others may
    clock.now += LOCK_S
    assert sign_in(client, "W1", passwords["W1"]).status_code == 303


def test_devices_and_service_accounts_cannot_sign_in(client: TestClient, passwords: dict[str, str]) -> None:
    for user in ("S0000", "E0001", SIMULATOR_ACCOUNT):
        answer = sign_in(client, user, passwords[user])
        assert answer.status_code == 403
        assert "Devices and service accounts cannot sign in to the console" in answer.text
    assert sign_in(client, "D01-ST1", passwords["D01-ST1"]).status_code == 303  # a station may


def test_posts_without_or_with_a_wrong_csrf_token_are_refused(
    client: TestClient, passwords: dict[str, str]
) -> None:
    page = client.get("/login")
    for data in ({"user": "W0", "password": passwords["W0"]}, {"csrf": "x", "user": "W0", "password": "y"}):
        refused = client.post("/login", data=data)
        assert refused.status_code == 403 and "missing or wrong CSRF token" in refused.text
    assert (
        client.post("/login", content=b"{}", headers={"content-type": "application/json"}).status_code == 403
    )
    sign_in(client, "W0", passwords["W0"])
    for data in ({"action": "ack"}, {"action": "ack", "csrf": token(page.text)}):  # the old token
        refused = client.post("/events/E1/action", data=data)
        assert refused.status_code == 403 and "nothing was changed" in refused.text


def test_idle_sessions_expire_after_twelve_hours(
    client: TestClient, passwords: dict[str, str], clock: Clock
) -> None:
    sign_in(client, "W0", passwords["W0"])
    clock.now += IDLE_S - 60
    assert client.get("/").status_code == 200
    clock.now += IDLE_S - 60
    assert client.get("/?part=list", headers={"X-Firegrid-Live": "1"}).status_code == 200  # not a use
    clock.now += 120
    assert client.get("/").headers["location"] == "/login"


def test_inbox_shows_what_the_user_may_see_escaped_critical_first(
    client: TestClient, console: Console, passwords: dict[str, str]
) -> None:
    console.cache.apply(event("E1", severity="minor", type="LOW_BATTERY", raised_at=1_764_583_300_000))
    console.cache.apply(event("E2", message="<script>alert(1)</script>", escalated=True))
    console.cache.apply(event("E3", grid_id="D01-G01", severity="major", type="TAMPER"))
    sign_in(client, "W0", passwords["W0"])
    inbox = client.get("/").text
    assert inbox.index('data-event-id="E2"') < inbox.index('data-event-id="E1"')
    assert "E3" not in inbox  # grid D01-G01 is not W0's
    assert "<script>alert(1)</script>" not in inbox
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in inbox
    assert '<span class="badge escalated">escalated</span>' in inbox
    part = client.get("/?part=list").text
    assert "<html" not in part and 'data-event-id="E2"' in part

    map_page = client.get("/map").text
    assert 'data-grid="D01-G00" data-severity="critical"' in map_page
    assert 'data-grid="D01-G01" data-severity="none"' in map_page  # W0 may not see E3
    client.post("/logout", data={"csrf": token(inbox)})
    sign_in(client, "SUP1", passwords["SUP1"])
    assert 'data-grid="D01-G01" data-severity="major"' in client.get("/map").text
    assert 'data-event-id="E3"' in client.get("/").text


def test_event_page_without_ingest_says_so(client: TestClient, passwords: dict[str, str]) -> None:
    sign_in(client, "W0", passwords["W0"])
    answer = client.get("/events/01JF0000000000000000000000")
    assert answer.status_code == 503 and "is not answering" in answer.text
    assert client.get("/events/..%2Fetc").status_code == 404  # not an identifier: not asked


def test_live_needs_a_session_and_unknown_pages_are_404(client: TestClient) -> None:
    assert client.get("/live").status_code == 401
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "<h1>Not found</h1>" in missing.text
    assert client.get("/healthz").json()["mqtt"] == "disconnected"


def test_sessions_with_the_same_rights_share_one_rendered_inbox_until_a_change(
    console: Console, passwords: dict[str, str]
) -> None:
    console.cache.apply(event("E1", grid_id="D01-G00"))
    browsers = [TestClient(console.app), TestClient(console.app)]
    for browser in browsers:
        sign_in(browser, "W0", passwords["W0"])
    live = {"X-Firegrid-Live": "1"}
    first = [b.get("/", params={"part": "list"}, headers=live).text for b in browsers]
    assert first[0] == first[1] and "E1" in first[0]
    assert len(console._lists) == 1  # one rendering served both
    console.cache.apply(event("E2", grid_id="D01-G00"))
    after = browsers[1].get("/", params={"part": "list"}, headers=live).text
    assert "E2" in after and after != first[0]
    supervisor = TestClient(console.app)
    sign_in(supervisor, "SUP1", passwords["SUP1"])
    assert "E2" in supervisor.get("/", params={"part": "list"}, headers=live).text
    assert len(console._lists) == 3  # other rights, another rendering
