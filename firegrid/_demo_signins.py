"""Whom the demo invites to its console: a worker of the grid where the scenario's fire breaks out
(so their inbox fills while they watch) and a supervisor of that grid (who may close).

The scenario is planned on a scratch fleet with the run's seed, exactly as the simulator plans it,
so the grid is the one the run will raise events in. Their two passwords are renewed at each demo
start (the credentials keep only hashes; the demo can show only passwords it has just made).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

from devices import Registry
from simulators import Fleet, RunWindow, load_scenario, plan_scenario, resolve_scenario

PLAN_HORIZON_S = 7 * 86_400.0
"""Simulated seconds the preview plans for: long enough for any shipped scenario's steps."""
FIRE_TYPES = ("FIRE_ALARM", "FIRE_CONFIRMED")


@dataclass(frozen=True, slots=True)
class DemoUsers:
    grid_id: str
    """The grid where the scenario raises most (fire first)."""
    worker: str
    supervisor: str
    others: tuple[str, ...]
    """The grid's other workers, whom the simulator may play."""


def busiest_grid(registry: Registry, scenario: str, seed: int) -> str | None:
    """The grid of the scenario's first fire, else the grid with the most expected events; None
    when the scenario raises none in a grid with workers."""
    path = resolve_scenario(scenario)
    parsed = load_scenario(path)
    start_ms = int(time.time() * 1000)
    fleet = Fleet(registry, seed=seed, start_ms=start_ms)
    window = RunWindow(start_ms, PLAN_HORIZON_S, parsed.time_scale or 1.0)
    plan = plan_scenario(parsed, fleet, window, path, None)
    staffed = [e for e in plan.events if e.grid_id in registry.grids and registry.grids[e.grid_id].workers]
    for event in staffed:
        if event.type in FIRE_TYPES:
            return event.grid_id
    counts = collections.Counter(e.grid_id for e in staffed)
    return counts.most_common(1)[0][0] if counts else None


def demo_users(registry: Registry, scenario: str, seed: int) -> DemoUsers | None:
    """A plain worker and a supervisor of :func:`busiest_grid` (a supervisor of its district when
    the grid lists none); None when there is no such grid or no such pair."""
    grid_id = busiest_grid(registry, scenario, seed)
    if grid_id is None:
        return None
    grid = registry.grids[grid_id]
    listed = [registry.workers[w] for w in grid.workers if w in registry.workers]
    workers = [w.worker_id for w in listed if not w.is_supervisor]
    supervisors = [w.worker_id for w in listed if w.is_supervisor]
    if not supervisors:
        in_district = {w for g in registry.grids.values() if g.district == grid.district for w in g.workers}
        supervisors = sorted(
            w.worker_id for w in registry.workers.values() if w.is_supervisor and w.worker_id in in_district
        )
    if not workers or not supervisors:
        return None
    return DemoUsers(grid_id, workers[0], supervisors[0], tuple(workers[1:]))
