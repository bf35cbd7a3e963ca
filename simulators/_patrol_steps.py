"""Step planners of the patrol steps: patrol_skip, patrol_fast, patrol_hazard.

PATROL_TOO_FAST compares each scan with its worker's latest scan (by ts) of another checkpoint,
and PATROL_MISSED runs on the patrol clock (the latest scan ts of any checkpoint). A step's own
scans are placed so that they imply at most half PATROL_TOO_FAST's speed to and from every other
scan of their worker, and a skip so that the patrol clock passes the deadline while the
checkpoint is still silent: the planner looks for a worker and checkpoints that allow it, and
refuses only when none does. The hostile patrol cases use the same helpers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import orjson

from devices import haversine_m, haversine_m_array
from simulators._effects import Suppress
from simulators._physics import DAY_S, Message, Scan
from simulators._planner import Planner, Skip
from simulators._scenario_schema import FAST_FACTOR, PatrolFast, PatrolHazard, PatrolSkip
from simulators._truth import Out

IDLE_MARGIN_S = 2 * 3600
"""A worker with no scan this close to a step's scans is off duty (preferred for the step)."""
SAFE_SHARE = 0.5
"""A step's patrol scan implies at most this share of PATROL_TOO_FAST's speed to or from any
other scan of its worker."""
MIN_FAST_M = 100.0
"""The two checkpoints of a too-fast pair lie at least this far apart."""
CLOCK_MARGIN_MS = 60_000
"""The scan that moves the patrol clock past a skipped checkpoint's deadline comes this late."""
SKIP_MARGIN_MS = 2 * 3_600_000
"""A skipped checkpoint stays silent this long after the patrol clock passes its deadline."""

Scans = list[tuple[int, int]]
"""(t_ms, tag) of scans, tags by index in the patrol bank."""


def safe_speed_m_s(p: Planner) -> float:
    return p.rules.patrol_too_fast.max_speed_m_s * SAFE_SHARE


def round_scans(p: Planner, worker: int, t0_ms: int, t1_ms: int) -> Scans:
    """(t_ms, tag) of the worker's normal scans, and of the scans earlier steps gave them,
    with ``t0_ms <= t < t1_ms``."""
    patrol = p.fleet.patrol
    out = [(t, tag) for tag in patrol.routes[worker].tolist() for t in patrol.tag_scans(tag, t0_ms, t1_ms)]
    out.extend((t, tag) for t, tag in p.injected.get(worker, []) if t0_ms <= t < t1_ms)
    return sorted(out)


def fits(p: Planner, worker: int, scans: Scans, *, idle: bool) -> bool:
    """Can ``worker`` make ``scans`` (the step's own) with none of them implying more than the safe
    speed to or from any other scan of theirs, whatever order the scans arrive in? ``idle``:
    also no other scan of theirs within IDLE_MARGIN_S (off duty)."""
    patrol = p.fleet.patrol
    safe = safe_speed_m_s(p)
    lat, lon, route = patrol.lat, patrol.lon, patrol.routes[worker]
    t0, t1 = min(t for t, _ in scans), max(t for t, _ in scans)
    far = max(
        float(np.max(haversine_m_array(lat[tag], lon[tag], lat[route], lon[route]))) for _, tag in scans
    )
    reach = math.ceil(far / safe * 1000) + 60_000  # any scan further off is slower
    idle_ms = IDLE_MARGIN_S * 1000 if idle else 0
    margin = max(reach, idle_ms)
    for t, tag in round_scans(p, worker, t0 - margin, t1 + margin + 1):
        if t0 - idle_ms <= t <= t1 + idle_ms:
            return False  # also: no scan of theirs between the step's own
        for own_t, own in scans:
            metres = haversine_m(float(lat[own]), float(lon[own]), float(lat[tag]), float(lon[tag]))
            if own != tag and metres * 1000 > safe * abs(t - own_t):
                return False
    return True


def patrol_worker(
    p: Planner, name: str, key: str, offers: Callable[[int], list[Scans]], needs: str
) -> tuple[int, Scans]:
    """The worker and the scans ((t_ms, tag), from ``offers(worker)``, best first) of a step.

    ``name`` or, for ``auto``, a worker no other step uses, in the step's random order. An
    off-duty worker is preferred; else any whose scans fit between their round's (see
    :func:`fits`)."""
    patrol = p.fleet.patrol
    if name != "auto":
        if name not in patrol.workers:
            raise p.fail(key, f"worker {name} patrols no checkpoint in the registry")
        workers = [patrol.workers.index(name)]
    else:
        order = [int(w) for w in p.rng().permutation(len(patrol.workers))]
        workers = [
            w
            for w in order
            if w not in p.used_workers
            and not any(patrol.device_ids[t] in p.used for t in patrol.routes[w].tolist())
        ]
    offered: dict[int, list[Scans]] = {}
    for idle in (True, False):
        for w in workers:
            if w not in offered:
                offered[w] = offers(w)
            for scans in offered[w]:
                if fits(p, w, scans, idle=idle):
                    p.used_workers.add(w)
                    p.injected.setdefault(w, []).extend(scans)
                    return w, scans
    who = f"worker {name}" if name != "auto" else f"every worker with {needs}"
    if not any(offered.values()):
        raise p.fail(
            key,
            f"worker {name} has no {needs}"
            if name != "auto"
            else f"no worker that no other step uses has {needs}",
        )
    raise p.fail(
        key,
        f"{who} is on a round at that time (a scan then would imply over {safe_speed_m_s(p):g} m/s "
        "to or from one of their own, a PATROL_TOO_FAST not in the ground truth): pick another time",
    )


def single(p: Planner, t_ms: int) -> Callable[[int], list[Scans]]:
    """Offers of one scan at ``t_ms``: each unused checkpoint of the worker's round, in order."""
    patrol = p.fleet.patrol

    def offers(worker: int) -> list[Scans]:
        return [[(t_ms, t)] for t in patrol.routes[worker].tolist() if patrol.device_ids[t] not in p.used]

    return offers


def scan(p: Planner, tag: int, worker: int, t_ms: int, extra: Message | None = None) -> str:
    """Schedule the worker's scan of ``tag`` at ``t_ms`` (with ``extra`` fields); its topic."""
    patrol = p.fleet.patrol
    topic = p.topic("patrol", tag)

    def emit(_wall_ms: int) -> list[Out]:
        made = patrol.scan_message(Scan(t_ms, tag, worker))
        if made is None:
            return []
        message = made[1]
        if extra:
            message.update(extra)
        return [(topic, orjson.dumps(message), "patrol")]

    p.timed(t_ms, emit)
    return topic


def patrol_clock(p: Planner, t_ms: int, silent: set[int]) -> int | None:
    """The first normal scan at or after ``t_ms`` (within two days) that goes out: of a
    checkpoint not in ``silent`` and not suppressed by a step. It moves the patrol clock."""
    patrol = p.fleet.patrol
    for hour in range(48):
        lo = t_ms + hour * 3_600_000
        for normal in patrol.scans(lo, lo + 3_600_000):
            if normal.tag in silent:
                continue
            if all(effect.apply({}, normal.t_ms) for effect in patrol.effects.get(normal.tag, ())):
                return normal.t_ms
    return None


def skip_of(p: Planner, tag: int, start: int, end: int, silent: set[int]) -> Skip | None:
    """How skipping ``tag`` from ``start`` to ``end`` raises PATROL_MISSED; ``None`` if it
    cannot: the checkpoint is scanned again before the patrol clock passes its deadline."""
    patrol = p.fleet.patrol
    rule = p.rules.patrol_missed
    last = patrol.last_scan_before(tag, start + 1)
    if last is None or last < p.run.start_ms:
        # not scanned yet in this run: the service has not seen it; its first scan counts
        following = patrol.tag_scans(tag, start, start + 2 * DAY_S * 1000)
        if not following:
            return None
        last = following[0]
    interval_h = p.limit("patrol", tag, "patrol_interval_h", rule.interval_h)
    deadline = last + round(interval_h * rule.factor * 3_600_000)
    resumed = patrol.tag_scans(tag, end, end + 2 * DAY_S * 1000)
    resume = resumed[0] if resumed else None
    clock = patrol_clock(p, deadline + CLOCK_MARGIN_MS, silent | {tag})
    if clock is None or (resume is not None and resume < clock + SKIP_MARGIN_MS):
        return None
    return Skip(p.step, tag, last, deadline, resume)


def plan_patrol_skip(p: Planner, step: PatrolSkip, start: int) -> None:
    patrol = p.fleet.patrol
    rule = p.rules.patrol_missed
    end = start + round(step.duration * 1000)
    wanted = step.checkpoints
    if step.worker == "auto":
        order = [int(w) for w in p.rng().permutation(len(patrol.workers))]
        workers = [w for w in order if w not in p.used_workers and patrol.routes[w].size >= wanted]
        if not workers:
            raise p.fail("worker", f"no worker patrols {wanted} checkpoints")
    else:
        if step.worker not in patrol.workers:
            raise p.fail("worker", f"worker {step.worker} patrols no checkpoint in the registry")
        workers = [patrol.workers.index(step.worker)]
        if patrol.routes[workers[0]].size < wanted:
            raise p.fail(
                "checkpoints", f"the worker patrols only {patrol.routes[workers[0]].size} checkpoints"
            )
    taken = {i for i, device in enumerate(patrol.device_ids) if device in p.used}
    chosen: list[Skip] = []
    for worker in workers:
        chosen = []
        for tag in patrol.routes[worker].tolist():
            if tag in taken:
                continue
            skip = skip_of(p, tag, start, end, taken | {c.tag for c in chosen})
            if skip is not None:
                chosen.append(skip)
                if len(chosen) == wanted:
                    break
        if len(chosen) == wanted:
            break
    else:
        whose = (
            f"{wanted} of worker {step.worker}'s checkpoints"
            if step.worker != "auto"
            else (f"no worker's {wanted} checkpoints")
        )
        raise p.fail(
            "duration",
            f"{whose} stay unscanned until the patrol clock passes their deadline "
            f"({rule.interval_h * rule.factor:g} h after the last scan, "
            f"+ {SKIP_MARGIN_MS / 3_600_000:g} h): skip longer",
        )
    p.used_workers.add(worker)
    for skip in chosen:
        p.used.add(patrol.device_ids[skip.tag])
        p.fleet.add_effect("patrol", skip.tag, Suppress(skip.last + 1, end))
        p.event("PATROL_MISSED", "patrol", skip.tag)
        p.skips.append(skip)


def check_patrol_clocks(p: Planner) -> None:
    """Once every step is planned: the run lasts until the patrol clock passes each skipped
    checkpoint's deadline, before the checkpoint is scanned again."""
    for skip in p.skips:
        p.step = skip.step
        clock = patrol_clock(p, skip.deadline + CLOCK_MARGIN_MS, {skip.tag})
        if clock is None or (skip.resume is not None and skip.resume < clock + SKIP_MARGIN_MS):
            raise p.fail(
                "at",
                f"later steps silence the checkpoints whose scans would move the patrol clock past "
                f"the deadline of {p.fleet.patrol.device_ids[skip.tag]}",
            )
        p.need(clock + CLOCK_MARGIN_MS)


def plan_patrol_fast(p: Planner, step: PatrolFast, start: int) -> None:
    patrol = p.fleet.patrol
    limit = p.rules.patrol_too_fast.max_speed_m_s
    if step.speed_m_s < FAST_FACTOR * limit:
        raise p.fail(
            "speed_m_s",
            f"{step.speed_m_s:g} m/s is too close to the PATROL_TOO_FAST limit of {limit:g} m/s: "
            f"use at least {FAST_FACTOR * limit:g}",
        )

    def pairs(worker: int) -> list[Scans]:
        """Per unused checkpoint of the round: it, then the one furthest from it."""
        route = [t for t in patrol.routes[worker].tolist() if patrol.device_ids[t] not in p.used]
        tags = np.array(route, dtype=np.int64)
        out = []
        for first in route:
            distance = haversine_m_array(
                patrol.lat[first], patrol.lon[first], patrol.lat[tags], patrol.lon[tags]
            )
            far = int(np.argmax(distance))
            metres = float(distance[far])
            if metres >= MIN_FAST_M:
                gap_ms = max(1, round(metres / step.speed_m_s * 1000))
                out.append([(start, first), (start + gap_ms, route[far])])
        return out

    worker, scans = patrol_worker(
        p, step.worker, "worker", pairs, f"two unused checkpoints at least {MIN_FAST_M:g} m apart"
    )
    (_, first), (second_ms, second) = scans
    p.used.update((patrol.device_ids[first], patrol.device_ids[second]))
    scan(p, first, worker, start)
    scan(p, second, worker, second_ms)
    p.event("PATROL_TOO_FAST", "patrol", second)
    p.need(second_ms + 1000)


def plan_patrol_hazard(p: Planner, step: PatrolHazard, start: int) -> None:
    worker, scans = patrol_worker(p, step.worker, "worker", single(p, start), "an unused checkpoint")
    tag = scans[0][1]
    p.used.add(p.fleet.patrol.device_ids[tag])
    extra: Message = {"result": "hazard", "hazards": list(step.hazards)}
    if step.note is not None:
        extra["note"] = step.note
    scan(p, tag, worker, start, extra)
    p.event("PATROL_HAZARD", "patrol", tag)
    p.need(start + 1000)


def unused_checkpoint_scan(p: Planner, key: str, t_ms: int, extra: Message) -> int:
    """A scan at ``t_ms`` (with ``extra`` fields) of an unused checkpoint, by a worker it suits
    (hostile patrol cases); its tag."""
    worker, scans = patrol_worker(p, "auto", key, single(p, t_ms), "an unused checkpoint")
    tag = scans[0][1]
    p.used.add(p.fleet.patrol.device_ids[tag])
    scan(p, tag, worker, t_ms, extra)
    return tag
