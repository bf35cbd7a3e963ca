"""The commit stage: make each batch durable, then acknowledge it, in batch order.

It runs in its own thread so that decoding the next batch overlaps the InfluxDB write of the
previous one (InfluxDB works on the other core meanwhile). The hand-off queue is short, which
bounds the messages held unacknowledged and gives back-pressure to the pipeline.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

from ingest._pipeline import Durable, InMessage

log = logging.getLogger(__name__)

_STOP = None


class Committer:
    def __init__(
        self,
        store: Durable,
        ack: Callable[[Sequence[InMessage]], None],
        on_fatal: Callable[[BaseException], None],
        depth: int = 2,
    ) -> None:
        self._store = store
        self._ack = ack
        self._on_fatal = on_fatal
        self._queue: queue.Queue[tuple[list[str], Sequence[InMessage]] | None] = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="committer", daemon=True)
        self._failed = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def submit(self, lines: list[str], messages: Sequence[InMessage]) -> None:
        """Queue a batch; blocks while ``depth`` batches are already waiting."""
        if self._failed.is_set():
            return  # the service is stopping on a fatal error: nothing is acked any more
        self._queue.put((lines, messages))

    def close(self, timeout: float = 60.0) -> None:
        """Commit everything submitted, then stop."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            lines, messages = item
            try:
                self._store.put(lines)
            except Exception as exc:
                log.exception("commit failed")
                self._failed.set()
                self._on_fatal(exc)
                while self._queue.get() is not _STOP:  # drain; nothing is acked
                    pass
                return
            self._ack(messages)
