"""grid_index at every slot, grid_sla once per period for the period just ended, each computed
for a fixed time (so recomputing gives the same point)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

from safety import Cancelled, Schedule, never
from safety._schedule import CHUNK_LINES
from tests.helpers import eventually


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def index_lines(self, at_ms: int, cancelled: Callable[[], bool] = never) -> Iterable[str]:
        self.calls.append(("index", at_ms, at_ms))
        return [f"grid_index {at_ms}"]

    def sla_lines(self, since_ms: int, until_ms: int, cancelled: Callable[[], bool] = never) -> Iterable[str]:
        self.calls.append(("sla", since_ms, until_ms))
        return [f"grid_sla {since_ms}"]


DAY = 86_400_000
QUARTER = 900_000


def test_slots_and_periods() -> None:
    source = Recorder()
    schedule = Schedule(source, lambda lines: None, lambda: 0, index_interval_ms=QUARTER, sla_period_ms=DAY)
    start = 20 * DAY + 5 * QUARTER + 1234
    assert schedule.due(start) == [f"grid_index {20 * DAY + 5 * QUARTER}", f"grid_sla {19 * DAY}"]
    assert source.calls == [
        ("index", 20 * DAY + 5 * QUARTER, 20 * DAY + 5 * QUARTER),
        ("sla", 19 * DAY, 20 * DAY),
    ]
    assert schedule.due(start + 1000) == []  # same slot, same day
    assert schedule.next_due(start) == 20 * DAY + 6 * QUARTER
    assert schedule.due(20 * DAY + 6 * QUARTER) == [f"grid_index {20 * DAY + 6 * QUARTER}"]
    assert schedule.due(21 * DAY + 1) == [f"grid_index {21 * DAY}", f"grid_sla {20 * DAY}"]
    assert schedule.next_due(21 * DAY - 1) == 21 * DAY


def test_a_failing_round_is_skipped_not_fatal() -> None:
    class Failing(Recorder):
        def index_lines(self, at_ms: int, cancelled: Callable[[], bool] = never) -> Iterable[str]:
            raise RuntimeError("database is locked")

    schedule = Schedule(
        Failing(), lambda lines: None, lambda: 0, index_interval_ms=QUARTER, sla_period_ms=DAY
    )
    assert schedule.due(DAY + 1) == ["grid_sla 0"]
    assert schedule.due(DAY + 2) == []


class Slow(Recorder):
    """A province's round: many grids, ``cancelled`` looked at between them."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()

    def index_lines(self, at_ms: int, cancelled: Callable[[], bool] = never) -> Iterable[str]:
        self.started.set()
        while not cancelled():  # as safety.checking: the next look after the stop raises
            threading.Event().wait(0.001)
        raise Cancelled


def test_a_stop_abandons_a_round_in_progress_and_emits_nothing() -> None:
    source, emitted = Slow(), list[list[str]]()
    schedule = Schedule(source, emitted.append, lambda: 0, index_interval_ms=QUARTER, sla_period_ms=DAY)
    schedule.start()
    assert source.started.wait(10), "the round started"
    schedule.stop()
    assert not schedule._thread.is_alive()  # joined, not left computing
    assert emitted == []


def test_the_first_round_waits_until_the_service_is_ready() -> None:
    source, emitted, ready = Recorder(), list[list[str]](), threading.Event()
    schedule = Schedule(
        source, emitted.append, lambda: DAY + 1, index_interval_ms=QUARTER, sla_period_ms=DAY, ready=ready
    )
    schedule.start()
    try:
        assert not ready.wait(0.3) and source.calls == []  # nothing computed before ready
        ready.set()
        eventually(lambda: len(emitted) >= 2, what="the first round once ready")
    finally:
        schedule.stop()
    assert emitted == [[f"grid_index {DAY}"], ["grid_sla 0"]]


def test_a_province_round_goes_out_in_chunks_as_it_is_computed() -> None:
    """~115,000 grids: never all their lines in memory at once, never one InfluxDB write."""
    taken: list[int] = []

    class Province(Recorder):
        def index_lines(self, at_ms: int, cancelled: Callable[[], bool] = never) -> Iterator[str]:
            for i in range(2 * CHUNK_LINES + 7):
                taken.append(i)
                yield f"grid_index,grid=G{i} {at_ms}"

    emitted: list[list[str]] = []

    def emit(lines: list[str]) -> None:
        assert len(taken) <= len(emitted) * CHUNK_LINES + len(lines)  # computed as taken
        emitted.append(lines)

    schedule = Schedule(Province(), emit, lambda: 0, index_interval_ms=QUARTER, sla_period_ms=DAY)
    assert schedule.due(QUARTER, emit) == []
    assert [len(chunk) for chunk in emitted] == [CHUNK_LINES, CHUNK_LINES, 7, 1]  # then grid_sla
    assert emitted[0][0] == f"grid_index,grid=G0 {QUARTER}" and emitted[3] == [f"grid_sla {-DAY}"]
