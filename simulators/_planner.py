"""The planner's state and the helpers every step planner uses.

Planning a scenario against a registry and a run (start time, length, time scale) picks the
steps' targets (deterministically), installs effects on the fleet's devices, schedules extra
timed messages and computes the events and rejects the run must cause, from the rules it is
planned for (:class:`rules.RulesConfig`, by default CONTRACT §7's) with safety margins.
The step planners live in ``_device_steps``, ``_patrol_steps`` and ``_hostile``; the table that
dispatches to them, and :func:`plan_scenario`, in ``_scenarios``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from devices import ScenarioError, Topics
from rules import RulesConfig
from simulators._physics import Fleet
from simulators._scenario_schema import Scenario, Target
from simulators._truth import ExpectedEvent, Out, Plan, Timed


@dataclass(slots=True)
class RunWindow:
    """The run a scenario is planned for."""

    start_ms: int
    """Simulated time of the start."""
    sim_s: float
    """Length of the run in simulated seconds (duration × time scale)."""
    time_scale: float
    wall_interval_s: dict[str, float] = field(default_factory=dict)
    """Each kind's background reporting interval in wall seconds (offline margins)."""
    prefix: str = ""

    @property
    def end_ms(self) -> int:
        return self.start_ms + round(self.sim_s * 1000)


@dataclass(frozen=True, slots=True)
class SiteAlarm:
    """A scripted smoke alarm (for FIRE_CONFIRMED, judged once every step is planned)."""

    index: int
    """The detector's index in the smoke bank."""
    onset_ms: int
    end_ms: int
    step: int


@dataclass(frozen=True, slots=True)
class Skip:
    """A checkpoint a ``patrol_skip`` step leaves out."""

    step: int
    tag: int
    last: int
    """Its last scan the service sees before the skip (``ts``)."""
    deadline: int
    """When PATROL_MISSED is due on the patrol clock."""
    resume: int | None
    """Its first scan after the skip."""


class Planner:
    """One scenario being planned: what earlier steps took, and what the plan holds so far."""

    def __init__(
        self, scenario: Scenario, path: Path | None, fleet: Fleet, run: RunWindow, rules: RulesConfig
    ) -> None:
        self.scenario = scenario
        self.file = str(path) if path is not None else scenario.name
        self.fleet = fleet
        self.run = run
        self.rules = rules
        self.registry = fleet.registry
        self.topics = Topics(run.prefix)
        self.plan = Plan(scenario, path)
        self.used: set[str] = set()
        """Devices a step acts on (no other step picks them)."""
        self.used_workers: set[int] = set()
        self.injected: dict[int, list[tuple[int, int]]] = {}
        """worker → (t_ms, tag) of the scans steps gave them."""
        self.skips: list[Skip] = []
        self.used_sites: set[str] = set()
        self.alarms: dict[str, list[SiteAlarm]] = {}
        """site → every scripted alarm there."""
        self.order = 0
        self.cadence_ms = round(scenario.cadence * 1000)
        self.step = 0

    def fail(self, key: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.file}: steps[{self.step}].{key}: {problem}")

    def ms(self, seconds: float) -> int:
        return self.run.start_ms + round(seconds * 1000)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng([self.scenario.seed, self.step, 0x5CE7])

    def need(self, end_ms: float) -> None:
        self.plan.needs_sim_s = max(self.plan.needs_sim_s, (end_ms - self.run.start_ms) / 1000)

    def timed(self, t_ms: int, emit: Callable[[int], list[Out]]) -> None:
        self.order += 1
        self.plan.timed.append(Timed(t_ms, self.order, emit))

    def event(self, type_: str, kind: str, index: int, *, site_event: bool = False) -> None:
        """Expect ``type_`` for the device (or, for a site event, the device's site), unless the
        rules have it disabled."""
        if not self.rules.rule(type_).enabled:
            return
        registry = self.registry
        slot = int(self.fleet.banks[kind].slots[index])
        grid, district = registry.grid_of(slot), registry.district_of(slot)
        if site_event:
            expected = ExpectedEvent(
                type_, grid, district, kind, site_id=registry.site_of(slot), step=self.step
            )
        else:
            expected = ExpectedEvent(
                type_, grid, district, kind, device_id=registry.device_ids[slot], step=self.step
            )
        self.plan.events.append(expected)

    def limit(self, kind: str, index: int, name: str, default: float) -> float:
        """The registry's per-device override ``name`` (a devices.csv column), else ``default``."""
        slot = int(self.fleet.banks[kind].slots[index])
        value = self.registry.override(name, slot)
        return default if value is None or math.isnan(value) else value

    def topic(self, kind: str, index: int) -> str:
        bank = self.fleet.banks[kind]
        return self.topics.device(bank.districts[index], kind, bank.device_ids[index])

    def report(self, kind: str, index: int, t_ms: int) -> None:
        """The device sends a reading at ``t_ms`` (its effects applied)."""
        bank = self.fleet.banks[kind]
        topic = self.topic(kind, index)
        idx = np.array([index], dtype=np.int64)

        def emit(_wall_ms: int) -> list[Out]:
            return [(topic, orjson.dumps(m), kind) for _, m in bank.messages(idx, t_ms)]

        self.timed(t_ms, emit)

    def focus(self, kind: str, index: int, start_ms: int, end_ms: float) -> None:
        """The device reports every ``cadence`` while the step acts on it (and a little after)."""
        stop = min(end_ms + 2 * self.cadence_ms, self.run.end_ms)
        for t in range(start_ms, int(stop), self.cadence_ms):
            self.report(kind, index, t)

    def pick(self, target: Target, kind: str, key: str = "target", per_site: bool = False) -> list[int]:
        """Bank indices of the step's devices (explicit, or ``count`` picked among unused ones)."""
        if target.kind is not None and target.kind != kind:
            raise self.fail(f"{key}.kind", f"this step acts on {kind} devices, not {target.kind}")
        bank = self.fleet.banks[kind]
        if target.devices is not None:
            out = []
            for device_id in target.devices:
                found = self.fleet.locate(device_id)
                if found is None:
                    raise self.fail(f"{key}.devices", f"device {device_id} is not in the registry")
                if found[0] != kind:
                    raise self.fail(
                        f"{key}.devices", f"device {device_id} is a {found[0]} device, not {kind}"
                    )
                out.append(found[1])
            self.used.update(target.devices)
            return out
        count = target.count or 1
        candidates = [i for i in range(bank.size) if bank.device_ids[i] not in self.used]
        if target.grid is not None:
            if target.grid not in self.registry.grids:
                raise self.fail(f"{key}.grid", f"grid {target.grid} is not in the registry")
            candidates = [i for i in candidates if self.registry.grid_of(int(bank.slots[i])) == target.grid]
        if per_site:
            taken = set(self.used_sites) | set(self.alarms)
            by_site: dict[str, int] = {}
            for i in candidates:
                site = self.registry.site_of(int(bank.slots[i]))
                if site not in taken and site not in by_site:
                    by_site[site] = i
            candidates = list(by_site.values())
        if len(candidates) < count:
            raise self.fail(
                f"{key}.count", f"only {len(candidates)} unused {kind} devices to choose {count} from"
            )
        chosen = sorted(self.rng().choice(len(candidates), size=count, replace=False).tolist())
        out = [candidates[c] for c in chosen]
        self.used.update(bank.device_ids[i] for i in out)
        if per_site:
            self.used_sites.update(self.registry.site_of(int(bank.slots[i])) for i in out)
        return out
