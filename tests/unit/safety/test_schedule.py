"""grid_index at every slot, grid_sla once per period for the period just ended, each computed
for a fixed time (so recomputing gives the same point)."""

from __future__ import annotations

from safety import Schedule


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def index_lines(self, at_ms: int) -> list[str]:
        self.calls.append(("index", at_ms, at_ms))
        return [f"grid_index {at_ms}"]

    def sla_lines(self, since_ms: int, until_ms: int) -> list[str]:
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
        def index_lines(self, at_ms: int) -> list[str]:
            raise RuntimeError("database is locked")

    schedule = Schedule(
        Failing(), lambda lines: None, lambda: 0, index_interval_ms=QUARTER, sla_period_ms=DAY
    )
    assert schedule.due(DAY + 1) == ["grid_sla 0"]
    assert schedule.due(DAY + 2) == []
