"""Ticks with a limit (issue 17, a mass silence): at most ``limit`` offline and missed timers per
tick, the earliest due first; the others wait and fire at later ticks, each at the time of the
first tick at or after its due time, so that limited ticks give the hits unlimited ticks at the
same times give, readings of waiting devices, snapshots and restores in between included."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices import Reading, Registry
from rules import Hit, Key, RuleEngine
from tests.unit.rules.conftest import T0, World, kinds_of, registry_dir

PER_KIND = 6
DEVICES = [f"{k}{i:04d}" for k in "SEWP" for i in range(PER_KIND)]
OVERRIDES: dict[str, dict[str, float]] = {
    "S0001": {"heartbeat_s": 20},
    "S0002": {"heartbeat_s": 45},
    "E0003": {"heartbeat_s": 15},
    "W0000": {"heartbeat_s": 5},
    "W0004": {"heartbeat_s": 30},
    "P0001": {"patrol_interval_h": 0.01},  # 39.6 s
    "P0002": {"patrol_interval_h": 0.02},
    "P0005": {"patrol_interval_h": 0.03},
}
"""Deadlines spread over the first minutes, a few devices of every kind with a timer."""
ELECTRICAL_S = 2 * 60 + 60


@pytest.fixture(scope="module")
def spread(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return Registry.load(registry_dir(tmp_path_factory.mktemp("reg"), OVERRIDES, PER_KIND))


History = dict[Key, list[tuple[str, int, float | None, str]]]


def history(hits: Iterable[Hit]) -> History:
    """Each key's hits in order: state, ts, value, message."""
    out: History = defaultdict(list)
    for hit in hits:
        out[hit.key].append((hit.state, hit.ts, hit.value, hit.message))
    return dict(out)


def readings(world: World, devices: Iterable[str], now: int) -> list[Reading]:
    made: dict[str, Callable[[str, int], Reading]] = {
        "S": world.smoke,
        "E": world.electrical,
        "W": world.water,
        "P": world.patrol,
    }
    return [made[d[0]](d, now) for d in devices]


def test_a_limited_tick_fires_the_earliest_and_the_rest_at_its_time(world: World) -> None:
    world.one(world.electrical("E0000", T0 + 15_000), now=T0 + 15_000)  # due 15 s after the others
    due = T0 + ELECTRICAL_S * 1000
    engine = world.engine
    assert kinds_of(engine.tick(due + 10_000, limit=1)) == [("DEVICE_OFFLINE", "E0001", "raise")]
    assert engine.behind
    later = engine.tick(due + 20_000, limit=3)
    assert {(h.device_id, h.ts, h.value) for h in later} == {
        ("E0002", due + 10_000, ELECTRICAL_S + 10.0),  # the silence up to the first tick, not now
        ("E0000", due + 20_000, ELECTRICAL_S + 5.0),  # due after the first tick: the second's
    }
    assert not engine.behind


def test_a_reading_of_a_waiting_device_raises_then_clears(world: World) -> None:
    due = T0 + ELECTRICAL_S * 1000
    world.engine.tick(due, limit=0)
    assert world.engine.behind
    back = world.one(world.electrical("E0002", due + 500), now=due + 700)
    assert [(h.device_id, h.state, h.ts) for h in back] == [
        ("E0002", "raise", due),
        ("E0002", "clear", due + 700),
    ]
    assert "E0002" not in {h.device_id for h in world.engine.catch_up()}


def test_overdue_gives_the_raise_alone_and_process_then_only_the_clear(world: World) -> None:
    due = T0 + ELECTRICAL_S * 1000
    world.engine.tick(due, limit=1)
    batch = [world.electrical("E0001", due + 100)]
    raised = world.engine.overdue(batch)
    assert [(h.device_id, h.state, h.ts) for h in raised] == [("E0001", "raise", due)]
    assert kinds_of(world.feed(batch, now=due + 200)) == [("DEVICE_OFFLINE", "E0001", "clear")]


def test_a_waiting_missed_patrol_is_not_raised_again_on_data_time(world: World) -> None:
    deadline = int(24 * 1.1 * 3_600_000)
    world.one(world.patrol("P0000", T0 + 1000), now=T0 + 1000)
    fire = T0 + 1000 + deadline
    world.engine.tick(fire, limit=0)
    hits = world.one(world.patrol("P0001", fire + 1000), now=fire + 1000)  # moves the data clock
    assert "P0000" not in {h.device_id for h in hits}  # missed at the tick, only not yet told
    raised = [(h.ts, h.value) for h in world.engine.catch_up() if h.device_id == "P0000"]
    assert raised == [(fire, deadline / 3_600_000)]


def test_nothing_waits_while_suspended(world: World) -> None:
    due = T0 + ELECTRICAL_S * 1000
    world.engine.tick(due, limit=1)
    world.engine.suspend(due + 1)
    assert not world.engine.behind
    world.engine.resume(due + 60_000)
    assert world.engine.behind
    assert {h.ts for h in world.engine.tick(due + 60_001)} == {due}  # waiting: not moved by the deafness


tick_step = st.tuples(st.just("tick"), st.integers(0, 90_000), st.integers(0, 4))
read_step = st.tuples(st.just("read"), st.integers(0, 90_000), st.sets(st.sampled_from(DEVICES), max_size=20))
restore_step = st.tuples(st.just("restore"), st.just(0), st.just(0))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.one_of(tick_step, read_step, restore_step), min_size=1, max_size=30))
def test_limited_ticks_give_the_hits_of_unlimited_ones(
    spread: Registry, steps: list[tuple[str, int, object]]
) -> None:
    world = World(spread)
    full, limited = RuleEngine(spread, None, T0), RuleEngine(spread, None, T0)
    full_hits: list[Hit] = []
    limited_hits: list[Hit] = []
    now = T0
    for what, dt, arg in steps:
        now += dt
        if what == "tick":
            assert isinstance(arg, int)
            full_hits += full.tick(now)
            limited_hits += limited.tick(now, limit=arg)
        elif what == "read":
            assert isinstance(arg, set)
            batch = readings(world, sorted(arg), now)
            full_hits += full.process(batch, now)
            limited_hits += limited.process(batch, now)
        else:
            limited = RuleEngine.restore(spread, None, limited.snapshot(now), now)
    limited_hits += limited.catch_up()
    assert not limited.behind
    assert history(limited_hits) == history(full_hits)
