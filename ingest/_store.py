"""Durability: a batch of lines is durable once InfluxDB has it or the spool has committed it.

While the spool holds anything, new batches go to the spool too, so order is kept; a drainer
thread empties it oldest first with jittered exponential backoff while InfluxDB is away.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from devices import InfluxAuthError, InfluxUnavailableError
from ingest._influx import InfluxClient, RejectedLine
from ingest._metrics import IngestMetrics
from ingest._spool import Spool

log = logging.getLogger(__name__)

DRAIN_LINES = 20_000
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 10.0


class Store:
    def __init__(
        self,
        client_factory: Callable[[], InfluxClient],
        spool: Spool,
        metrics: IngestMetrics,
        on_rejected: Callable[[list[RejectedLine]], None],
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self._client_factory = client_factory
        self._client = client_factory()
        self._spool = spool
        self._metrics = metrics
        self._on_rejected = on_rejected
        self._on_fatal = on_fatal
        self._influx_up = True
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._drainer = threading.Thread(target=self._drain_loop, name="spool-drainer", daemon=True)
        metrics.spool_depth.set_function(lambda: spool.depth)
        metrics.influx_up.set_function(lambda: 1.0 if self._influx_up else 0.0)

    @property
    def influx_up(self) -> bool:
        return self._influx_up

    @property
    def spool_depth(self) -> int:
        return self._spool.depth

    def start(self) -> None:
        self._drainer.start()

    def put(self, lines: list[str]) -> None:
        """Return once ``lines`` are durable. Raises InfluxAuthError (fatal)."""
        if not lines:
            return
        started = time.perf_counter()
        if self._spool.empty and self._influx_up:
            try:
                rejected = self._client.write(lines)
            except InfluxUnavailableError as exc:
                self._went_down(exc)
            else:
                self._metrics.written.inc(len(lines) - len(rejected))
                self._metrics.write_latency.observe(time.perf_counter() - started)
                if rejected:
                    self._on_rejected(rejected)
                return
        self._spool.append(lines)
        self._metrics.spooled.inc(len(lines))
        self._metrics.write_latency.observe(time.perf_counter() - started)
        self._wake.set()

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
                self._spool.remove_through(last_id)
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
