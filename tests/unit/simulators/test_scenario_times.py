"""Every shipped scenario plans at any time of day, and its patrol ground truth is what the
patrol rules (CONTRACT §7) would make of the messages the run sends.

The planner picks workers and checkpoints around the rounds of the day (a skipped checkpoint
must stay silent until the patrol clock passes its deadline; a step's own scans must not look
like a run to or from the worker's other scans), so what it picks depends on the hour. These
tests plan each scenario every 15 minutes of a day, for several worlds and seeds, and replay the
patrol messages through an independent model of the patrol rules.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from devices import Registry, haversine_m
from rules import RulesConfig
from simulators import (
    HOSTILE_CASES,
    Fleet,
    Plan,
    RunWindow,
    Scenario,
    ScenarioError,
    builtin_scenarios,
    load_scenario,
    plan_scenario,
    write_world,
)
from simulators._physics import PatrolBank
from simulators._runner import _size_run

LOCAL_MIDNIGHT = 1_764_518_400_000
"""2025-12-01 00:00 China Standard Time (the simulator's daily cycles follow it)."""
QUARTER_MS = 15 * 60_000
TIMES = [LOCAL_MIDNIGHT + q * QUARTER_MS for q in range(96)]
HOUR_MS = 3_600_000
WINDOW_S = 4 * 86_400.0
INTERVALS = {"electrical": 1.0, "water": 1.0, "smoke": 1.0}

# CONTRACT §7 defaults
RULES = RulesConfig()
TOO_FAST_M_S = RULES.patrol_too_fast.max_speed_m_s
PATROL_INTERVAL_H = RULES.patrol_missed.interval_h
PATROL_FACTOR = RULES.patrol_missed.factor
PATROL_TYPES = {"PATROL_HAZARD", "PATROL_MISSED", "PATROL_TOO_FAST"}

WORLDS = {"e2e": (0.02, 7), "unit": (0.25, 3), "demo": (0.1, 1)}
"""The end-to-end tests' world, the unit tests' and the demo's scale."""


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Registry]:
    out: dict[str, Registry] = {}
    for name, (scale, seed) in WORLDS.items():
        folder = tmp_path_factory.mktemp(name)
        write_world(folder, scale=scale, seed=seed)
        out[name] = Registry.load(folder)
    return out


def _plan(
    registry: Registry, scenario: Scenario, path: Path, start_ms: int, seed: int = 1
) -> tuple[Fleet, Plan]:
    fleet = Fleet(registry, seed=seed, start_ms=start_ms)
    span = 31 * 86_400.0 if scenario.name == "month" else WINDOW_S  # the month plays 30 days
    window = RunWindow(start_ms, span, scenario.time_scale, dict(INTERVALS))
    return fleet, plan_scenario(scenario, fleet, window, path)


# -- an independent model of the patrol rules ------------------------------------------------------


@dataclass
class PatrolModel:
    """CONTRACT §7's patrol rules on data time, one message at a time (the smallest batches).

    PATROL_TOO_FAST: a worker's scan against their latest scan (by ts) of another checkpoint.
    PATROL_MISSED: a checkpoint whose last scan is older than the latest scan of any checkpoint
    by its interval × 1.1. Also records how close the run comes to the thresholds."""

    registry: Registry
    raised: dict[tuple[str, str], int] = field(default_factory=dict)
    """(type, device) → ts at which it was first raised."""
    latest: dict[str, tuple[int, str]] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    missed: set[str] = field(default_factory=set)
    clock: int = 0
    due: list[tuple[int, str]] = field(default_factory=list)
    speeds: list[tuple[float, str, str]] = field(default_factory=list)
    """(speed, from device, to device) of every pair compared."""
    sent: dict[str, list[int]] = field(default_factory=dict)
    deadlines: dict[str, int] = field(default_factory=dict)
    """device → ts of each of its scans, in order."""

    def deadline_ms(self, device: str) -> int:
        cached = self.deadlines.get(device)
        if cached is None:
            override = self.registry.override("patrol_interval_h", self.registry.slot_of[device])
            interval = PATROL_INTERVAL_H if override is None else override
            cached = self.deadlines[device] = round(interval * PATROL_FACTOR * HOUR_MS)
        return cached

    def raise_(self, type_: str, device: str, ts: int) -> None:
        self.raised.setdefault((type_, device), ts)

    def scan(self, device: str, message: dict[str, object]) -> None:
        ts = message["ts"]
        worker = message["worker_id"]
        assert isinstance(ts, int) and isinstance(worker, str)
        if worker not in self.registry.workers or device not in self.registry.slot_of:
            return  # rejected by ingest
        if message.get("result") == "hazard":
            self.raise_("PATROL_HAZARD", device, ts)
        previous = self.latest.get(worker)
        if previous is None or previous[0] <= ts:
            self.latest[worker] = (ts, device)
        if previous is not None and previous[1] != device:
            a = self.registry.slot_of[previous[1]]
            b = self.registry.slot_of[device]
            metres = haversine_m(
                float(self.registry.lat[a]),
                float(self.registry.lon[a]),
                float(self.registry.lat[b]),
                float(self.registry.lon[b]),
            )
            speed = metres / (max(abs(ts - previous[0]), 1) / 1000)
            self.speeds.append((speed, previous[1], device))
            if speed > TOO_FAST_M_S:
                self.raise_("PATROL_TOO_FAST", device, ts)
        self.sent.setdefault(device, []).append(ts)
        self.seen[device] = max(self.seen.get(device, ts), ts)
        self.clock = max(self.clock, ts)
        if device in self.missed and self.seen[device] + self.deadline_ms(device) > self.clock:
            self.missed.discard(device)
        heapq.heappush(self.due, (self.seen[device] + self.deadline_ms(device), device))
        while self.due and self.due[0][0] <= self.clock:
            when, late = heapq.heappop(self.due)
            if when == self.seen[late] + self.deadline_ms(late) and late not in self.missed:
                self.missed.add(late)
                self.raise_("PATROL_MISSED", late, self.clock)


def replay_patrol(fleet: Fleet, plan: Plan, start_ms: int, end_ms: int) -> PatrolModel:
    """Every patrol message the run sends until ``end_ms`` (normal scans with the scenario's
    effects, and the scenario's own), in the runner's order, through :class:`PatrolModel`."""
    patrol = fleet.patrol
    model = PatrolModel(fleet.registry)
    queue: list[tuple[int, int, int]] = [(t.t_ms, 0, n) for n, t in enumerate(plan.timed) if t.t_ms < end_ms]
    normal = patrol.scans(start_ms, end_ms)
    queue.extend((s.t_ms, 1, n) for n, s in enumerate(normal))
    queue.sort()
    for _, source, n in queue:
        if source == 0:
            for topic, body, kind in plan.timed[n].emit(start_ms):
                if kind == "patrol":
                    model.scan(topic.rsplit("/", 1)[1], orjson.loads(body))
        else:
            made = patrol.scan_message(normal[n])
            if made is not None:
                model.scan(patrol.device_ids[made[0]], made[1])
    return model


def check_patrol_truth(fleet: Fleet, plan: Plan, start_ms: int, what: str) -> PatrolModel:
    """The patrol events the run raises are exactly the ground truth's, all of them within the
    length the plan asks for, none of them on a knife's edge."""
    needs_end = start_ms + round(plan.needs_sim_s * 1000)
    model = replay_patrol(fleet, plan, start_ms, needs_end + 6 * HOUR_MS)
    truth = {(e.type, e.device_id) for e in plan.events if e.type in PATROL_TYPES}
    raised = set(model.raised)
    assert raised == truth, f"{what}: missing {truth - raised}, extra {raised - truth}"
    for key, ts in model.raised.items():
        assert ts <= needs_end, f"{what}: {key} raised at {ts}, after the run's end {needs_end}"
    fast = {d for t, d in truth if t == "PATROL_TOO_FAST"}
    for speed, _, device in model.speeds:
        if device in fast and speed > TOO_FAST_M_S:
            assert speed >= 1.5 * TOO_FAST_M_S, (what, speed)
        else:  # normal walks, and the scenario's scans against the worker's own
            assert speed <= TOO_FAST_M_S / 2, (what, speed, device)
    for (type_, device), raised_ts in model.raised.items():
        if type_ == "PATROL_MISSED":  # and still silent a while after (whatever the batches)
            after = [ts for ts in model.sent.get(device, []) if ts >= raised_ts]
            assert not after or after[0] - raised_ts >= HOUR_MS, (what, device, after[0] - raised_ts)
    return model


# -- the tests ---------------------------------------------------------------------------------


def _check_truth(registry: Registry, plan: Plan, what: str) -> Counter[str]:
    """Well-formed ground truth (each event in the grid of its device); the count of each type."""
    for event in plan.events:
        assert event.grid_id in registry.grids, what
        if event.type == "FIRE_CONFIRMED":
            assert event.site_id in registry.sites, what
        else:
            device = registry.device(event.device_id or "")
            assert device is not None and device.grid_id == event.grid_id, (what, event)
    keys = [e.key() for e in plan.events]
    assert len(keys) == len(set(keys)), what
    return Counter(e.type for e in plan.events)


PATROL_SCENARIOS = {
    "patrol": Counter({"PATROL_MISSED": 1, "PATROL_TOO_FAST": 1, "PATROL_HAZARD": 1}),
    "hostile": Counter({"DEVICE_FAULT": 1, "PATROL_HAZARD": 1}),
}
"""What the scenarios with patrol steps describe (see their files)."""


SEEDS = [
    ("e2e", 1, 1),
    ("e2e", 2, 3),
    ("e2e", 3, 2),
    ("e2e", 4, 5),
    ("demo", 1, 1),
    ("demo", 2, 3),
    ("unit", 1, 2),
]
"""(world, scenario seed, run seed): many in the small world, where few workers are free."""


def _hour(start_ms: int) -> str:
    minutes = (start_ms - LOCAL_MIDNIGHT) // 60_000
    return f"{minutes // 60:02d}:{minutes % 60:02d} local"


def _check_patrol_scenario(
    registry: Registry, name: str, scenario: Scenario, path: Path, start: int, seed: int
) -> None:
    what = f"{name} (seed {scenario.seed}) starting {_hour(start)}, run seed {seed}"
    fleet, plan = _plan(registry, scenario, path, start, seed)
    assert _check_truth(registry, plan, what) == PATROL_SCENARIOS[name], what
    check_patrol_truth(fleet, plan, start, what)
    patrol = fleet.patrol
    if name == "patrol":
        # a worker skips, another runs, a third reports the hazard
        workers = {patrol.worker_ids_of_tag[patrol.device_ids.index(e.device_id or "")] for e in plan.events}
        assert len(workers) == 3, what
        assert PATROL_INTERVAL_H * PATROL_FACTOR * 3600 < plan.needs_sim_s < WINDOW_S, what
    else:
        cases = {r.case for r in plan.rejects} | {s.case for s in plan.stored}
        assert cases == set(HOSTILE_CASES), what


@pytest.mark.parametrize(("world", "scenario_seed", "seed"), SEEDS)
@pytest.mark.parametrize("name", sorted(PATROL_SCENARIOS))
def test_patrol_scenarios_plan_every_15_minutes_and_their_truth_holds(
    worlds: dict[str, Registry], name: str, world: str, scenario_seed: int, seed: int
) -> None:
    path = builtin_scenarios()[name]
    scenario = load_scenario(path).model_copy(update={"seed": scenario_seed})
    for start in TIMES:
        _check_patrol_scenario(worlds[world], name, scenario, path, start, seed)


@pytest.mark.parametrize(("world", "every"), [("e2e", 1), ("unit", 4)])
def test_every_scenario_plans_all_day_with_the_same_truth(
    worlds: dict[str, Registry], world: str, every: int
) -> None:
    """Every 15 minutes in the small world, every hour in the larger one."""
    registry = worlds[world]
    for name, path in builtin_scenarios().items():
        scenario = load_scenario(path)
        counts: set[tuple[tuple[str, int], ...]] = set()
        for start in TIMES[::every]:
            _, plan = _plan(registry, scenario, path, start)
            counts.add(tuple(sorted(_check_truth(registry, plan, f"{name} at {_hour(start)}").items())))
        assert len(counts) == 1, (name, world, counts)


def test_patrol_plans_at_scale_1_seed_7(tmp_path: Path) -> None:
    """Where the first worker the patrol_fast step drew had every checkpoint within 100 m."""
    write_world(tmp_path, scale=1.0, seed=7)
    registry = Registry.load(tmp_path)
    path = builtin_scenarios()["patrol"]
    scenario = load_scenario(path)
    for start in TIMES[::8]:
        _check_patrol_scenario(registry, "patrol", scenario, path, start, 1)


def _write(tmp_path: Path, steps: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\ntime_scale: 3600\nsteps:\n{steps}")
    return path


def test_a_skip_whose_deadline_falls_after_the_days_rounds_waits_for_the_next_morning(
    worlds: dict[str, Registry], tmp_path: Path
) -> None:
    """PATROL_MISSED runs on the patrol clock, which only moves with scans: the run lasts until
    the first scan after the deadline, not merely past the deadline."""
    registry = worlds["e2e"]
    start = LOCAL_MIDNIGHT
    patrol = Fleet(registry, seed=1, start_ms=start).patrol
    day = patrol.scans(start, start + 86_400_000)
    latest = day[-1]  # the day's last scan: its deadline (+ 2.4 h) comes after every round
    worker = patrol.workers[latest.worker]
    path = _write(tmp_path, f"  - action: patrol_skip\n    at: 1h\n    worker: {worker}\n    duration: 3d\n")
    fleet, plan = _plan(registry, load_scenario(path), path, start)
    check_patrol_truth(fleet, plan, start, f"skip of {worker}")
    missed = [e for e in plan.events if e.type == "PATROL_MISSED"]
    assert len(missed) == 1
    tag = patrol.device_ids.index(missed[0].device_id or "")
    deadline = patrol.tag_scans(tag, start, start + 86_400_000)[0] + round(
        PATROL_INTERVAL_H * PATROL_FACTOR * HOUR_MS
    )
    next_morning = next(s.t_ms for s in patrol.scans(deadline, deadline + 86_400_000))
    assert next_morning - deadline > 6 * HOUR_MS, "the world no longer has the layout relied on"
    assert plan.needs_sim_s * 1000 >= next_morning - start


def _spread_m(patrol: PatrolBank, worker: int) -> float:
    route = patrol.routes[worker]
    return max(
        (
            haversine_m(patrol.lat[a], patrol.lon[a], patrol.lat[b], patrol.lon[b])
            for a in route
            for b in route
        ),
        default=0.0,
    )


def test_refusals_say_why(worlds: dict[str, Registry], tmp_path: Path) -> None:
    registry = worlds["e2e"]
    start = LOCAL_MIDNIGHT
    patrol = Fleet(registry, seed=1, start_ms=start).patrol
    lone = next(w for w, route in zip(patrol.workers, patrol.routes, strict=True) if route.size == 1)
    path = _write(tmp_path, f"  - action: patrol_fast\n    worker: {lone}\n")
    with pytest.raises(
        ScenarioError,
        match=rf"steps\[0\]\.worker: worker {lone} has no two unused checkpoints at least 100 m apart",
    ):
        _plan(registry, load_scenario(path), path, start)
    # a worker's too-fast pair at the very time of one of their own scans: refused
    scan = next(s for s in patrol.scans(start, start + 86_400_000) if _spread_m(patrol, s.worker) > 200)
    busy = patrol.workers[scan.worker]
    at = (scan.t_ms - start) / 1000
    path = _write(tmp_path, f"  - action: patrol_fast\n    at: {at}\n    worker: {busy}\n")
    with pytest.raises(
        ScenarioError, match=rf"worker {busy} is on a round at that time .*: pick another time"
    ):
        _plan(registry, load_scenario(path), path, start)
    path = _write(tmp_path, "  - action: patrol_skip\n    at: 1h\n    duration: 1d\n")
    with pytest.raises(
        ScenarioError, match=r"steps\[0\]\.duration: no worker's 1 checkpoints stay unscanned .*: skip longer"
    ):
        _plan(registry, load_scenario(path), path, start)


@pytest.mark.parametrize(("name", "time_scale"), [("patrol", None), ("patrol", 15_000.0), ("hostile", None)])
def test_the_runner_sizes_and_plans_a_run_ending_at_any_time_of_day(
    worlds: dict[str, Registry], name: str, time_scale: float | None
) -> None:
    """As ``firegrid simulate run`` does without ``--duration``: the run ends now and starts as
    long before as the scenario needs (which depends on what it picks at that start)."""
    registry = worlds["e2e"]
    path = builtin_scenarios()[name]
    scenario = load_scenario(path)
    scale = time_scale or scenario.time_scale
    for now_ms in TIMES:

        def window(duration: float, now_ms: int = now_ms) -> tuple[int, RunWindow]:
            start = now_ms - round((scale - 1) * duration * 1000)
            return start, RunWindow(start, duration * scale, scale, dict(INTERVALS))

        duration = _size_run(scenario, path, registry=registry, seed=1, time_scale=scale, window=window)
        start, run = window(duration)
        fleet = Fleet(registry, seed=1, start_ms=start)
        plan = plan_scenario(scenario, fleet, run, path)
        what = f"{name} ending {_hour(now_ms)}"
        assert plan.needs_sim_s <= run.sim_s, what
        check_patrol_truth(fleet, plan, start, what)
        if name == "patrol":
            assert run.sim_s < 3.5 * 86_400, what  # the end-to-end test starts it 4 days back
