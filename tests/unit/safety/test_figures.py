"""The §12 figures as a pure function: every row of the table, nearest-rank percentiles, null
denominators, rounding. Expected values are worked out by hand here, not by the code under test."""

from __future__ import annotations

import pytest

from safety import FIGURES, Handling, figures, nearest_rank, percent

MIN = 60_000
HOUR = 3_600_000
AT = 100 * HOUR


def test_the_figures_are_the_contracts_in_its_order() -> None:
    assert list(figures([], AT).to_dict()) == list(FIGURES) == [
        "raised", "acked_on_time", "handled_8h", "closed", "ack_p50_s", "ack_p90_s",
        "resolve_p50_s", "resolve_p90_s", "handled_8h_pct", "closure_pct",
    ]  # fmt: skip


def test_no_events_counts_zero_and_every_ratio_is_null() -> None:
    assert figures([], AT).to_dict() == {
        "raised": 0, "acked_on_time": 0, "handled_8h": 0, "closed": 0, "ack_p50_s": None,
        "ack_p90_s": None, "resolve_p50_s": None, "resolve_p90_s": None, "handled_8h_pct": None,
        "closure_pct": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("severity", "deadline"), [("critical", 2 * MIN), ("major", 30 * MIN), ("minor", 8 * HOUR)]
)
def test_acked_on_time_is_before_the_severitys_deadline(severity: str, deadline: int) -> None:
    raised = AT - 10 * HOUR
    just_in_time = Handling(raised, severity, acked_at=raised + deadline - 1)
    at_the_deadline = Handling(raised, severity, acked_at=raised + deadline)
    never = Handling(raised, severity)
    result = figures([just_in_time, at_the_deadline, never], AT)
    assert (result.raised, result.acked_on_time) == (3, 1)


def test_handled_8h_counts_events_raised_8h_before_at_and_resolved_within_8h() -> None:
    old = AT - 8 * HOUR  # exactly 8 h before at: counted
    events = [
        Handling(old, "minor", acked_at=old + 1, resolved_at=old + 8 * HOUR),  # within (inclusive)
        Handling(old - 1, "minor", acked_at=old, resolved_at=old - 1 + 8 * HOUR + 1),  # 1 ms late
        Handling(old - HOUR, "major"),  # never resolved
        Handling(old + 1, "major", acked_at=old + 2, resolved_at=old + 3),  # too young to count
    ]
    result = figures(events, AT)
    assert (result.handled_8h, result.handled_8h_pct) == (1, 33.3)
    assert figures(events[3:], AT).handled_8h_pct is None  # no event old enough: null


def test_closed_and_closure_pct() -> None:
    events = [
        Handling(0, "minor", 1, 2, 3),
        Handling(0, "minor", 1, 2, None),
        Handling(0, "minor", 1, None, None),
        Handling(0, "minor"),
    ]
    result = figures(events, AT)
    assert (result.closed, result.closure_pct) == (1, 25.0)


def test_percentiles_are_nearest_rank_in_seconds_over_the_events_acked_or_resolved() -> None:
    events = [Handling(0, "minor", acked_at=s * 1000) for s in range(1, 11)]  # acks at 1..10 s
    events += [Handling(0, "minor")] * 5  # not acknowledged: not in the percentiles
    events += [Handling(0, "minor", acked_at=500, resolved_at=1234)]  # 0.5 s ack, 1.234 s resolve
    result = figures(events, AT)
    # acks 0.5, 1, 2, ..., 10 (11 values): p50 rank ceil(5.5) = 6 → 5 s; p90 rank ceil(9.9) = 10 → 9 s
    assert (result.ack_p50_s, result.ack_p90_s) == (5.0, 9.0)
    assert (result.resolve_p50_s, result.resolve_p90_s) == (1.234, 1.234)


@pytest.mark.parametrize(
    ("values", "p50", "p90"),
    [
        ([7], 7, 7),
        ([1, 2], 1, 2),
        ([1, 2, 3], 2, 3),
        (list(range(1, 11)), 5, 9),
        (list(range(1, 101)), 50, 90),
    ],
)
def test_nearest_rank(values: list[int], p50: int, p90: int) -> None:
    assert (nearest_rank(values, 50), nearest_rank(values, 90)) == (p50, p90)
    assert nearest_rank([], 50) is None
    assert nearest_rank(values, 100) == values[-1]


@pytest.mark.parametrize(
    ("part", "whole", "shown"),
    [
        (1, 3, 33.3),
        (2, 3, 66.7),
        (1, 8, 12.5),
        (1, 16, 6.3),  # 6.25: half up (not to even)
        (1, 32, 3.1),  # 3.125
        (1, 6, 16.7),
        (3, 3, 100.0),
        (0, 7, 0.0),
        (1, 2000, 0.1),  # 0.05
        (1, 2001, 0.0),
    ],
)
def test_percentages_round_half_up_to_a_tenth(part: int, whole: int, shown: float) -> None:
    assert percent(part, whole) == shown
    assert percent(part, 0) is None
