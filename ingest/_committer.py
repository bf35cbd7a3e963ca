"""The commit stage: make each batch durable, then acknowledge it, in batch order.

It runs in its own thread so that decoding the next batch overlaps the InfluxDB write of the
previous one (InfluxDB works on the other core meanwhile). Batches that arrive while a write is
in flight are merged into the next write, so the pipeline does not wait for InfluxDB: an alarm
in the next batch is evaluated and published at once (alerts never wait for this stage). A batch
also lingers up to ``linger_s`` for others to join it: at low rates the pipeline hands over a
batch per message or two, and an HTTP write each cost more CPU than the messages themselves
(measured in bench/bench_alert_latency.py: 0.78 cores for 1,000 msg/s before, see RESULTS).
Only when ``max_pending`` lines wait does :meth:`Committer.submit` block, which bounds memory and
gives back-pressure to the pipeline (QoS 1 traffic is bounded before that by the broker's
Receive Maximum, since nothing waiting here is acknowledged).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from devices import StoreStoppingError
from ingest._pipeline import Durable, InMessage

log = logging.getLogger(__name__)

MAX_PENDING_LINES = 100_000
MERGE_LINES = 20_000
"""Batches are merged into one write up to this many lines (InfluxDB's sweet spot is 5–50k)."""
LINGER_S = 0.05
"""How long a batch may wait for others to share its write (delays acks, never alerts)."""


class Committer:
    def __init__(
        self,
        store: Durable,
        ack: Callable[[Sequence[InMessage]], None],
        on_fatal: Callable[[BaseException], None],
        *,
        max_pending: int = MAX_PENDING_LINES,
        merge_lines: int = MERGE_LINES,
        linger_s: float = LINGER_S,
    ) -> None:
        self._store = store
        self._ack = ack
        self._on_fatal = on_fatal
        self._max_pending = max_pending
        self._merge_lines = merge_lines
        self._linger_s = linger_s
        self._pending: deque[tuple[list[str], Sequence[InMessage], float]] = deque()
        self._urgent: deque[tuple[list[str], Sequence[InMessage], float]] = deque()
        """Alarm batches: written before ``_pending`` (see :meth:`submit`)."""
        self._pending_lines = 0
        self._changed = threading.Condition()
        self._closing = False
        self._failed = False
        self._thread = threading.Thread(target=self._run, name="committer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def pending_lines(self) -> int:
        return self._pending_lines

    @property
    def has_room(self) -> bool:
        """Whether :meth:`submit` would queue a batch without waiting."""
        return not self._full()

    def _full(self) -> bool:
        return self._pending_lines >= self._max_pending

    def submit(
        self, lines: list[str], messages: Sequence[InMessage], *, wait: bool = True, urgent: bool = False
    ) -> None:
        """Queue a batch; blocks only while ``max_pending`` lines are already waiting, unless
        ``wait`` is False (a few lines that must not be held: timers' events). ``urgent``: an
        alarm batch, queued without waiting and written before the batches waiting ahead of it,
        so that the alarm lane's acks (and with them the broker's next alarms) never wait behind
        readings. Acks keep their order within each lane: an alarm batch only overtakes
        readings, which came on another session."""
        if not lines and not messages:
            return
        with self._changed:
            while wait and not urgent and self._full() and not self._failed and self._thread.is_alive():
                self._changed.wait(1.0)
            if self._failed:
                return  # the service is stopping on a fatal error: nothing is acked any more
            (self._urgent if urgent else self._pending).append((lines, messages, time.monotonic()))
            self._pending_lines += len(lines)
            self._changed.notify_all()

    def close(self, timeout: float = 60.0) -> None:
        """Commit everything submitted, then stop."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _take(self) -> tuple[list[str], list[InMessage]] | None:
        """The waiting alarm batches merged, if any; else the oldest waiting batches merged, up to
        ``merge_lines`` (at least one); None: closed."""
        with self._changed:
            while not self._closing and not self._urgent and self._pending_lines < self._merge_lines:
                if not self._pending:
                    self._changed.wait()
                    continue
                wait = self._pending[0][2] + self._linger_s - time.monotonic()
                if wait <= 0:
                    break
                self._changed.wait(wait)
            queue = self._urgent or self._pending
            if not queue:
                return None
            lines: list[str] = []
            messages: list[InMessage] = []
            while queue and (not lines or len(lines) + len(queue[0][0]) <= self._merge_lines):
                batch_lines, batch_messages, _ = queue.popleft()
                lines.extend(batch_lines)
                messages.extend(batch_messages)
            self._pending_lines -= len(lines)
            self._changed.notify_all()
            return lines, messages

    def _run(self) -> None:
        while (item := self._take()) is not None:
            lines, messages = item
            try:
                self._store.put(lines)
            except StoreStoppingError as exc:  # stopping while the spool is full: nothing more is acked
                log.warning("%s; the broker delivers the rest again", exc)
                self._give_up()
                return
            except Exception as exc:
                log.exception("commit failed")
                self._give_up()
                self._on_fatal(exc)
                return
            self._ack(messages)

    def _give_up(self) -> None:
        with self._changed:
            self._failed = True
            self._pending.clear()  # nothing more is acked
            self._urgent.clear()
            self._pending_lines = 0
            self._changed.notify_all()
