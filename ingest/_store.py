"""Durability: a batch of lines is durable once InfluxDB has it or the spool has committed it.

While the spool holds anything, new batches go to the spool too, so order is kept; a drainer
thread empties it oldest first with jittered exponential backoff while InfluxDB is away.

The spool is bounded (``FIREGRID_SPOOL_MAX_MB``), and its filesystem may fill up before that.
Either way :meth:`Store.put` then *holds* the batch: it does not return, so nothing of it is
acknowledged and the broker keeps the backlog (its queue is the next bound, deploy/mosquitto.conf);
it tries again each second and as soon as the drainer has made room, and says so once in the log
(and in ``firegrid_spool_held``). Nothing is dropped. A warning goes to the log when the spool
passes 80 % of its bound.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from devices import InfluxAuthError, InfluxUnavailableError, SpoolFullError, StoreStoppingError
from ingest._influx import InfluxClient, RejectedLine
from ingest._metrics import IngestMetrics
from ingest._spool import Spool

log = logging.getLogger(__name__)

DRAIN_LINES = 20_000
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 10.0
DEFAULT_SPOOL_MAX_BYTES = 1024 * 1024 * 1024
HOLD_RETRY_S = 1.0
NEAR_BOUND = 0.8
"""Share of the bound at which the log warns (once, until the spool is below half again)."""


class Store:
    def __init__(
        self,
        client_factory: Callable[[], InfluxClient],
        spool: Spool,
        metrics: IngestMetrics,
        on_rejected: Callable[[list[RejectedLine]], None],
        on_fatal: Callable[[BaseException], None],
        *,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
    ) -> None:
        self._client_factory = client_factory
        self._client = client_factory()
        self._spool = spool
        self._metrics = metrics
        self._on_rejected = on_rejected
        self._on_fatal = on_fatal
        self._influx_up = True
        self._max_bytes = spool_max_bytes
        self._held: str | None = None
        """Why batches are held unacknowledged now; None while they are not."""
        self._near_bound = False
        self._room = threading.Event()
        """Set by the drainer when it freed space in the spool."""
        self._closing = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._drainer = threading.Thread(target=self._drain_loop, name="spool-drainer", daemon=True)
        metrics.spool_depth.set_function(lambda: spool.depth)
        metrics.influx_up.set_function(lambda: 1.0 if self._influx_up else 0.0)
        metrics.spool_bytes.set_function(lambda: spool.size_bytes)
        metrics.spool_bound.set(spool_max_bytes)
        metrics.spool_held.set_function(lambda: 0.0 if self._held is None else 1.0)

    @property
    def influx_up(self) -> bool:
        return self._influx_up

    @property
    def spool_depth(self) -> int:
        return self._spool.depth

    def start(self) -> None:
        self._drainer.start()

    @property
    def held(self) -> str | None:
        """Why batches are held unacknowledged now (full spool or disk); None while they are not."""
        return self._held

    def closing(self) -> None:
        """The service is stopping: a batch that would have to wait for room raises
        :class:`StoreStoppingError` instead (it stays unacknowledged; the broker redelivers it)."""
        self._closing = True
        self._room.set()

    def put(self, lines: list[str]) -> None:
        """Return once ``lines`` are durable; hold them while the spool is full (see the module
        doc). Raises InfluxAuthError (fatal) and StoreStoppingError."""
        if not lines:
            return
        started = time.perf_counter()
        body: bytes | None = None
        while True:
            if self._spool.empty and self._influx_up:
                try:
                    rejected = self._client.write(lines)
                except InfluxUnavailableError as exc:
                    self._went_down(exc)
                else:
                    self._metrics.written.inc(len(lines) - len(rejected))
                    self._metrics.write_latency.observe(time.perf_counter() - started)
                    self._release()
                    if rejected:
                        self._on_rejected(rejected)
                    return
            body = body or self._spool.pack(lines)
            if not self._spool.empty and self._spool.size_bytes + len(body) > self._max_bytes:
                self._hold(
                    f"the spool reached its bound of {self._max_bytes / 2**20:g} MB (FIREGRID_SPOOL_MAX_MB)"
                )
                continue
            try:
                self._spool.append(lines, body)
            except SpoolFullError as exc:
                self._hold(str(exc))
                continue
            break
        self._release()
        self._metrics.spooled.inc(len(lines))
        self._metrics.write_latency.observe(time.perf_counter() - started)
        self._watch_bound()
        self._wake.set()

    def _hold(self, why: str) -> None:
        """Wait for room (or a second); the caller then tries again."""
        if self._closing:
            raise StoreStoppingError(f"stopping while a batch waits for room: {why}")
        if self._held != why:
            log.error(
                "holding acknowledgements: %s; the broker keeps the backlog and nothing is lost; "
                "resuming as soon as there is room",
                why,
            )
            self._held = why
        self._wake.set()  # the drainer: make room
        self._room.wait(HOLD_RETRY_S)
        self._room.clear()

    def _release(self) -> None:
        if self._held is not None:
            log.warning("acknowledging again: there is room (it was: %s)", self._held)
            self._held = None

    def _watch_bound(self) -> None:
        share = self._spool.size_bytes / self._max_bytes
        if share >= NEAR_BOUND and not self._near_bound:
            self._near_bound = True
            log.warning(
                "the spool %s holds %.0f %% of its bound of %g MB (FIREGRID_SPOOL_MAX_MB); at the bound, "
                "acknowledgements are held",
                self._spool.path,
                100 * share,
                self._max_bytes / 2**20,
            )
        elif share < NEAR_BOUND / 2:
            self._near_bound = False

    def _went_down(self, exc: BaseException) -> None:
        if self._influx_up:
            log.warning("InfluxDB unavailable, spooling to %s: %s", self._spool.path, exc)
        self._influx_up = False
        self._wake.set()

    def _drain_loop(self) -> None:
        client = self._client_factory()
        backoff = BACKOFF_MIN_S
        try:
            while not self._stopping.is_set():
                if self._spool.empty:
                    self._wake.wait(1.0)
                    self._wake.clear()
                    if self._spool.empty and not self._influx_up and client.ping():
                        self._influx_up = True
                    continue
                last_id, lines = self._spool.peek(DRAIN_LINES)
                try:
                    rejected = client.write(lines)
                except InfluxUnavailableError as exc:
                    self._influx_up = False
                    delay = random.uniform(backoff / 2, backoff)  # jitter: restarts don't stampede
                    log.debug("spool drain waits %.1f s: %s", delay, exc)
                    self._stopping.wait(delay)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                    continue
                backoff = BACKOFF_MIN_S
                try:
                    self._spool.remove_through(last_id)
                except SpoolFullError as exc:  # written, not deleted: written again later (same points)
                    log.warning("spool drain cannot delete what it wrote yet: %s", exc)
                    self._stopping.wait(HOLD_RETRY_S)
                    continue
                self._room.set()
                self._metrics.written.inc(len(lines) - len(rejected))
                if rejected:
                    self._on_rejected(rejected)
                if self._spool.empty:
                    self._influx_up = True
                    log.info("spool drained; writing to InfluxDB directly again")
        except InfluxAuthError as exc:
            self._on_fatal(exc)
        finally:
            client.close()
            self._spool.close()

    def stop(self, drain_timeout: float = 0.0) -> None:
        """Stop the drainer; with ``drain_timeout``, first give the spool that long to empty."""
        deadline = time.monotonic() + drain_timeout
        while not self._spool.empty and self._influx_up and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
        self._stopping.set()
        self._wake.set()
        if self._drainer.is_alive():
            self._drainer.join(15)
        self._client.close()
