"""One batch of MQTT messages: decode, validate, dedup, evaluate, encode (then commit and ack)."""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Protocol

from devices import Reading, Registry
from ingest._decode import Decoded, Decoder, RejectReason
from ingest._dedup import SeqDeduplicator
from ingest._encode import PointEncoder
from ingest._influx import RejectedLine
from ingest._metrics import IngestMetrics
from ingest._ratelimit import DeviceRate, RateLimiter

if TYPE_CHECKING:
    from ingest._lanes import LaneTwins

log = logging.getLogger(__name__)

_KIND_OF = attrgetter("payload.kind")

IDLE_CLOSE_MS = 1_000
"""Without traffic, a device-minute of rate-limited messages is closed this long after its end
(a margin for a message received just before the clock was read)."""


def wall_ms() -> int:
    """The wall clock (epoch ms): the service clock unless the service passes another."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class InMessage:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_ms: int
    generation: int
    """The MQTT connection the message arrived on; acks for older connections are void."""
    lane: int = 0
    """The session it came on: 0 the readings lane, 1 the alarm lane (``ingest/_lanes.py``)."""


class ReadingSink(Protocol):
    """Downstream of ingest (the rules engine): sees every new valid reading of a batch, and
    ``limited``: registry slot → messages of that device the rate limit dropped in the batch
    (empty when none were); returns line protocol of its own (``events`` points) to store with
    the batch."""

    def on_readings(
        self, readings: Sequence[Reading], now_ms: int, limited: Mapping[int, int]
    ) -> list[str]: ...


class Durable(Protocol):
    def put(self, lines: list[str]) -> None: ...


class Pipeline:
    def __init__(
        self,
        registry: Registry,
        metrics: IngestMetrics,
        *,
        topic_prefix: str = "",
        sinks: Sequence[ReadingSink] = (),
        clock_ms: Callable[[], int] = wall_ms,
        device_rate: DeviceRate | None = None,
        twins: LaneTwins | None = None,
    ) -> None:
        """``device_rate``: the per-device rate limit (CONTRACT §10); None: no limit. ``clock_ms``:
        the service clock (epoch ms), the ``now_ms`` the sinks get. ``twins``: with an alarm
        lane, what recognises the second copy of a message that reached both lanes."""
        self._twins = twins
        self._metrics = metrics
        self._sinks = list(sinks)
        self._clock_ms = clock_ms
        self._prefix = topic_prefix
        self.registry = registry
        self.limiter = RateLimiter(device_rate, registry.slots) if device_rate is not None else None
        self._decoder = Decoder(registry, topic_prefix, self.limiter)
        self._encoder = PointEncoder(registry)
        self._dedup = SeqDeduplicator(registry.slots)
        self._pending_rejected: deque[str] = deque()  # appended by the spool drainer too
        self._lost_shown = 0  # the lost-messages gauge's value (set when it changes)
        self._readings_of_kind: dict[str, Any] = {}  # the labelled children, looked up once each

    def reload(self, registry: Registry) -> None:
        """Swap in a reloaded registry (slots of known devices are stable; dedup state is kept)."""
        self.registry = registry
        if self.limiter is not None:
            self.limiter.grow(registry.slots)  # the buckets of known devices are kept
        self._decoder = Decoder(registry, self._prefix, self.limiter)
        self._encoder = PointEncoder(registry)
        self._dedup.grow(registry.slots)

    def process(self, messages: Sequence[InMessage]) -> list[str]:
        """The line protocol of ``messages``' readings and rejects; the sinks have seen the readings.

        The messages may be acknowledged once these lines are durable (see :class:`Committer`).
        """
        if self._twins is not None:
            messages = self._first_copies(messages, self._twins)
            if not messages:
                return []  # second copies only: nothing to store, only acks
        decoded = Decoded()
        decode = self._decoder.decode
        for message in messages:
            decode(message.topic, message.payload, message.received_ms, decoded)
        limited = self.limiter.take_batch() if self.limiter is not None else {}
        dedup = self._dedup
        before = dedup.duplicates
        readings = dedup.filter(decoded.readings)
        metrics = self._metrics
        metrics.received.inc(len(messages))
        if dedup.duplicates != before:
            metrics.duplicates.inc(dedup.duplicates - before)
        lost = max(dedup.lost, 0)
        if lost != self._lost_shown:
            metrics.lost.set(lost)
            self._lost_shown = lost
        metrics.batch_size.observe(len(messages))
        if readings:
            of_kind = self._readings_of_kind
            counts = {readings[0].payload.kind: 1} if len(readings) == 1 else Counter(map(_KIND_OF, readings))
            for kind, count in counts.items():
                child = of_kind.get(kind)
                if child is None:
                    child = of_kind[kind] = metrics.readings.labels(kind)
                child.inc(count)
        for reject in decoded.rejects:
            metrics.rejected.labels(reject.reason.value).inc()
            log.info("rejected %s from %r: %s", reject.reason.value, reject.topic[:200], reject.error[:300])
        if limited:  # not logged one by one: see rate_limited_lines
            dropped = sum(limited.values())
            metrics.rate_limited.inc(dropped)
            metrics.rejected.labels(RejectReason.RATE_LIMITED.value).inc(dropped)
        now_ms = self._clock_ms()
        lines: list[str] = []
        for sink in self._sinks:  # alerts must not wait for InfluxDB
            lines.extend(sink.on_readings(readings, now_ms, limited))
        if messages:
            metrics.pipeline_delay.observe(max(self._clock_ms() - messages[0].received_ms, 0) / 1000)
        while self._pending_rejected:
            lines.append(self._pending_rejected.popleft())
        self._encoder.readings(readings, lines)
        self._encoder.rejects(decoded.rejects, lines)
        if self.limiter is not None and messages:  # minutes before this batch's newest message
            self._closed_minutes(messages[-1].received_ms, lines, final=False)
        return lines

    def _first_copies(self, messages: Sequence[InMessage], twins: LaneTwins) -> Sequence[InMessage]:
        before = twins.twins
        messages = twins.first_copies(messages)
        if twins.twins != before:
            self._metrics.lane_twins.inc(twins.twins - before)
        return messages

    def rate_limited_lines(self, *, final: bool = False) -> list[str]:
        """The ``rate_limited`` rejects of the device-minutes over by the clock (``final``: of
        all of them, at a clean stop). Call when no message waits to be decoded (the inbox is
        empty), so that the minutes of a flood that stopped are recorded without new traffic;
        while messages flow, :meth:`process` closes minutes by their receipt times."""
        lines: list[str] = []
        if self.limiter is not None:
            self._closed_minutes(self._clock_ms() - IDLE_CLOSE_MS, lines, final=final)
        return lines

    def _closed_minutes(self, until_ms: int, lines: list[str], *, final: bool) -> None:
        assert self.limiter is not None
        closed = self.limiter.closed(until_ms, final=final)
        if closed:
            log.warning(
                "rate limit (%s): %d messages dropped in %d device-minutes, e.g. %d from %r",
                self.limiter.rate,
                sum(r.count or 0 for r in closed),
                len(closed),
                closed[0].count or 0,
                closed[0].topic[:200],
            )
            self._encoder.rejects(closed, lines)

    def on_influx_rejected(self, rejected: list[RejectedLine]) -> None:
        """Lines InfluxDB refused become ``rejects`` points, written with the next batch."""
        now_ms = self._clock_ms()
        for item in rejected:
            log.error("InfluxDB refused a point: %s (%s)", item.error[:300], item.line[:200])
            self._metrics.rejected.labels("influx_rejected").inc()
            if not item.line.startswith("rejects,"):  # a refused reject is not retried
                self._pending_rejected.append(self._encoder.refused_by_influx(item.line, item.error, now_ms))
