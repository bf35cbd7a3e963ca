"""Server-side sessions and the sign-in throttle (CONTRACT §11).

A session is a random id (256 bits) in a cookie; everything else stays on the server: the user
once signed in, the CSRF token of its forms, the last time it was used, and one message to show
after a redirect. A visitor gets an anonymous session on the sign-in page (so that form has a
token too); signing in replaces it by a new one (no session fixation). Sessions live in this
process's memory: a restart signs everyone out, and with several consoles behind one address a
user sticks to one (docs/CONSOLE.md).

Both stores are bounded, because anyone can make anonymous sessions and failed sign-ins.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

IDLE_S: Final = 12 * 3600.0
"""A session unused this long is signed out."""
ANONYMOUS_IDLE_S: Final = 3600.0
MAX_SESSIONS: Final = 100_000
MAX_ANONYMOUS: Final = 10_000
MAX_FAILURES: Final = 5
LOCK_S: Final = 60.0
MAX_TRACKED_USERS: Final = 100_000


@dataclass(frozen=True, slots=True)
class Flash:
    """One message for the next page: a result (``ok``) or a refusal."""

    ok: bool
    text: str
    event_id: str | None = None


@dataclass(slots=True)
class Session:
    sid: str
    csrf: str
    user: str | None
    """None: not signed in (the sign-in page's session)."""
    last_used: float
    flash: Flash | None = None

    def check_csrf(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())

    def take_flash(self) -> Flash | None:
        flash, self.flash = self.flash, None
        return flash


class SessionStore:
    """Sessions by id; thread-safe. ``clock`` is monotonic seconds (a fake one in tests)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, idle_s: float = IDLE_S) -> None:
        self.clock = clock
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._signed_in: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self._anonymous: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._signed_in) + len(self._anonymous)

    def get(self, sid: str | None, *, touch: bool = True) -> Session | None:
        """The live session of ``sid``, or None (unknown, or idle too long: then it is dropped).
        ``touch`` counts this as a use (live updates do not: a tab left open still expires)."""
        if not sid:
            return None
        now = self.clock()
        with self._lock:
            for table, idle in ((self._signed_in, self.idle_s), (self._anonymous, ANONYMOUS_IDLE_S)):
                session = table.get(sid)
                if session is None:
                    continue
                if now - session.last_used > idle:
                    del table[sid]
                    return None
                if touch:
                    session.last_used = now
                    table.move_to_end(sid)
                return session
        return None

    def anonymous(self) -> Session:
        """A new session for the sign-in form."""
        session = self._new(None)
        with self._lock:
            self._anonymous[session.sid] = session
            while len(self._anonymous) > MAX_ANONYMOUS:
                self._anonymous.popitem(last=False)
        return session

    def sign_in(self, previous: Session | None, user: str) -> Session:
        """A new session for ``user``; ``previous`` (the anonymous one) ends."""
        session = self._new(user)
        with self._lock:
            if previous is not None:
                self._anonymous.pop(previous.sid, None)
                self._signed_in.pop(previous.sid, None)
            self._signed_in[session.sid] = session
            self._expire_locked()
            while len(self._signed_in) > MAX_SESSIONS:
                self._signed_in.popitem(last=False)
        return session

    def end(self, session: Session) -> None:
        with self._lock:
            self._signed_in.pop(session.sid, None)
            self._anonymous.pop(session.sid, None)

    def alive(self, session: Session) -> bool:
        """Whether ``session`` is still signed in (not ended, not idle too long); no touch."""
        with self._lock:
            return (
                self._signed_in.get(session.sid) is session
                and self.clock() - session.last_used <= self.idle_s
            )

    def _new(self, user: str | None) -> Session:
        return Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), user, self.clock())

    def _expire_locked(self) -> None:
        now = self.clock()
        for table, idle in ((self._signed_in, self.idle_s), (self._anonymous, ANONYMOUS_IDLE_S)):
            while table:
                sid, oldest = next(iter(table.items()))
                if now - oldest.last_used <= idle:
                    break
                del table[sid]


class LoginThrottle:
    """After ``MAX_FAILURES`` failed sign-ins in a row a user name is refused for ``LOCK_S``
    seconds, whether it exists or not (so refusals tell nothing about which names exist).
    A success clears the count; so does the end of a lock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()
        """user → (failures in a row, locked until)."""

    def locked_for(self, user: str) -> float:
        """Seconds ``user`` is still refused (0: may try)."""
        with self._lock:
            entry = self._failures.get(user)
            if entry is None:
                return 0.0
            count, until = entry
            left = until - self.clock()
            if count >= MAX_FAILURES and left <= 0:
                del self._failures[user]
                return 0.0
            return max(left, 0.0) if count >= MAX_FAILURES else 0.0

    def failed(self, user: str) -> None:
        with self._lock:
            count, _ = self._failures.pop(user, (0, 0.0))
            count += 1
            self._failures[user] = (count, self.clock() + LOCK_S if count >= MAX_FAILURES else 0.0)
            while len(self._failures) > MAX_TRACKED_USERS:
                self._failures.popitem(last=False)

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(user, None)
