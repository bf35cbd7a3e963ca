"""Scenario files: validation errors, planning and the ground truth they produce."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from devices import KIND_BY_NAME, MAX_PAYLOAD, Registry, is_identifier
from rules import RulesConfig
from simulators import (
    HOSTILE_CASES,
    Fleet,
    RunWindow,
    ScenarioError,
    builtin_scenarios,
    load_scenario,
    plan_scenario,
    write_world,
)
from simulators._hostile import HOSTILE_BUILDERS
from simulators._scenario_schema import STEP_ACTIONS, STEP_TYPES
from simulators._scenarios import STEP_PLANNERS

START = 1_764_583_200_000


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    out = tmp_path_factory.mktemp("world")
    write_world(out, scale=0.25, seed=3)
    return Registry.load(out)


def _plan(  # type: ignore[no-untyped-def]
    registry: Registry, path: Path, sim_s: float = 4 * 86_400.0, rules: RulesConfig | None = None
):
    scenario = load_scenario(path)
    fleet = Fleet(registry, seed=1, start_ms=START)
    window = RunWindow(START, sim_s, scenario.time_scale, {"electrical": 1.0, "water": 1.0, "smoke": 1.0})
    return fleet, plan_scenario(scenario, fleet, window, path, rules)


def _emitted(plan) -> list[tuple[str, bytes]]:  # type: ignore[no-untyped-def]
    return [(topic, body) for timed in plan.timed for topic, body, _ in timed.emit(START)]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_every_shipped_scenario_plans_and_writes_well_formed_truth(
    registry: Registry, tmp_path: Path
) -> None:
    shipped = builtin_scenarios()
    assert {"fire", "electrical", "water", "patrol", "silent", "smoke", "hostile", "demo"} <= set(shipped)
    for name, path in shipped.items():
        _, plan = _plan(registry, path, sim_s=31 * 86_400.0 if name == "month" else 4 * 86_400.0)
        truth = tmp_path / f"{name}.jsonl"
        plan.write_truth(truth)
        lines = [orjson.loads(line) for line in truth.read_bytes().splitlines()]
        events = [line for line in lines if "type" in line]
        assert events, name
        for event in events:
            assert event["grid_id"] in registry.grids
            if event["type"] == "FIRE_CONFIRMED":
                assert event["site_id"] in registry.sites and "device_id" not in event
            else:
                assert registry.device(event["device_id"]) is not None
                assert registry.device(event["device_id"]).grid_id == event["grid_id"]  # type: ignore[union-attr]
        keys = [(e["type"], e.get("device_id") or e["site_id"]) for e in events]
        assert len(keys) == len(set(keys))  # one event per (device, type)


def test_fire_truth_and_messages(registry: Registry) -> None:
    _, plan = _plan(registry, builtin_scenarios()["fire"])
    types = sorted({e.type for e in plan.events})
    assert types == ["CABLE_OVERHEAT", "FIRE_ALARM", "FIRE_CONFIRMED", "TEMP_RISE_FAST"]
    alarms = [e for e in plan.events if e.type == "FIRE_ALARM"]
    assert len(alarms) >= 2
    site = next(e.site_id for e in plan.events if e.type == "FIRE_CONFIRMED")
    assert {registry.device(e.device_id).site_id for e in alarms} == {site}  # type: ignore[union-attr]
    temps: dict[str, list[tuple[int, float]]] = {}
    alarmed = set()
    for topic, body in _emitted(plan):
        message = orjson.loads(body)
        device = topic.rsplit("/", 1)[1]
        if "/smoke/" in topic and message["alarm"]:
            alarmed.add(device)
        if "/electrical/" in topic:
            temps.setdefault(device, []).append((message["ts"], max(message["temp_c"])))
    assert alarmed == {e.device_id for e in alarms}
    for series in temps.values():
        ts = np.array([t for t, _ in series], dtype=float) / 60_000
        values = np.array([v for _, v in series])
        rising = slice(0, 12)  # the first minute of the ramp
        assert np.polyfit(ts[rising], values[rising], 1)[0] == pytest.approx(10.0, rel=0.01)
        assert values.max() == pytest.approx(95.0)


def test_electrical_and_water_truth(registry: Registry) -> None:
    _, plan = _plan(registry, builtin_scenarios()["electrical"])
    assert sorted(e.type for e in plan.events) == [
        "CABLE_OVERHEAT",
        "CABLE_OVERHEAT",
        "RESIDUAL_CURRENT_HIGH",
    ]
    leak = next(e.device_id for e in plan.events if e.type == "RESIDUAL_CURRENT_HIGH")
    residual = [orjson.loads(b)["residual_ma"] for t, b in _emitted(plan) if t.endswith("/" + str(leak))]
    assert max(residual) == 450.0 and sum(r >= 300 for r in residual) >= 5
    _, plan = _plan(registry, builtin_scenarios()["water"])
    by_step = {(e.step, e.type) for e in plan.events}
    assert by_step == {(0, "PRESSURE_LOSS"), (0, "LOW_PRESSURE"), (1, "LOW_PRESSURE"), (2, "HIGH_PRESSURE")}


def test_patrol_truth_needs_two_days(registry: Registry) -> None:
    path = builtin_scenarios()["patrol"]
    fleet, plan = _plan(registry, path)
    assert sorted(e.type for e in plan.events) == ["PATROL_HAZARD", "PATROL_MISSED", "PATROL_TOO_FAST"]
    assert 26.4 * 3600 < plan.needs_sim_s < 3 * 86_400
    with pytest.raises(ScenarioError, match=r"needs .* simulated s"):
        _plan(registry, path, sim_s=86_400.0)
    scans = [orjson.loads(b) for t, b in _emitted(plan)]
    hazard = next(s for s in scans if s["result"] == "hazard")
    assert hazard["hazards"] == ["blocked fire exit", "extinguisher expired"]
    # the too-fast pair: two scans of one worker, > 10 m/s apart
    fast = [s for s in scans if s["result"] == "ok"]
    assert len(fast) == 2 and fast[0]["worker_id"] == fast[1]["worker_id"]
    missed = next(e.device_id for e in plan.events if e.type == "PATROL_MISSED")
    kind_index = fleet.locate(missed)
    assert kind_index is not None
    tag = kind_index[1]
    normal = fleet.patrol.scans(START, START + 3600_000 + 2 * 86_400_000)  # until the skip ends
    stamped = [fleet.patrol.scan_message(s) for s in normal if s.tag == tag]
    kept = [m for m in stamped if m is not None]
    assert len(kept) <= 1  # at most the scan before the skip goes out


def test_hostile_messages_are_rejected_for_the_stated_reason(registry: Registry) -> None:
    _, plan = _plan(registry, builtin_scenarios()["hostile"])
    assert {r.case for r in plan.rejects} | {s.case for s in plan.stored} == set(HOSTILE_CASES)
    sent: dict[str, list[bytes]] = {}
    for timed in plan.timed:
        for topic, body, _ in timed.emit(START):
            sent.setdefault(topic, []).append(body)
    for reject in plan.rejects:
        assert reject.topic in sent
        parts = reject.topic.split("/")
        if reject.reason == "bad_topic":
            assert len(parts) != 4 or parts[2] not in KIND_BY_NAME or not is_identifier(parts[3])
        elif reject.reason == "too_large":
            assert any(len(b) > MAX_PAYLOAD for b in sent[reject.topic])
        elif reject.reason == "unknown_device":
            assert parts[3] not in registry.slot_of
        elif reject.reason in ("schema", "invalid_json"):
            adapter = KIND_BY_NAME[parts[2]].adapter
            failing = []
            for body in sent[reject.topic]:
                try:
                    adapter.validate_json(body)
                except ValidationError:
                    failing.append(body)
                    continue
                try:
                    orjson.loads(body)
                except orjson.JSONDecodeError:
                    failing.append(body)
            assert failing, reject
    for stored in plan.stored:  # valid, nasty strings: accepted
        adapter = KIND_BY_NAME[stored.kind].adapter
        valid = []
        for body in sent[stored.topic]:
            try:
                valid.append(adapter.validate_json(body))
            except ValidationError:
                continue
        if stored.value is not None:
            values = [getattr(p, stored.field) for p in valid]
            assert stored.value in [",".join(v) if isinstance(v, list) else v for v in values], stored
    assert {e.type for e in plan.events} == {"DEVICE_FAULT", "PATROL_HAZARD"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nsteps: []\n", "steps: List should have at least 1 item"),
        ("name: x\nsteps:\n  - action: explode\n", "steps[0]: Input tag 'explode' found"),
        ("name: x\nsteps:\n  - action: leakage\n    hold: 5q\n", "steps[0].hold: '5q' is not a duration"),
        ("name: x\nsteps:\n  - action: pressure\n    to: 0.1\n", None),
        (
            "name: x\nsteps:\n  - action: overload\n    rise_c_per_min: 5\n",
            "steps[0]: rise_c_per_min 5.0 is within 20 %",
        ),
        ("name: x\nsteps:\n  - action: fire\n    spread_every: 3m\n", "steps[0]: spread_every above 90 s"),
        (
            "name: x\nsteps:\n  - action: tamper\n    target: {count: 2, devices: [A]}\n",
            "steps[0].target: give either",
        ),
        ("name: x\nsteps:\n  - action: battery\n    to: 15\n", "steps[0]: to 15.0 is too close"),
        (
            "name: x\nsteps:\n  - action: tamper\n    colour: red\n",
            "steps[0].colour: Extra inputs are not permitted",
        ),
        ("name: bad name\nsteps:\n  - action: tamper\n", "name: String should match pattern"),
        ("name: x\nsteps:\n  - action: hostile\n    cases: [sql]\n", "steps[0].cases[0]: Input should be"),
        ("name: x\nsteps: [\n", "not valid YAML (line 3"),
        ("- just\n- a list\n", "a scenario is a mapping"),
    ],
)
def test_validation_errors_name_file_and_key(
    tmp_path: Path, registry: Registry, text: str, expected: str | None
) -> None:
    path = _write(tmp_path, text)
    if expected is None:  # valid YAML, refused at planning: the threshold is too close
        with pytest.raises(ScenarioError, match=r"s\.yaml: steps\[0\]\.to: 0.1 MPa is too close"):
            _plan(registry, path)
        return
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message, message


def test_planning_errors_name_the_step(tmp_path: Path, registry: Registry) -> None:
    cases = [
        (
            "name: x\nsteps:\n  - action: tamper\n  - action: leakage\n    target: {devices: [NOPE]}\n",
            "steps[1].target.devices: device NOPE is not in the registry",
        ),
        (
            "name: x\nsteps:\n  - action: leakage\n    target: {kind: water}\n",
            "steps[0].target.kind: this step acts on electrical devices",
        ),
        ("name: x\nsteps:\n  - action: tamper\n    at: 10d\n", "steps[0].at: starts at 864000 s"),
        (
            "name: x\nsteps:\n  - action: pressure\n    to: 0.08\n    hold: 65s\n    ramp: 0\n",
            "steps[0].hold: the time beyond 0.1 MPa leaves LOW_PRESSURE ambiguous",
        ),
        (
            "name: x\nsteps:\n  - action: alarm\n    target: {devices: [%s]}\n"
            "  - action: alarm\n    at: 100s\n"
            "    target: {devices: [%s]}\n",
            "leave FIRE_CONFIRMED ambiguous",
        ),
    ]
    smoke = [d for d in registry.devices() if d.kind == "smoke"]
    by_site: dict[str, list[str]] = {}
    for d in smoke:
        by_site.setdefault(d.site_id, []).append(d.device_id)
    pair = next(v for v in by_site.values() if len(v) >= 2)
    for template, expected in cases:
        text = template % (pair[0], pair[1]) if "%s" in template else template
        with pytest.raises(ScenarioError) as info:
            _plan(registry, _write(tmp_path, text), sim_s=86_400.0)
        assert expected in str(info.value), str(info.value)


def test_two_alarms_in_one_building_confirm_a_fire(tmp_path: Path, registry: Registry) -> None:
    by_site: dict[str, list[str]] = {}
    for d in registry.devices():
        if d.kind == "smoke":
            by_site.setdefault(d.site_id, []).append(d.device_id)
    a, b = next(v for v in by_site.values() if len(v) >= 2)[:2]
    text = (
        f"name: x\nsteps:\n  - action: alarm\n    target: {{devices: [{a}]}}\n"
        f"  - action: alarm\n    at: 30s\n"
        f"    target: {{devices: [{b}]}}\n"
    )
    _, plan = _plan(registry, _write(tmp_path, text), sim_s=3600.0)
    assert sorted(e.type for e in plan.events) == ["FIRE_ALARM", "FIRE_ALARM", "FIRE_CONFIRMED"]


def test_silence_needs_the_service_clock(tmp_path: Path, registry: Registry) -> None:
    path = builtin_scenarios()["silent"]
    with pytest.raises(ScenarioError, match="the run must last at least 200 s"):
        _plan(registry, path, sim_s=60.0)
    _, plan = _plan(registry, path, sim_s=300.0)
    assert [e.type for e in plan.events] == ["DEVICE_OFFLINE"] * 3
    assert plan.needs_wall_s == pytest.approx(200.0)


def test_every_step_type_and_hostile_case_has_a_planner() -> None:
    assert set(STEP_PLANNERS) == set(STEP_TYPES)
    assert set(STEP_ACTIONS.values()) == set(STEP_TYPES)
    assert set(HOSTILE_BUILDERS) == set(HOSTILE_CASES)


def test_the_truth_follows_the_rules_it_is_planned_for(registry: Registry) -> None:
    electrical = builtin_scenarios()["electrical"]
    _, default = _plan(registry, electrical)
    _, same = _plan(registry, electrical, rules=RulesConfig())
    assert same.truth_lines() == default.truth_lines()
    # a higher cable limit: the 82 °C overload no longer overheats
    hot = RulesConfig.from_mapping({"CABLE_OVERHEAT": {"limit": 90.0}})
    _, plan = _plan(registry, electrical, rules=hot)
    assert [e.type for e in plan.events] == ["RESIDUAL_CURRENT_HIGH"]
    # a disabled rule is never expected
    off = RulesConfig.from_mapping({"RESIDUAL_CURRENT_HIGH": {"enabled": False}})
    _, plan = _plan(registry, electrical, rules=off)
    assert "RESIDUAL_CURRENT_HIGH" not in {e.type for e in plan.events}
    # a longer offline deadline: the silent scenario needs a longer run
    _, plan = _plan(registry, builtin_scenarios()["silent"], sim_s=3600.0)
    slow = RulesConfig.from_mapping({"DEVICE_OFFLINE": {"grace_s": 120.0}})
    _, slower = _plan(registry, builtin_scenarios()["silent"], sim_s=3600.0, rules=slow)
    assert slower.needs_wall_s == pytest.approx(plan.needs_wall_s + 60.0)


def test_edges_are_checked_against_the_rules_planned_for(registry: Registry) -> None:
    fire = builtin_scenarios()["fire"]  # cables rise at 10 °C/min
    rules = RulesConfig.from_mapping({"TEMP_RISE_FAST": {"rate_c_per_min": 9.0}})
    with pytest.raises(ScenarioError, match=r"steps\[0\]\.cable: rise_c_per_min 10.0 is within 20 %"):
        _plan(registry, fire, rules=rules)
    rules = RulesConfig.from_mapping({"LOW_BATTERY": {"limit": 8.5, "clear": 20.0}})
    with pytest.raises(ScenarioError, match=r"steps\[\d\]\.to: to 8.0 is too close to the LOW_BATTERY"):
        _plan(registry, builtin_scenarios()["smoke"], rules=rules)
    rules = RulesConfig.from_mapping({"FIRE_CONFIRMED": {"min_detectors": 3}})
    with pytest.raises(ScenarioError, match="confirm a fire with 3 detectors; scenarios model 2 only"):
        _plan(registry, fire, rules=rules)
