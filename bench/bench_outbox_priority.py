"""How long a FIRE_ALARM's publications wait behind a mass silence's in the alert outbox (issue 17).

In process: an ``EventStore`` whose publisher behaves like paho on the alert link (message ids, at
most ``--inflight`` messages on the wire, paho's default ``max_inflight_messages`` which firegrid
keeps, the rest queued in paho in the order handed over) and a broker that acknowledges the oldest
message on the wire at ``--ack-rate`` PUBACKs/s. ``N`` DEVICE_OFFLINE events are committed (1,000
per call, as the timer budget hands them over) while the broker holds its PUBACKs (slow), so all
their publications wait; then the broker starts acknowledging and, at the same instant, a
FIRE_ALARM is raised. Measured: from that call to the hand-over of the alarm's publications (grid
and station topic) to the publisher, to their sending, and to their PUBACK; and how long the
silence took to drain.

Whichever ``alerts`` is first on the path is measured; for "before", the previous tree::

    .venv/bin/python bench/bench_outbox_priority.py --bulk 10000,100000,200000
    git archive <commit> | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before .venv/bin/python bench/bench_outbox_priority.py --bulk 10000,100000,200000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # appended: PYTHONPATH's tree wins

import alerts
from alerts import EventStore
from devices import Registry
from rules import Hit
from tests.helpers import write_registry

CHUNK = 1_000
_ALARM = b'"type":"FIRE_ALARM"'


class Info:
    def __init__(self, mid: int) -> None:
        self.mid = mid
        self.rc = 0


@dataclass
class PahoLike:
    """paho's ``publish`` and a broker acknowledging at ``rate`` once :meth:`start` is called."""

    inflight: int
    rate: float
    store: EventStore | None = None
    handed: dict[int, float] = field(default_factory=dict)
    """Message id → when handed over, for the alarm's publications."""
    sent: dict[int, float] = field(default_factory=dict)
    acked: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._mid = 0
        self._wire: deque[int] = deque()
        self._queue: deque[int] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._broker, name="broker", daemon=True)

    def publish(self, topic: str, payload: bytes, qos: int) -> Info:
        now = time.perf_counter()
        with self._lock:
            self._mid += 1
            mid = self._mid
            if _ALARM in payload:
                self.handed[mid] = now
            if len(self._wire) < self.inflight:
                self._put_on_wire(mid, now)
            else:
                self._queue.append(mid)
        return Info(mid)

    def _put_on_wire(self, mid: int, now: float) -> None:
        self._wire.append(mid)
        if mid in self.handed:
            self.sent[mid] = now

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _broker(self) -> None:
        assert self.store is not None
        tokens, last = 0.0, time.perf_counter()
        while not self._stop.wait(0.0005):
            now = time.perf_counter()
            tokens = min(tokens + (now - last) * self.rate, float(self.inflight))
            last = now
            with self._lock:
                count = min(int(tokens), len(self._wire))
                done = [self._wire.popleft() for _ in range(count)]
                while self._queue and len(self._wire) < self.inflight:
                    self._put_on_wire(self._queue.popleft(), now)
            tokens -= count
            for mid in done:
                if mid in self.handed:
                    self.acked[mid] = now
                self.store.on_published(mid)  # as paho's on_publish, on its network thread


def offline(count: int, ts: int) -> list[Hit]:
    """DEVICE_OFFLINE of ``count`` electrical monitors (not in the registry: no position needed)."""
    return [
        Hit(
            type="DEVICE_OFFLINE",
            severity="major",
            kind="electrical",
            slot=0,
            device_id=f"X{i:07d}",
            site_id=f"XS{i:07d}",
            grid_id="D01-G01",
            district="D01",
            key=("device", f"X{i:07d}", "DEVICE_OFFLINE"),
            state="raise",
            value=None,
            threshold=None,
            ts=ts,
            message="No message for 2 h",
        )
        for i in range(count)
    ]


def fire_alarm(registry: Registry, ts: int) -> Hit:
    slot = registry.slot_of["S0000"]
    return Hit(
        type="FIRE_ALARM",
        severity="critical",
        kind="smoke",
        slot=slot,
        device_id="S0000",
        site_id=registry.site_of(slot),
        grid_id=registry.grid_of(slot),
        district=registry.district_of(slot),
        key=("device", "S0000", "FIRE_ALARM"),
        state="raise",
        value=1.0,
        threshold=1.0,
        ts=ts,
        message="Smoke alarm",
    )


def wait(probe: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(0.001)
    return False


def one_run(root: Path, registry: Registry, bulk: int, inflight: int, rate: float) -> str:
    paho = PahoLike(inflight, rate)
    store = EventStore(root / f"events-{bulk}.sqlite", registry, paho, connected=False)
    paho.store = store
    try:
        store.on_connection_change(True)
        now = 1_764_583_200_000
        hits = offline(bulk, now)
        began = time.perf_counter()
        for i in range(0, bulk, CHUNK):
            store.process(hits[i : i + CHUNK], now)
        committed_s = time.perf_counter() - began
        waiting = store.outbox_depth
        paho.start()
        raised = time.perf_counter()
        store.process([fire_alarm(registry, now + 1)], now + 1)
        timeout = 3 * bulk / rate + 30
        if not wait(lambda: len(paho.acked) == 2, timeout):
            return f"| {bulk:,} | {waiting:,} | no PUBACK of the alarm within {timeout:.0f} s |"
        wait(lambda: store.outbox_depth == 0, timeout)
        drained = time.perf_counter() - raised
        paho.stop()

        def ms(times: dict[int, float]) -> str:
            return f"{(max(times.values()) - raised) * 1000:,.1f}"

        return (
            f"| {bulk:,} | {waiting:,} | {ms(paho.handed)} | {ms(paho.sent)} | {ms(paho.acked)} "
            f"| {drained:.2f} | {committed_s:.1f} |"
        )
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bulk", default="10000,100000,200000", help="comma-separated DEVICE_OFFLINE counts")
    parser.add_argument("--ack-rate", type=float, default=10_000.0, help="the broker's PUBACKs per second")
    parser.add_argument("--inflight", type=int, default=20, help="paho's max_inflight_messages")
    args = parser.parse_args()
    print(f"alerts from {Path(alerts.__file__).parent}; broker {args.ack_rate:,.0f} PUBACKs/s, ", end="")
    print(f"{args.inflight} in flight")
    print("| DEVICE_OFFLINE | rows waiting | alarm handed over (ms) | sent (ms) | PUBACK (ms) ", end="")
    print("| silence drained (s) | silence committed in (s) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registry = Registry.load(write_registry(root / "registry"))
        for bulk in (int(n) for n in args.bulk.split(",")):
            print(one_run(root, registry, bulk, args.inflight, args.ack_rate), flush=True)


if __name__ == "__main__":
    main()
