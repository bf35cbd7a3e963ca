"""The alert outbox (CONTRACT §13): a change of an event leaves firegrid only on the broker's PUBACK.

The store inserts one row (id, topic, payload, urgent) per topic a change goes to, in the
transaction of the change (:meth:`Outbox.add`, ids handed out here so nothing is read back). After
the commit (:meth:`Outbox.committed`) the rows go straight to the publisher when the outbox is
connected, every older row of their class has been handed over and the window has room: the alert
path gains no thread hop and no commit. Otherwise the ``alert-outbox`` thread publishes them from
the database, at most :data:`WINDOW` unacknowledged at a time on a connection, as PUBACKs free the
window (after an outage the backlog drains without flooding paho's memory or the broker).

Fire alarms first (issue 17): rows are of two classes, *urgent* (events of
``alerts._routing.URGENT_TYPES``: FIRE_ALARM, FIRE_CONFIRMED) and the others, and urgent rows are
handed over before older rows of other events; within a class, oldest first. An event's type never
changes, so its rows are all in one class and keep their order (per event and topic, which is what
a subscriber sees of "in order"). Other rows take at most ``WINDOW - RESERVED`` of the window, so a
fire alarm committed behind a mass silence's 10^5 DEVICE_OFFLINE goes to paho at once (the fast
path) instead of after all of them have been acknowledged (tens of seconds at 10^4 PUBACKs/s); only
more than :data:`RESERVED` urgent rows unacknowledged at once make one wait for a PUBACK. paho
sends what it was handed in order, at most its in-flight limit at a time: the alarm still follows
the other rows handed to paho before it (at most ``WINDOW - RESERVED``, one round of PUBACKs).

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
restart loses anyway), urgent rows first. The duplicates that makes are bounded by the window.
After a restart the rows left in the database are published again once the broker is connected,
in the same order.

A publisher whose ``publish`` reports no message id (a test's recorder) acknowledges at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from alerts._db import EventDb, OutboxRow, Writer
from alerts._routing import QOS, Publication, Publisher

log = logging.getLogger(__name__)

WINDOW: Final = 256
"""Rows handed to the publisher and not yet acknowledged, per connection (and so at most the
duplicates one reconnect makes)."""
RESERVED: Final = 64
"""Of the window, kept for urgent rows (32 changes of a fire alarm, grid and station topic each):
other rows take at most ``WINDOW - RESERVED``."""
DELETE_LINGER_S: Final = 0.05
"""Acknowledged rows are deleted together, at most this long after the first of them."""
_MID_TAKEN: Final = 14  # paho's MQTT_ERR_QUEUE_SIZE: the message id is still in use; retry later


@dataclass(slots=True, eq=False)
class _Queue:
    """The rows of one class (urgent or not)."""

    urgent: bool
    limit: int
    """Of the window, at most this many rows of this class."""
    top: int
    """The newest committed row of this class."""
    cursor: int
    """The oldest row of this class not yet handed over on this connection."""
    window: set[int] = field(default_factory=set)
    """The message ids of this class on this connection in ``Outbox._sent``."""

    def waiting(self) -> bool:
        """Rows of this class are committed and not handed over on this connection."""
        return self.cursor <= self.top


class Outbox:
    """Publications waiting for their PUBACK; see the module docstring."""

    def __init__(self, db: EventDb, publisher: Publisher, *, connected: bool = True) -> None:
        """``connected``: whether the publisher is connected now; a publisher that reports its
        connection (:meth:`on_connection_change`) starts with False."""
        self._db = db
        self._publisher = publisher
        self._lock = threading.Lock()
        self._depth, tops = db.outbox_extent()
        self._last_id = max(tops.values())
        self._connected = connected
        self._queues = tuple(
            _Queue(urgent, WINDOW if urgent else WINDOW - RESERVED, top, 0 if top else self._last_id + 1)
            for urgent, top in ((True, tops[True]), (False, tops[False]))  # urgent first
        )
        self._sent: dict[int, int] = {}
        """Message id → row id of everything handed over and not acknowledged (all connections)."""
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
        rows = [(first + i, p.topic, p.payload, p.urgent) for i, p in enumerate(publications)]
        writer.queue(rows)
        self._last_id += len(rows)
        return rows

    def committed(self, rows: Sequence[OutboxRow]) -> None:
        """``rows`` are committed: hand those of each class over now if nothing older of their
        class waits (urgent ones first), else wake the thread."""
        if not rows:
            return
        with self._lock:
            self._depth += len(rows)
            live = self._connected and self._link_up and not self._links
            for queue in self._queues:
                mine = [row for row in rows if row[3] == queue.urgent]
                if not mine:
                    continue
                behind = queue.waiting()  # older rows of the class not handed over yet
                queue.top = mine[-1][0]
                if live and not behind:
                    live = self._send(queue, mine)
            self._behind = self._waiting()
            if self._behind or self._asleep:
                self._wake.set()

    # -- the publisher's callbacks (network thread; no locks) ---------------------------------------

    def on_published(self, mid: int, error: str | None = None) -> None:
        """The broker acknowledged message ``mid`` (``error``: the PUBACK's failure reason)."""
        self._acks.append((mid, error))
        if self._behind:
            self._wake.set()

    def on_connection_change(self, up: bool) -> None:
        """Connected (publish everything again, urgent rows first, each class oldest first) or
        disconnected (hold everything)."""
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
                    self._behind = self._connected and self._waiting()
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
            for queue in self._queues:
                queue.window.clear()  # the old connection's messages stay in _sent for their PUBACKs
                queue.cursor = 0  # a reconnect publishes the whole outbox again

    def _take_acks(self) -> None:
        while self._acks:
            mid, error = self._acks.popleft()
            row_id = self._sent.pop(mid, None)
            for queue in self._queues:
                queue.window.discard(mid)
            if row_id is None:
                continue  # not ours (an action result), or already acknowledged
            if error is not None:  # e.g. "Not authorized": publishing again cannot cure it
                log.error("alert outbox: the broker refused publication %d: %s", row_id, error)
            self._finish(row_id)

    def _waiting(self) -> bool:
        return any(queue.waiting() for queue in self._queues)

    def _room(self, queue: _Queue) -> int:
        """How many more rows of ``queue``'s class the window takes now."""
        in_window = sum(len(q.window) for q in self._queues)
        return min(WINDOW - in_window, queue.limit - len(queue.window))

    def _pump(self) -> None:
        """Publish rows not handed over on this connection while the window has room: urgent
        rows first, each class oldest first."""
        for queue in self._queues:
            while self._connected and queue.waiting() and self._room(queue) > 0:
                limit = self._room(queue) + len(self._done_ids)
                rows = self._db.outbox_rows(queue.urgent, queue.cursor, queue.top, limit)
                if not rows:
                    queue.cursor = queue.top + 1
                elif not self._send(queue, rows):
                    return

    def _send(self, queue: _Queue, rows: Sequence[OutboxRow]) -> bool:
        """Hand ``rows`` of ``queue`` over in order while the window has room (under the lock);
        False when the publisher cannot take more now."""
        for row in rows:
            if row[0] in self._done_ids:
                queue.cursor = row[0] + 1  # acknowledged, deletion pending
            elif self._room(queue) <= 0:
                return True
            elif not self._hand_over(queue, row):
                return False
        return True

    def _hand_over(self, queue: _Queue, row: OutboxRow) -> bool:
        """Publish one row (under the lock); False when the publisher cannot take it now."""
        row_id, topic, payload, _ = row
        try:
            info = self._publisher.publish(topic, payload, QOS)
        except Exception:  # a publication that can never go out must not block all later ones
            log.exception("alert outbox: publishing %d to %s failed; dropped", row_id, topic)
            queue.cursor = row_id + 1
            self._finish(row_id)
            return True
        mid, rc = getattr(info, "mid", None), getattr(info, "rc", 0)
        if rc == _MID_TAKEN:
            return False
        queue.cursor = row_id + 1
        if isinstance(mid, int):
            self._sent[mid] = row_id
            queue.window.add(mid)
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
