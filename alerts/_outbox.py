"""The alert outbox (CONTRACT §13): a change of an event leaves firegrid only on the broker's PUBACK.

The store inserts one row (id, topic, payload) per topic a change goes to, in the transaction of
the change (:meth:`Outbox.add`, ids handed out here so nothing is read back). After the commit
(:meth:`Outbox.committed`) the rows go straight to the publisher when the outbox is connected,
every older row has been handed over and the window has room: the alert path gains no thread hop
and no commit. Otherwise the ``alert-outbox`` thread publishes them from the database, oldest
first, at most :data:`WINDOW` unacknowledged at a time on a connection, as PUBACKs free the
window (after an outage the backlog drains without flooding paho's memory or the broker).

PUBACKs: paho calls :meth:`on_published` on its network thread while holding its own lock, and a
store call publishing under ours waits for that lock, so the callback takes no lock: it records
the message id, and wakes the thread only when rows wait for room in the window. Otherwise the
thread, which looks every :data:`DELETE_LINGER_S` while anything is unacknowledged, maps the ids
to rows and deletes the acknowledged rows in one transaction: not a wake-up and a commit per
PUBACK, which would compete with the alert path for the GIL and the database. A ``kill -9`` before that
delete publishes them again after the restart: a duplicate, which a subscriber drops by
(event_id, rev). Duplicates are allowed, loss is not.

Reconnects: paho keeps its unacknowledged messages in memory and resends them itself; the outbox
publishes again from its oldest row all the same (it does not depend on paho's memory, which a
restart loses anyway). The duplicates that makes are bounded by the window. After a restart the
rows left in the database are published again, oldest first, once the broker is connected.

A publisher whose ``publish`` reports no message id (a test's recorder) acknowledges at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Final

from alerts._db import EventDb, OutboxRow, Writer
from alerts._routing import QOS, Publication, Publisher

log = logging.getLogger(__name__)

WINDOW: Final = 256
"""Rows handed to the publisher and not yet acknowledged, per connection (and so at most the
duplicates one reconnect makes)."""
DELETE_LINGER_S: Final = 0.05
"""Acknowledged rows are deleted together, at most this long after the first of them."""
_MID_TAKEN: Final = 14  # paho's MQTT_ERR_QUEUE_SIZE: the message id is still in use; retry later


class Outbox:
    """Publications waiting for their PUBACK; see the module docstring."""

    def __init__(self, db: EventDb, publisher: Publisher, *, connected: bool = True) -> None:
        """``connected``: whether the publisher is connected now; a publisher that reports its
        connection (:meth:`on_connection_change`) starts with False."""
        self._db = db
        self._publisher = publisher
        self._lock = threading.Lock()
        self._depth, self._last_id = db.outbox_extent()
        self._committed_id = self._last_id
        self._connected = connected
        self._cursor = 0 if self._depth else self._last_id + 1
        """The oldest row not yet handed over on this connection."""
        self._sent: dict[int, int] = {}
        """Message id → row id of everything handed over and not acknowledged (all connections)."""
        self._window: set[int] = set()
        """The message ids of this connection in ``_sent``."""
        self._done: list[int] = []
        self._done_ids: set[int] = set()
        self._done_since = 0.0
        # written by the network thread without a lock (see the module docstring)
        self._acks: deque[tuple[int, str | None]] = deque()
        self._links: deque[bool] = deque()
        self._link_up = connected
        self._wake = threading.Event()
        self._behind = False
        """Rows wait for room in the window (read without the lock by :meth:`on_published`)."""
        self._asleep = True
        """The thread waits without a timeout (nothing unacknowledged): a hand-over must wake it."""
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="alert-outbox", daemon=True)
        self._thread.start()
        if self._depth:
            log.info("alert outbox: %d publications from before the restart to send again", self._depth)
            self._wake.set()

    @property
    def depth(self) -> int:
        """Publications waiting for their PUBACK (in the database)."""
        return self._depth

    # -- the store (under its lock) ---------------------------------------------------------------

    def add(self, writer: Writer, publications: Sequence[Publication]) -> list[OutboxRow]:
        """Insert ``publications`` through ``writer`` (the transaction of their change)."""
        first = self._last_id + 1
        rows = [(first + i, p.topic, p.payload) for i, p in enumerate(publications)]
        writer.queue(rows)
        self._last_id += len(rows)
        return rows

    def committed(self, rows: Sequence[OutboxRow]) -> None:
        """``rows`` are committed: hand them over now if nothing older waits, else wake the thread."""
        if not rows:
            return
        with self._lock:
            behind = self._cursor <= self._committed_id  # older rows not handed over yet
            self._committed_id = rows[-1][0]
            self._depth += len(rows)
            if not behind and self._connected and self._link_up and not self._links:
                for row in rows:
                    if len(self._window) >= WINDOW or not self._hand_over(row):
                        break
            self._behind = self._cursor <= self._committed_id
            if self._behind or self._asleep:
                self._wake.set()

    # -- the publisher's callbacks (network thread; no locks) ---------------------------------------

    def on_published(self, mid: int, error: str | None = None) -> None:
        """The broker acknowledged message ``mid`` (``error``: the PUBACK's failure reason)."""
        self._acks.append((mid, error))
        if self._behind:
            self._wake.set()

    def on_connection_change(self, up: bool) -> None:
        """Connected (publish everything again, oldest first) or disconnected (hold everything)."""
        self._link_up = up
        self._links.append(up)
        self._wake.set()

    # -- the outbox thread ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the thread and delete what was acknowledged (the rest stays for the next start)."""
        self._closing = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(10)
        with self._lock:
            self._take_acks()
            done = self._take_done(force=True)
        self._delete(done)

    def _run(self) -> None:
        linger: float | None = None
        while not self._closing:
            self._wake.wait(linger)
            self._wake.clear()
            if self._closing:
                return
            try:
                with self._lock:
                    self._take_links()
                    self._take_acks()
                    self._pump()
                    self._behind = self._connected and self._cursor <= self._committed_id
                    done = self._take_done(force=False)
                    linger = self._linger()
                self._delete(done)
            except Exception:  # e.g. a database error: keep the rows, retry in a while
                log.exception("alert outbox: round failed")
                linger = DELETE_LINGER_S

    def _linger(self) -> float | None:
        """How long the thread may wait: until the pending deletion is due, a while when messages
        are unacknowledged (their PUBACKs do not wake it), or until woken."""
        if self._done:
            self._asleep = False
            return max(0.0, self._done_since + DELETE_LINGER_S - time.monotonic())
        self._asleep = not (self._sent or self._acks)
        return None if self._asleep else DELETE_LINGER_S

    def _take_links(self) -> None:
        while self._links:
            self._connected = self._links.popleft()
            self._window.clear()  # the old connection's messages stay in _sent for their PUBACKs
            self._cursor = 0  # a reconnect publishes the whole outbox again, oldest first

    def _take_acks(self) -> None:
        while self._acks:
            mid, error = self._acks.popleft()
            row_id = self._sent.pop(mid, None)
            self._window.discard(mid)
            if row_id is None:
                continue  # not ours (an action result), or already acknowledged
            if error is not None:  # e.g. "Not authorized": publishing again cannot cure it
                log.error("alert outbox: the broker refused publication %d: %s", row_id, error)
            self._finish(row_id)

    def _pump(self) -> None:
        """Publish rows not handed over on this connection, oldest first, while the window has room."""
        while self._connected and self._cursor <= self._committed_id:
            room = WINDOW - len(self._window)
            if room <= 0:
                return
            rows = self._db.outbox_rows(self._cursor, self._committed_id, room + len(self._done_ids))
            if not rows:
                self._cursor = self._committed_id + 1
                return
            for row in rows:
                if row[0] in self._done_ids:
                    self._cursor = row[0] + 1  # acknowledged, deletion pending
                elif len(self._window) >= WINDOW or not self._hand_over(row):
                    return

    def _hand_over(self, row: OutboxRow) -> bool:
        """Publish one row (under the lock); False when the publisher cannot take it now."""
        row_id, topic, payload = row
        try:
            info = self._publisher.publish(topic, payload, QOS)
        except Exception:  # a publication that can never go out must not block all later ones
            log.exception("alert outbox: publishing %d to %s failed; dropped", row_id, topic)
            self._cursor = row_id + 1
            self._finish(row_id)
            return True
        mid, rc = getattr(info, "mid", None), getattr(info, "rc", 0)
        if rc == _MID_TAKEN:
            return False
        self._cursor = row_id + 1
        if isinstance(mid, int):
            self._sent[mid] = row_id
            self._window.add(mid)
        else:
            self._finish(row_id)  # a publisher without acknowledgements
        return True

    def _finish(self, row_id: int) -> None:
        if row_id not in self._done_ids:
            if not self._done:
                self._done_since = time.monotonic()
            self._done.append(row_id)
            self._done_ids.add(row_id)

    def _take_done(self, *, force: bool) -> list[int]:
        due = force or time.monotonic() - self._done_since >= DELETE_LINGER_S or len(self._done) >= WINDOW
        if not (self._done and due):
            return []
        done, self._done = self._done, []
        return done

    def _delete(self, done: list[int]) -> None:
        if not done:
            return
        try:
            deleted = self._db.delete_outbox(done)
        except Exception:
            with self._lock:  # deleted later (they stay in _done_ids: not published again)
                self._done[:0] = done
            raise
        with self._lock:
            self._done_ids.difference_update(done)
            self._depth -= deleted
