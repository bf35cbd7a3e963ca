"""The per-device rate limit (CONTRACT §10, ``FIREGRID_DEVICE_RATE``) and its aggregated rejects.

A token bucket per device, kept as the equivalent *generic cell rate algorithm* (GCRA, the
"virtual scheduling" form of ITU-T I.371): one float per registry slot, the theoretical arrival
time ``tat`` of the device's next message. A message at receipt time ``now`` passes when
``max(tat, now) - now <= (burst - 1) × interval`` and moves ``tat`` on by one ``interval``
(``1000 / rate`` ms); otherwise it is dropped and ``tat`` stays. This is exactly a bucket of
``burst`` tokens refilled at ``rate`` a second (a fresh device starts full), at 8 bytes a device
and one comparison a message. Plain ``array``: the decoder checks one slot at a time, where
numpy scalars are several times slower.

Time is the message's receipt time on the service clock (``InMessage.received_ms``), never the
device's own ``ts``. A gateway batch is one message.

Dropped messages are not recorded one by one (a flood would write a point per message): each
device's drops are summed per minute of receipt (``received_ms // 60000``) and become one
``rejects`` point with reason ``rate_limited`` and field ``count`` (timed at the minute's first
drop) once the minute is over — a later message was received after it, or the clock passed it
while nothing waited — or at a clean stop (:meth:`RateLimiter.closed`).
"""

from __future__ import annotations

import math
import re
from array import array
from dataclasses import dataclass
from datetime import UTC, datetime

from ingest._decode import REJECT_PAYLOAD_BYTES, Reject, RejectReason

MINUTE_MS = 60_000
_RATE = re.compile(r"^\s*(?P<rate>\d+(?:\.\d+)?)\s*/\s*(?P<burst>\d+)\s*$")
_EPSILON_MS = 1e-6
"""Rounding slack of the float arithmetic: a burst of exactly ``burst`` messages always passes."""


@dataclass(frozen=True, slots=True)
class DeviceRate:
    """``FIREGRID_DEVICE_RATE``: ``per_s`` messages a second sustained, bursts of ``burst``."""

    per_s: float
    burst: int

    @classmethod
    def parse(cls, text: str) -> DeviceRate | None:
        """``"5/300"`` → ``DeviceRate(5.0, 300)``; ``"0"`` → None (off); ``ValueError`` otherwise."""
        if text.strip() == "0":
            return None
        match = _RATE.match(text)
        if match is None:
            raise ValueError(
                f"must be RATE/BURST (messages a second sustained / burst, e.g. 5/300) or 0 (off), "
                f"got {text[:40]!r}"
            )
        per_s, burst = float(match["rate"]), int(match["burst"])
        if not (0 < per_s <= 1_000_000 and math.isfinite(per_s)):
            raise ValueError(f"the rate must be > 0 and ≤ 1000000 messages a second, got {match['rate']}")
        if not 1 <= burst <= 1_000_000_000:
            raise ValueError(f"the burst must be 1 to 1000000000 messages, got {burst}")
        return cls(per_s, burst)

    def __str__(self) -> str:
        rate = f"{self.per_s:g}"
        return f"{rate}/s, bursts of {self.burst}"


@dataclass(slots=True)
class _Minute:
    """One device's drops in one minute, until the minute closes."""

    minute: int
    first_ms: int
    count: int
    topic: str
    payload: bytes


class RateLimiter:
    """The buckets of every registry slot, this batch's drops, and the open device-minutes.

    Used by the pipeline thread only. ``admit`` is called for every message of a known device
    (by :class:`ingest.Decoder`); ``take_batch`` after each batch; ``closed`` between batches.
    """

    def __init__(self, rate: DeviceRate, slots: int) -> None:
        self.rate = rate
        self._interval = 1000.0 / rate.per_s
        self._tolerance = (rate.burst - 1) * self._interval + _EPSILON_MS
        self._tat = array("d", [0.0]) * slots
        self._batch: dict[int, int] = {}
        self._minutes: dict[int, _Minute] = {}
        self._closed: list[_Minute] = []
        self._swept = 0
        self.dropped = 0
        """Messages dropped since start."""

    @property
    def slots(self) -> int:
        return len(self._tat)

    def grow(self, slots: int) -> None:
        """Make room for devices added by a registry reload (known slots, and their buckets, stay)."""
        extra = slots - len(self._tat)
        if extra > 0:
            self._tat.extend(array("d", [0.0]) * extra)

    def admit(self, slot: int, now_ms: int, topic: str, payload: bytes) -> bool:
        """True: the message of ``slot`` received at ``now_ms`` is within the limit (and counted
        against it). False: it is over the limit and dropped; the drop is noted."""
        tat = self._tat[slot]
        if tat < now_ms:  # noqa: PLR1730 (max() is a call on every message's path)
            tat = now_ms
        if tat - now_ms <= self._tolerance:
            self._tat[slot] = tat + self._interval
            return True
        self._drop(slot, now_ms, topic, payload)
        return False

    def _drop(self, slot: int, now_ms: int, topic: str, payload: bytes) -> None:
        self.dropped += 1
        batch = self._batch
        batch[slot] = batch.get(slot, 0) + 1
        minute = now_ms // MINUTE_MS
        entry = self._minutes.get(slot)
        if entry is not None and entry.minute == minute:
            entry.count += 1
            return
        if entry is not None:  # the device's earlier minute is over
            self._closed.append(entry)
        self._minutes[slot] = _Minute(minute, now_ms, 1, topic, payload[:REJECT_PAYLOAD_BYTES])

    def take_batch(self) -> dict[int, int]:
        """slot → messages dropped since the last call (one batch), and start the next batch."""
        if not self._batch:
            return {}
        batch, self._batch = self._batch, {}
        return batch

    def closed(self, until_ms: int, *, final: bool = False) -> list[Reject]:
        """The ``rate_limited`` rejects of every device-minute that ended by ``until_ms`` (with
        ``final``, of every minute: a clean stop), one per device and minute, each with its count.

        ``until_ms`` must be a time before which no message is still to come: the receipt time
        of the newest message decoded (messages arrive in receipt order), or, when nothing waits
        to be decoded, the clock. Cheap to call often: the open minutes are looked at once a
        minute."""
        horizon = until_ms // MINUTE_MS
        """Minutes before this one are over."""
        if final or horizon > self._swept:
            self._swept = horizon
            done = [slot for slot, entry in self._minutes.items() if final or entry.minute < horizon]
            for slot in done:
                self._closed.append(self._minutes.pop(slot))
        if not self._closed:
            return []
        closed, self._closed = self._closed, []
        return [self._reject(entry) for entry in closed]

    def _reject(self, entry: _Minute) -> Reject:
        start = datetime.fromtimestamp(entry.minute * MINUTE_MS / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")
        plural = "" if entry.count == 1 else "s"
        return Reject(
            RejectReason.RATE_LIMITED,
            entry.topic,
            f"{entry.count} message{plural} over the device rate limit ({self.rate}) dropped in the "
            f"minute from {start}",
            entry.payload,
            entry.first_ms,
            count=float(entry.count),
        )
