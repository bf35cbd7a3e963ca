"""The parts behind the grid pages: durations in human units, score colours, reading ingest's
JSON leniently, who may see a grid, and the short-lived cache shared by concurrent requests."""

from __future__ import annotations

import asyncio

import pytest

from access import Role, Visibility
from console._api import ApiError
from console._format import duration, percent, score
from console._grids import band, may_see_grid, parse_grid, rank_key
from console._recent import Recent
from tests.unit.console.helpers import Clock


def test_durations_scores_and_percentages_read_well() -> None:
    shown = [duration(s) for s in (0, 0.4, 59.6, 60, 150, 599, 600, 3599, 3600, 32_400, 86_400 * 3 + 7200)]
    assert shown == ["0 s", "0 s", "1 min", "1 min", "2 min 30 s", "9 min 59 s", "10 min", "59 min",
                     "1 h 0 min", "9 h 0 min", "3 d 2 h"]  # fmt: skip
    assert [duration(v) for v in (None, -1, True, "5")] == ["—"] * 4
    assert [score(v) for v in (100.0, 62.8, 0, None, True)] == ["100", "62.8", "0", "—", "—"]
    assert [percent(v) for v in (33.3, 50.0, None)] == ["33.3 %", "50 %", "—"]


def test_bands_match_the_dashboard() -> None:
    assert [band(v) for v in (0, 59.9, 60, 79.9, 80, 100, None, False)] == [
        "low", "low", "mid", "mid", "high", "high", "none", "none",
    ]  # fmt: skip


def test_grids_are_read_leniently_and_ranked_least_safe_first() -> None:
    odd = parse_grid(
        "G1",
        {
            "district": "D01",
            "index": "high",  # not a number: none
            "groups": {
                "weather": {"score": 50, "weight": 0.1, "indicators": {"wind_speed": {"score": 50}}},
                "hazards": {"score": 80.0, "indicators": {"critical": {"basis": {"odd_count": 2}}}},
            },
        },
    )
    assert odd.index is None
    assert [g.name for g in odd.groups] == ["hazards", "weather"]  # §12's order, then the rest
    assert odd.groups[1].title == "weather" and odd.groups[1].indicators[0].title == "wind speed"
    critical = odd.groups[0].indicators[0]
    assert (critical.title, critical.score, critical.weight, critical.basis) == (
        "Critical hazards", None, None, (("odd count", 2),),
    )  # fmt: skip
    assert odd.scores() == [("Open hazards", 80.0), ("Handling", None), ("Patrol", None), ("Devices", None)]
    with pytest.raises(ApiError):
        parse_grid("G2", ["not", "an", "object"])
    grids = [parse_grid(g, {"index": i}) for g, i in (("A", 90.0), ("B", None), ("C", 10.0), ("D", 10.0))]
    assert [g.grid_id for g in sorted(grids, key=rank_key)] == ["C", "D", "A", "B"]


def test_who_may_see_a_grid() -> None:
    assert may_see_grid(Visibility("SUP1", Role.SUPERVISOR), "D01-G03")
    worker = Visibility("W0", Role.WORKER, grids=frozenset({"D01-G00"}))
    assert may_see_grid(worker, "D01-G00") and not may_see_grid(worker, "D01-G01")
    assert not may_see_grid(Visibility("D01-ST1", Role.STATION, station="D01-ST1"), "D01-G00")
    assert not may_see_grid(Visibility("S0000", Role.DEVICE, grids=frozenset()), "D01-G00")


def test_one_fetch_for_concurrent_requests_kept_for_its_time() -> None:
    clock = Clock()
    recent: Recent[str, int] = Recent(30.0, clock=clock, max_keys=2)
    release = asyncio.Event()
    calls: list[str] = []

    async def fetch_a() -> int:
        calls.append("a")
        await release.wait()
        return len(calls)

    async def scenario() -> None:
        waiting = [asyncio.ensure_future(recent.get("a", fetch_a)) for _ in range(5)]
        release.set()  # each asks before the fetch, a task scheduled after them, starts
        assert await asyncio.gather(*waiting) == [1] * 5
        assert await recent.get("a", fetch_a) == 1  # kept
        clock.now += 30
        assert await recent.get("a", fetch_a) == 2  # expired: asked again

        async def failing() -> int:
            calls.append("x")
            raise ApiError("down")

        for _ in range(2):  # a failure is not kept
            with pytest.raises(ApiError):
                await recent.get("x", failing)
        assert calls == ["a", "a", "x", "x"]

        async def constant() -> int:
            return 7

        for key in ("b", "c", "d"):
            await recent.get(key, constant)
        assert len(recent) == 2  # the oldest keys go first

    asyncio.run(scenario())
