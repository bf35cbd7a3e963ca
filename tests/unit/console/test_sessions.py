"""Sessions and the sign-in throttle, on a fake clock."""

from __future__ import annotations

from console import LoginThrottle, SessionStore
from console._sessions import ANONYMOUS_IDLE_S, IDLE_S, LOCK_S, MAX_ANONYMOUS, MAX_FAILURES


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_signing_in_replaces_the_anonymous_session_with_a_new_id_and_token() -> None:
    store = SessionStore(Clock())
    anonymous = store.anonymous()
    signed = store.sign_in(anonymous, "W0")
    assert signed.user == "W0"
    assert signed.sid != anonymous.sid and signed.csrf != anonymous.csrf
    assert store.get(anonymous.sid) is None  # no session fixation
    assert store.get(signed.sid) is signed
    assert len(signed.sid) >= 43 and len(signed.csrf) >= 43  # 256 random bits each


def test_csrf_token_must_match_exactly() -> None:
    session = SessionStore(Clock()).anonymous()
    assert session.check_csrf(session.csrf)
    for wrong in (None, "", session.csrf[:-1], session.csrf + "x", "forged"):
        assert not session.check_csrf(wrong)


def test_idle_expiry_after_twelve_hours_and_live_updates_do_not_count_as_use() -> None:
    clock = Clock()
    store = SessionStore(clock)
    session = store.sign_in(None, "W0")
    clock.now += IDLE_S - 1
    assert store.get(session.sid) is session  # used: the idle time starts again
    clock.now += IDLE_S - 1
    assert store.get(session.sid, touch=False) is session  # a live update: not a use
    assert store.alive(session)
    clock.now += 2
    assert not store.alive(session)
    assert store.get(session.sid) is None
    assert store.get(session.sid) is None  # and it is gone


def test_signing_out_ends_the_session() -> None:
    store = SessionStore(Clock())
    session = store.sign_in(None, "W0")
    store.end(session)
    assert store.get(session.sid) is None and not store.alive(session)


def test_anonymous_sessions_are_bounded_and_short_lived() -> None:
    clock = Clock()
    store = SessionStore(clock)
    first = store.anonymous()
    for _ in range(MAX_ANONYMOUS):
        store.anonymous()
    assert store.get(first.sid) is None  # the oldest made room
    assert len(store) == MAX_ANONYMOUS
    last = store.anonymous()
    clock.now += ANONYMOUS_IDLE_S + 1
    assert store.get(last.sid) is None


def test_flash_is_shown_once() -> None:
    from console import Flash

    session = SessionStore(Clock()).sign_in(None, "W0")
    session.flash = Flash(True, "Acknowledged.", "E1")
    assert session.take_flash() == Flash(True, "Acknowledged.", "E1")
    assert session.take_flash() is None


def test_five_failures_lock_a_user_for_sixty_seconds() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock)
    for _ in range(MAX_FAILURES - 1):
        throttle.failed("W0")
        assert throttle.locked_for("W0") == 0
    throttle.failed("W0")
    assert throttle.locked_for("W0") == LOCK_S
    assert throttle.locked_for("W1") == 0  # others are not held up
    clock.now += LOCK_S - 1
    assert throttle.locked_for("W0") == 1
    clock.now += 1
    assert throttle.locked_for("W0") == 0
    throttle.failed("W0")  # the count started again
    assert throttle.locked_for("W0") == 0


def test_a_success_clears_the_failures() -> None:
    throttle = LoginThrottle(Clock())
    for _ in range(MAX_FAILURES - 1):
        throttle.failed("W0")
    throttle.succeeded("W0")
    throttle.failed("W0")
    assert throttle.locked_for("W0") == 0
