"""The spool's bound (FIREGRID_SPOOL_MAX_MB): at it, a batch is held, never dropped; a warning
near it; the held batch goes through once the drainer made room; a stop gives it back unacked."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest

from devices import InfluxUnavailableError, SpoolFullError, StoreStoppingError
from ingest import IngestMetrics, Spool
from ingest._influx import InfluxClient, RejectedLine
from ingest._store import Store
from tests.helpers import eventually


class FakeInflux:
    """Down until ``up`` is set; records every line it accepted, in order (class attributes: the
    store makes a client per thread, and they share one InfluxDB)."""

    up: ClassVar[threading.Event] = threading.Event()
    written: ClassVar[list[str]] = []

    def write(self, lines: Sequence[str]) -> list[RejectedLine]:
        if not self.up.is_set():
            raise InfluxUnavailableError("down (test)")
        self.written.extend(lines)
        return []

    def ping(self) -> bool:
        return self.up.is_set()

    def close(self) -> None:
        pass


@pytest.fixture
def influx() -> type[FakeInflux]:
    FakeInflux.up = threading.Event()
    FakeInflux.written = []
    return FakeInflux


def incompressible(batch: int, n: int = 50) -> list[str]:
    rnd = random.Random(batch)
    return [f'm,b={batch} v="{rnd.getrandbits(256):x}" {i}' for i in range(n)]


def make_store(tmp_path: Path, max_bytes: int) -> tuple[Store, IngestMetrics, list[BaseException]]:
    metrics, fatal = IngestMetrics(), list[BaseException]()
    store = Store(
        lambda: cast(InfluxClient, FakeInflux()),
        Spool(tmp_path / "spool.sqlite"),
        metrics,
        lambda rejected: None,
        fatal.append,
        spool_max_bytes=max_bytes,
    )
    store.start()
    return store, metrics, fatal


def gauge(metrics: IngestMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


def test_at_the_bound_a_batch_is_held_until_the_drain_makes_room(
    tmp_path: Path, influx: type[FakeInflux], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ingest._store")
    store, metrics, fatal = make_store(tmp_path, max_bytes=20_000)
    sent: list[str] = []
    batch = 0
    while store.spool_depth == 0 or gauge(metrics, "firegrid_spool_bytes") < 17_000:
        lines = incompressible(batch)
        store.put(lines)  # returns: durable in the spool
        sent.extend(lines)
        batch += 1
    assert any("of its bound of" in r.getMessage() for r in caplog.records)  # the 80 % warning
    assert store.held is None and gauge(metrics, "firegrid_spool_held") == 0

    last = incompressible(batch)
    returned = threading.Event()

    def put_last() -> None:
        store.put(last)
        returned.set()

    putter = threading.Thread(target=put_last, daemon=True)
    putter.start()
    eventually(lambda: store.held is not None, what="the batch over the bound held")
    assert not returned.is_set() and gauge(metrics, "firegrid_spool_held") == 1
    held = [r.getMessage() for r in caplog.records if "holding acknowledgements" in r.getMessage()]
    assert len(held) == 1 and "FIREGRID_SPOOL_MAX_MB" in held[0]

    influx.up.set()  # InfluxDB is back: the drain makes room, the held batch goes through
    eventually(returned.is_set, timeout=20, what="the held batch made durable")
    eventually(lambda: store.spool_depth == 0, timeout=20, what="the spool drained")
    assert influx.written == [*sent, *last]  # everything, once, in order
    assert store.held is None and gauge(metrics, "firegrid_spool_bytes") == 0
    assert any("acknowledging again" in r.getMessage() for r in caplog.records)
    store.stop()
    assert fatal == []


def test_a_full_disk_holds_and_a_stop_gives_the_batch_back(
    tmp_path: Path, influx: type[FakeInflux], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _, fatal = make_store(tmp_path, max_bytes=10**9)
    store.put(incompressible(0))
    spool = cast(Any, store)._spool

    def full(lines: list[str], body: bytes | None = None) -> None:
        raise SpoolFullError("no space left for the spool (test)")

    monkeypatch.setattr(spool, "append", full)
    failure: list[BaseException] = []

    def put() -> None:
        try:
            store.put(incompressible(1))
        except StoreStoppingError as exc:
            failure.append(exc)

    putter = threading.Thread(target=put, daemon=True)
    putter.start()
    eventually(lambda: store.held is not None, what="the batch held on a full disk")
    assert "no space left" in (store.held or "")
    store.closing()
    putter.join(10)
    assert not putter.is_alive() and len(failure) == 1
    assert store.spool_depth == 50  # the held batch was never committed
    store.stop()
    assert fatal == []
