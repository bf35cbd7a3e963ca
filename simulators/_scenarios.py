"""Planning a scenario: the table of step planners, and :func:`plan_scenario`.

A scenario (``_scenario_schema``: YAML steps, validated) is *planned* against a fleet and a run:
each step goes to the planner of its type (:data:`STEP_PLANNERS`: ``_device_steps``,
``_patrol_steps``, ``_hostile``), which picks targets, installs effects (``_effects``), schedules
timed messages and records the ground truth (``_truth``); the finishers then judge what needs
every step (FIRE_CONFIRMED across alarms, the patrol clock). See simulators/README.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar

from devices import ScenarioError
from rules import RulesConfig
from simulators._device_steps import (
    confirm_fires,
    plan_alarm,
    plan_battery,
    plan_fault,
    plan_fire,
    plan_leakage,
    plan_overload,
    plan_pressure,
    plan_silence,
    plan_tamper,
)
from simulators._hostile import plan_hostile
from simulators._patrol_steps import (
    check_patrol_clocks,
    plan_patrol_fast,
    plan_patrol_hazard,
    plan_patrol_skip,
)
from simulators._physics import Fleet
from simulators._planner import Planner, RunWindow
from simulators._scenario_schema import (
    DEFAULT_RULES,
    Alarm,
    Battery,
    Fault,
    Fire,
    Hostile,
    Leakage,
    Overload,
    PatrolFast,
    PatrolHazard,
    PatrolSkip,
    Pressure,
    Scenario,
    Silence,
    StepBase,
    Tamper,
)
from simulators._truth import Plan

S = TypeVar("S", bound=StepBase)
StepPlanner = Callable[[Planner, Any, int], None]
"""Plans one step: (planner, the step, its start in simulated epoch ms)."""


def _entry(
    step_type: type[S], planner: Callable[[Planner, S, int], None]
) -> tuple[type[StepBase], StepPlanner]:
    """One row of the table (typed: the planner takes exactly that step type)."""
    return step_type, planner


STEP_PLANNERS: Final[Mapping[type[StepBase], StepPlanner]] = MappingProxyType(
    dict(
        [
            _entry(Fire, plan_fire),
            _entry(Alarm, plan_alarm),
            _entry(Overload, plan_overload),
            _entry(Leakage, plan_leakage),
            _entry(Pressure, plan_pressure),
            _entry(Silence, plan_silence),
            _entry(Tamper, plan_tamper),
            _entry(Battery, plan_battery),
            _entry(Fault, plan_fault),
            _entry(PatrolSkip, plan_patrol_skip),
            _entry(PatrolFast, plan_patrol_fast),
            _entry(PatrolHazard, plan_patrol_hazard),
            _entry(Hostile, plan_hostile),
        ]
    )
)
"""The planner of each step type (every type of ``Step`` has one; a unit test checks)."""

FINISHERS: Final[tuple[Callable[[Planner], None], ...]] = (confirm_fires, check_patrol_clocks)
"""Run once every step is planned, in this order."""


def plan_scenario(
    scenario: Scenario,
    fleet: Fleet,
    run: RunWindow,
    path: Path | None = None,
    rules: RulesConfig | None = None,
) -> Plan:
    """Pick targets, install effects on ``fleet`` and compute the ground truth of one run, for
    ``rules`` (default: CONTRACT §7's)."""
    planner = Planner(scenario, path, fleet, run, rules or DEFAULT_RULES)
    for number, step in enumerate(scenario.steps):
        planner.step = number
        start = planner.ms(step.at)
        if start >= run.end_ms:
            raise planner.fail("at", f"starts at {step.at:g} s but the run lasts {run.sim_s:g} simulated s")
        STEP_PLANNERS[type(step)](planner, step, start)
    for finish in FINISHERS:
        finish(planner)
    plan = planner.plan
    plan.timed.sort()
    if plan.needs_sim_s > run.sim_s + 1e-6:
        need_wall = plan.needs_sim_s / run.time_scale
        raise ScenarioError(
            f"{path or scenario.name}: the scenario needs {plan.needs_sim_s:g} simulated s but the run lasts "
            f"{run.sim_s:g} ({run.sim_s / run.time_scale:g} s × time scale {run.time_scale:g}); "
            f"use --duration {math.ceil(need_wall + 1)} or a larger --time-scale"
        )
    return plan
