"""Step planners of the device steps: fire, alarm, overload, leakage, pressure, silence, tamper,
fault and battery (and FIRE_CONFIRMED, judged once every step is planned).

Each takes the planner, its step and the step's start (simulated epoch ms), installs effects on
the targets, schedules their reports and records the events the rules (``planner.rules``) will
raise, refusing parameters that leave one on a knife's edge.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from simulators._effects import CableHeat, Ramp, SetFields, SmokeAlarm, Suppress
from simulators._physics import NORMAL_PRESSURE, NORMAL_RESIDUAL_MA, NORMAL_TEMP_C, Message
from simulators._planner import Planner, SiteAlarm
from simulators._scenario_schema import (
    CONFIRM_MARGIN_S,
    RISE_MARGIN,
    Alarm,
    Battery,
    Fault,
    Fire,
    Leakage,
    Overload,
    Pressure,
    Silence,
    Tamper,
    Target,
    check_battery,
    check_rise,
    check_spread,
)
from simulators._truth import expect, ramp_beyond

TEMP_MARGIN_BELOW_C = 5.0
TEMP_MARGIN_ABOVE_C = 3.0
"""A cable's peak must lie this far below or above its limit."""
RISE_DONE_MARGIN_MS = 30_000
"""TEMP_RISE_FAST is raised by this long after its window has filled with the rise's readings."""
RESIDUAL_MARGIN = (0.9, 1.05)
"""A residual current outside this share of the limit (× limit) is clearly below or above it."""
PRESSURE_MARGIN_MPA = 0.015
"""A pressure must stay this far from every pressure threshold."""
OFFLINE_MARGIN_S = 15.0
"""A silence must end this far (wall time) from the offline deadline."""


def _check(planner: Planner, key: str, check: Callable[[], None]) -> None:
    """Re-run a schema check against the planner's rules (the file was checked against the defaults)."""
    try:
        check()
    except ValueError as exc:
        raise planner.fail(key, str(exc)) from exc


def alarm_on(p: Planner, index: int, onset: int, end: float, key: str = "duration") -> None:
    """Detector ``index`` alarms from ``onset`` to ``end``: FIRE_ALARM (FIRE_CONFIRMED comes later)."""
    rule = p.rules.fire_alarm
    if rule.for_s > 0 and end - onset < (rule.for_s + 3 * p.scenario.cadence) * 1000:
        raise p.fail(key, f"an alarm lasts under FIRE_ALARM's for_s of {rule.for_s:g} s + 3 reports")
    fleet = p.fleet
    fleet.add_effect("smoke", index, SmokeAlarm(onset, end))
    p.report("smoke", index, onset)
    p.focus("smoke", index, onset + p.cadence_ms, end)
    p.event("FIRE_ALARM", "smoke", index)
    slot = int(fleet.smoke.slots[index])
    site = p.registry.site_of(slot)
    p.alarms.setdefault(site, []).append(SiteAlarm(index, onset, round(end), p.step))
    p.need(onset + rule.for_s * 1000 + 3 * p.cadence_ms)


def plan_fire(p: Planner, step: Fire, start: int) -> None:
    _check(p, "spread_every", lambda: check_spread(step.spread_every, p.rules))
    if step.cable is not None:
        cable = step.cable
        _check(p, "cable", lambda: check_rise(cable.rise_c_per_min, cable.peak_c, p.rules))
    fleet, registry = p.fleet, p.registry
    smoke = fleet.smoke
    site_of = [registry.site_of(int(s)) for s in smoke.slots.tolist()]
    by_site: dict[str, list[int]] = {}
    for i, site in enumerate(site_of):
        if smoke.device_ids[i] not in p.used:
            by_site.setdefault(site, []).append(i)
    elec_site = [registry.site_of(int(s)) for s in fleet.electrical.slots.tolist()]
    if step.site == "auto":
        want = 2 if step.detectors == "all" else max(step.detectors, 1)
        ranked = sorted(
            (s for s, d in by_site.items() if len(d) >= want and s not in p.alarms and s not in p.used_sites),
            key=lambda s: (-(s in elec_site), -len(by_site[s]), s),
        )
        if not ranked:
            raise p.fail("site", f"no unused site with {want} smoke detectors")
        site = ranked[0]
    else:
        site = step.site
        if site not in by_site:
            raise p.fail("site", f"site {site} has no (unused) smoke detector in the registry")
    p.used_sites.add(site)
    detectors = by_site[site]
    if step.detectors != "all":
        if step.detectors > len(detectors):
            raise p.fail("detectors", f"site {site} has only {len(detectors)} smoke detectors")
        detectors = detectors[: step.detectors]
    spread = round(step.spread_every * 1000)
    burn = round(step.burn * 1000)
    for n, index in enumerate(detectors):
        onset = start + n * spread
        alarm_on(p, index, onset, onset + burn, "burn")
        p.used.add(smoke.device_ids[index])
    if step.cable is not None:
        for index, s in enumerate(elec_site):
            if s == site and fleet.electrical.device_ids[index] not in p.used:
                p.used.add(fleet.electrical.device_ids[index])
                heat(
                    p,
                    index,
                    start + spread,
                    step.cable.rise_c_per_min,
                    step.cable.peak_c,
                    round(step.burn * 1000),
                    factor=1.0,
                )


def heat(
    p: Planner, index: int, start: int, rate: float, peak: float, hold_ms: int, *, factor: float
) -> None:
    """A cable heats up at ``rate`` °C/min to ``peak``: CABLE_OVERHEAT, TEMP_RISE_FAST as due."""
    overheat_rule, rise_rule = p.rules.cable_overheat, p.rules.temp_rise_fast
    effect = CableHeat(start, rate, peak, hold_ms, factor)
    p.fleet.add_effect("electrical", index, effect)
    p.focus("electrical", index, start, effect.end_ms)
    limit = p.limit("electrical", index, "temp_limit_c", overheat_rule.limit)
    if limit - TEMP_MARGIN_BELOW_C < peak < limit + TEMP_MARGIN_ABOVE_C:
        raise p.fail("peak_c", f"{peak} °C is too close to the cable limit of {limit} °C")
    # above the limit: from the crossing on the way up, through the hold, to the crossing down
    above = hold_ms / 1000 + 2 * (peak - limit) / rate * 60 if peak > limit else 0.0
    overheat = expect(above, above, overheat_rule.for_s, p.scenario.cadence)
    if overheat is None:
        raise p.fail("hold", f"the time above {limit} °C leaves CABLE_OVERHEAT ambiguous; hold longer")
    cadence_ms = 3 * p.cadence_ms
    if overheat:
        p.event("CABLE_OVERHEAT", "electrical", index)
        crossing = (limit + TEMP_MARGIN_ABOVE_C - NORMAL_TEMP_C[0]) / rate * 60_000
        p.need(start + crossing + overheat_rule.for_s * 1000 + cadence_ms)
    if rate >= (1 + RISE_MARGIN) * rise_rule.rate_c_per_min:
        p.event("TEMP_RISE_FAST", "electrical", index)
        p.need(start + round(rise_rule.window_s * 1000) + RISE_DONE_MARGIN_MS + cadence_ms)


def plan_alarm(p: Planner, step: Alarm, start: int) -> None:
    explicit = step.target.devices is not None
    for index in p.pick(step.target, "smoke", per_site=not explicit):
        alarm_on(p, index, start, start + round(step.duration * 1000))


def confirm_fires(p: Planner) -> None:
    """FIRE_CONFIRMED for every site where two detectors alarm well within the rule's window of
    each other; refused where the answer depends on where readings fall."""
    rule = p.rules.fire_confirmed
    sure_ms = round((rule.window_s - CONFIRM_MARGIN_S) * 1000)
    unsure_ms = round((rule.window_s + CONFIRM_MARGIN_S) * 1000)
    for site, alarms in p.alarms.items():
        confirmed: bool | None = False
        ordered = sorted(alarms, key=lambda a: a.onset_ms)
        if rule.min_detectors != 2 and len({a.index for a in ordered}) > 1:
            p.step = ordered[-1].step
            raise p.fail(
                "at",
                f"the rules confirm a fire with {rule.min_detectors} detectors; scenarios model 2 only",
            )
        for a, first in enumerate(ordered):
            for second in ordered[a + 1 :]:
                if first.index == second.index:
                    continue
                if second.onset_ms - first.onset_ms <= sure_ms:
                    confirmed = True
                elif confirmed is False and second.onset_ms - first.end_ms < unsure_ms:
                    confirmed = None  # one still (or just) in alarm when the other starts
        if confirmed is None:
            p.step = ordered[-1].step
            raise p.fail(
                "at",
                f"alarms at site {site} leave FIRE_CONFIRMED ambiguous: two detectors alarm more "
                f"than {sure_ms / 1000:g} s apart while the first is (nearly) still in alarm",
            )
        if confirmed:
            p.step = ordered[0].step
            p.event("FIRE_CONFIRMED", "smoke", ordered[0].index, site_event=True)


def plan_overload(p: Planner, step: Overload, start: int) -> None:
    _check(p, "rise_c_per_min", lambda: check_rise(step.rise_c_per_min, step.peak_c, p.rules))
    for index in p.pick(step.target, "electrical"):
        heat(
            p,
            index,
            start,
            step.rise_c_per_min,
            step.peak_c,
            round(step.hold * 1000),
            factor=step.current_factor,
        )


def plan_leakage(p: Planner, step: Leakage, start: int) -> None:
    rule = p.rules.residual_current_high
    ramp, hold = round(step.ramp * 1000), round(step.hold * 1000)
    for index in p.pick(step.target, "electrical"):
        effect = Ramp(start, "residual_ma", step.residual_ma, ramp, hold, digits=1)
        p.fleet.add_effect("electrical", index, effect)
        p.focus("electrical", index, start, effect.end_ms)
        limit = p.limit("electrical", index, "residual_ma_limit", rule.limit)
        if RESIDUAL_MARGIN[0] * limit <= step.residual_ma < RESIDUAL_MARGIN[1] * limit:
            raise p.fail("residual_ma", f"{step.residual_ma} mA is too close to the limit of {limit} mA")
        low, high = NORMAL_RESIDUAL_MA
        beyond = [
            ramp_beyond(b, step.residual_ma, limit, step.ramp, step.hold, below=False) for b in (low, high)
        ]
        expected = expect(min(beyond), max(beyond), rule.for_s, p.scenario.cadence)
        if expected is None:
            raise p.fail("hold", "the time above the residual-current limit leaves the event ambiguous")
        if expected:
            p.event("RESIDUAL_CURRENT_HIGH", "electrical", index)
            p.need(start + ramp + rule.for_s * 1000 + 3 * p.cadence_ms)


def plan_pressure(p: Planner, step: Pressure, start: int) -> None:
    low_rule, loss_rule, high_rule = p.rules.low_pressure, p.rules.pressure_loss, p.rules.high_pressure
    ramp, hold = round(step.ramp * 1000), round(step.hold * 1000)
    for index in p.pick(step.target, "water"):
        effect = Ramp(start, "pressure_mpa", step.to, ramp, hold)
        p.fleet.add_effect("water", index, effect)
        p.focus("water", index, start, effect.end_ms)
        low = p.limit("water", index, "min_pressure_mpa", low_rule.limit)
        high = p.limit("water", index, "max_pressure_mpa", high_rule.limit)
        judged = (
            ("LOW_PRESSURE", low, low_rule.for_s, True),
            ("PRESSURE_LOSS", loss_rule.limit, loss_rule.for_s, True),
            ("HIGH_PRESSURE", high, high_rule.for_s, False),
        )
        for type_, threshold, for_s, below in judged:
            if abs(step.to - threshold) < PRESSURE_MARGIN_MPA:
                raise p.fail("to", f"{step.to} MPa is too close to the {type_} threshold of {threshold} MPa")
            beyond = [
                ramp_beyond(b, step.to, threshold, step.ramp, step.hold, below=below) for b in NORMAL_PRESSURE
            ]
            expected = expect(min(beyond), max(beyond), for_s, p.scenario.cadence)
            if expected is None:
                raise p.fail("hold", f"the time beyond {threshold} MPa leaves {type_} ambiguous")
            if expected:
                p.event(type_, "water", index)
                p.need(start + ramp + for_s * 1000 + 3 * p.cadence_ms)


def plan_silence(p: Planner, step: Silence, start: int) -> None:
    kind = step.target.kind or "electrical"
    if kind == "patrol":
        raise p.fail("target.kind", "patrol tags only speak when scanned: use patrol_skip")
    rule = p.rules.device_offline
    end = math.inf if step.duration is None else start + step.duration * 1000
    ts = p.run.time_scale
    default = rule.heartbeat_s.get(kind)
    for index in p.pick(step.target, kind):
        p.fleet.add_effect(kind, index, Suppress(start, end))
        if default is None:
            continue  # the rules never report this kind offline
        threshold = rule.deadline_s(p.limit(kind, index, "heartbeat_s", default))
        interval = p.run.wall_interval_s.get(kind, 0.0)
        silent_wall = (min(end, p.run.end_ms) - start) / 1000 / ts
        if step.duration is None or silent_wall >= threshold + OFFLINE_MARGIN_S:
            need_wall = (start - p.run.start_ms) / 1000 / ts + threshold + OFFLINE_MARGIN_S
            if need_wall > p.run.sim_s / ts:
                raise p.fail(
                    "at",
                    f"{kind} devices are reported offline after {threshold:g} s of silence "
                    f"(service clock); the run must last at least {math.ceil(need_wall)} s",
                )
            p.plan.needs_wall_s = max(p.plan.needs_wall_s, need_wall)
            p.event("DEVICE_OFFLINE", kind, index)
        elif silent_wall + interval > threshold - OFFLINE_MARGIN_S:
            raise p.fail(
                "duration",
                f"a silence of {silent_wall:g} wall s is too close to the offline "
                f"threshold of {threshold:g} s",
            )


def plan_tamper(p: Planner, step: Tamper, start: int) -> None:
    values: Message = {"tamper": True}
    flag(p, step.target, "smoke", start, step.duration, values, "TAMPER", p.rules.tamper.for_s)


def plan_fault(p: Planner, step: Fault, start: int) -> None:
    kind = step.target.kind or "electrical"
    if kind == "patrol":
        raise p.fail("target.kind", "patrol tags report no fault field")
    values: Message = {"fault": step.text}
    flag(p, step.target, kind, start, step.duration, values, "DEVICE_FAULT", p.rules.device_fault.for_s)


def flag(
    p: Planner,
    target: Target,
    kind: str,
    start: int,
    duration: float,
    values: Message,
    type_: str,
    for_s: float,
) -> None:
    """Devices report ``values`` for ``duration``: a flag rule (TAMPER, DEVICE_FAULT) raises."""
    reports = f"3 reports ({3 * p.scenario.cadence:g} s)"
    if duration < for_s + 3 * p.scenario.cadence:
        held = reports if for_s == 0 else f"{type_}'s for_s of {for_s:g} s + {reports}"
        raise p.fail("duration", f"lasts under {held}")
    end = start + round(duration * 1000)
    for index in p.pick(target, kind):
        p.fleet.add_effect(kind, index, SetFields(start, end, values))
        p.report(kind, index, start)
        p.focus(kind, index, start + p.cadence_ms, end)
        p.event(type_, kind, index)
        p.need(start + for_s * 1000 + 3 * p.cadence_ms)


def plan_battery(p: Planner, step: Battery, start: int) -> None:
    _check(p, "to", lambda: check_battery(step.to, p.rules))
    rule = p.rules.low_battery
    kind = step.target.kind or "smoke"
    if kind not in ("smoke", "water"):
        raise p.fail("target.kind", "only smoke detectors and water monitors report a battery")
    for index in p.pick(step.target, kind):
        p.fleet.add_effect(kind, index, SetFields(start, math.inf, {"battery_pct": step.to}))
        p.report(kind, index, start)
        p.focus(kind, index, start + p.cadence_ms, start + rule.for_s * 1000 + 3 * p.cadence_ms)
        if step.to < rule.limit:
            p.event("LOW_BATTERY", kind, index)
        p.need(start + rule.for_s * 1000 + 3 * p.cadence_ms)
