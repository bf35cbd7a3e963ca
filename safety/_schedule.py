"""The points of §12 on their clock: ``grid_index`` every ``index_interval_ms`` (at multiples of
it: every quarter hour at the default 15 min), ``grid_sla`` once a period (``sla_period_ms``, a
UTC day by default) for the period just ended.

Each point is computed for a fixed time (the index at its slot, a day's figures at its end), so
computing it again (a restart within the slot, a duplicate) writes the same point at the same
timestamp: InfluxDB keeps one. Runs on a thread of its own (SQLite reads and the arithmetic stay
off the pipeline); the lines go to ``emit``, the service's durable path to InfluxDB.

At province scale a round is over 100,000 grids (seconds of CPU), so the first round waits for
``ready`` (the service subscribed: start-up does not share the GIL with it), and a stop abandons
a round in progress (``cancelled``, checked between grids): the round is computed again at the
next start, with the same points.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Final, Protocol

log = logging.getLogger(__name__)

CHUNK_LINES: Final = 5_000
"""Lines handed to ``emit`` at a time."""
MAX_SLEEP_S: Final = 60.0
"""Wake at least this often (a wall clock that jumps is noticed within a minute)."""


class Cancelled(Exception):
    """A round abandoned because the service stops."""


def never() -> bool:
    return False


class PointSource(Protocol):
    """Lines may be computed as they are taken; a round raises :class:`Cancelled` (while its
    lines are taken) once ``cancelled()`` is true."""

    def index_lines(self, at_ms: int, cancelled: Callable[[], bool] = never) -> Iterable[str]: ...

    def sla_lines(
        self, since_ms: int, until_ms: int, cancelled: Callable[[], bool] = never
    ) -> Iterable[str]: ...


class Schedule:
    def __init__(
        self,
        source: PointSource,
        emit: Callable[[list[str]], None],
        clock: Callable[[], int],
        *,
        index_interval_ms: int,
        sla_period_ms: int,
        scale: float = 1.0,
        ready: threading.Event | None = None,
    ) -> None:
        """``clock``: the service clock (epoch ms), running ``scale`` times as fast as the wall
        clock (1 but in simulations): the slots and periods are on it, the waits in wall time.
        ``ready``: the first round waits until it is set (None: no wait)."""
        if index_interval_ms <= 0 or sla_period_ms <= 0 or scale <= 0:
            raise ValueError("intervals and the clock's scale must be positive")
        self._scale = scale
        self._source = source
        self._emit = emit
        self._clock = clock
        self.index_interval_ms = index_interval_ms
        self.sla_period_ms = sla_period_ms
        self._last_index: int | None = None
        self._last_sla: int | None = None
        self._ready = ready
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="safety-points", daemon=True)

    def due(self, now_ms: int, emit: Callable[[list[str]], None] | None = None) -> list[str]:
        """The lines due at ``now_ms`` (each slot and period once; the current ones at the first
        call). With ``emit``, they go there in chunks of :data:`CHUNK_LINES` as they are computed
        (a province's round is ~115,000 lines: never all in memory, never one InfluxDB write)
        and the list returned is empty."""
        lines: list[str] = []
        out = emit or lines.extend
        slot = now_ms - now_ms % self.index_interval_ms
        if self._last_index is None or slot > self._last_index:
            self._last_index = slot
            self._compute("grid_index", lambda: self._source.index_lines(slot, self._stopping.is_set), out)
        until = now_ms - now_ms % self.sla_period_ms
        if self._last_sla is None or until > self._last_sla:
            self._last_sla = until
            since = until - self.sla_period_ms
            self._compute(
                "grid_sla", lambda: self._source.sla_lines(since, until, self._stopping.is_set), out
            )
        return lines

    def next_due(self, now_ms: int) -> int:
        """The next time :meth:`due` has something to do."""
        next_slot = now_ms - now_ms % self.index_interval_ms + self.index_interval_ms
        next_period = now_ms - now_ms % self.sla_period_ms + self.sla_period_ms
        return min(next_slot, next_period)

    @staticmethod
    def _compute(what: str, lines: Callable[[], Iterable[str]], out: Callable[[list[str]], None]) -> None:
        try:
            iterator = iter(lines())
            while chunk := list(itertools.islice(iterator, CHUNK_LINES)):
                out(chunk)
        except Cancelled:
            log.info("%s points abandoned: stopping (the next start computes them again)", what)
        except Exception:  # a failed round is logged and skipped; the next slot tries again
            log.exception("%s points not computed", what)

    def _run(self) -> None:
        while self._ready is not None and not self._ready.wait(1.0):
            if self._stopping.is_set():
                return
        while not self._stopping.is_set():
            self.due(self._clock(), self._emit_unless_stopping)
            wait_s = (self.next_due(self._clock()) - self._clock()) / 1000 / self._scale
            self._stopping.wait(min(max(wait_s, 0.001), MAX_SLEEP_S))

    def _emit_unless_stopping(self, lines: list[str]) -> None:
        if not self._stopping.is_set():
            self._emit(lines)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(30)
