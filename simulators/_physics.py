"""Device physics: what each simulated device would measure at a given (simulated) time.

Pure and seeded: nothing here reads the clock or does I/O; the caller passes the time in
(epoch milliseconds of simulated time). State (cable temperature lag, pump on/off, ``seq``,
the last ``ts``) lives in numpy arrays per kind, indexed by the device's position in its kind.

Normal operation stays well inside every rule of CONTRACT §7: cable temperatures below 50 °C
(limit 70) changing by well under 1 °C/min (limit 5), residual currents below 60 mA (limit
300), pressures between 0.2 and 0.7 MPa (limits 0.10 and 1.20), batteries above 25 % (limit
15), no alarm, no tamper, no fault, patrols walking at 0.9-1.5 m/s (limit 10) and scanning
every checkpoint once a day (limit 26.4 h).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from devices import KIND_BY_NAME, KINDS, Registry, Topics, haversine_m_array

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Message = dict[str, Any]

LOCAL_OFFSET_S = 8 * 3600
"""China Standard Time: daily cycles follow local hours."""
DAY_S = 86_400
WALK_MIN_M_S = 0.9
WALK_MAX_M_S = 1.5
DAILY_JITTER_S = 20 * 60

# the ranges normal operation stays in (the scenarios' ground truth relies on them)
NORMAL_TEMP_C = (18.0, 50.0)
"""Cable temperatures (°C)."""
NORMAL_PRESSURE = (0.20, 0.70)
"""Water pressure (MPa)."""
NORMAL_RESIDUAL_MA = (0.0, 60.0)
"""Residual current (mA)."""


def local_hour(t_ms: float | F64) -> F64:
    return np.asarray(((np.asarray(t_ms, dtype=np.float64) / 1000.0 + LOCAL_OFFSET_S) % DAY_S) / 3600.0)


def _bump(hour: F64, centre: float, width: float) -> F64:
    delta = (hour - centre + 12.0) % 24.0 - 12.0
    return np.asarray(np.exp(-0.5 * (delta / width) ** 2))


def load_factor(hour: F64) -> F64:
    """Electrical load as a share of rated current over the day: night 0.3, evening peak ~0.8."""
    return np.asarray(0.30 + 0.22 * _bump(hour, 8.0, 1.6) + 0.50 * _bump(hour, 19.5, 2.2))


def water_demand(hour: F64) -> F64:
    """Water demand in [0, 1]: morning and evening peaks, quiet nights."""
    return np.asarray(np.clip(0.1 + 0.7 * _bump(hour, 7.5, 1.3) + 0.8 * _bump(hour, 19.0, 1.8), 0.0, 1.0))


class Effect(Protocol):
    """A scenario's change to one device's messages (see ``simulators._effects``)."""

    def apply(self, message: Message, t_ms: int) -> bool:
        """Change ``message`` in place for time ``t_ms``; ``False`` suppresses the message."""
        ...


class _Bank:
    """The devices of one kind: registry slots, topics, per-device ``seq`` and last ``ts``."""

    kind = ""

    def __init__(
        self, registry: Registry, slots: I64, rng: np.random.Generator, start_ms: int, seq_start: int
    ) -> None:
        self.registry = registry
        self.slots = slots
        self.size = int(slots.size)
        self.rng = rng
        self.start_ms = start_ms
        self.device_ids = [registry.device_ids[s] for s in slots.tolist()]
        self.districts = [registry.district_of(s) for s in slots.tolist()]
        self.lat = registry.lat[slots]
        self.lon = registry.lon[slots]
        self.seq = [seq_start] * self.size
        self.last_ts = [0] * self.size
        self.effects: dict[int, list[Effect]] = {}

    def topics(self, prefix: str = "") -> list[str]:
        device = Topics(prefix).device
        return [device(d, self.kind, i) for d, i in zip(self.districts, self.device_ids, strict=True)]

    def values(self, idx: I64, t_ms: int) -> list[Message]:
        """Physics only: the fields of each device's reading at ``t_ms`` (no ``ts``/``seq``)."""
        raise NotImplementedError

    def stamp(self, i: int, t_ms: int) -> tuple[int, int]:
        """The next (``ts``, ``seq``) of device ``i``: ``ts`` strictly increasing per device."""
        last = self.last_ts[i]
        ts = t_ms if t_ms > last else last + 1
        self.last_ts[i] = ts
        seq = self.seq[i]
        self.seq[i] = seq + 1
        return ts, seq

    def messages(self, idx: I64, t_ms: int) -> list[tuple[int, Message]]:
        """Stamped messages of devices ``idx`` at ``t_ms`` with scenario effects applied.

        Returns ``(i, message)`` pairs; a device whose effect suppresses it is left out (and
        keeps its ``seq``).
        """
        out: list[tuple[int, Message]] = []
        effects = self.effects
        for i, message in zip(idx.tolist(), self.values(idx, t_ms), strict=True):
            ts = t_ms if t_ms > self.last_ts[i] else self.last_ts[i] + 1
            active = effects.get(i)
            if active is not None and not all([e.apply(message, ts) for e in active]):
                continue
            ts, seq = self.stamp(i, t_ms)
            out.append((i, {"ts": ts, "seq": seq, **message}))
        return out


class SmokeBank(_Bank):
    kind = "smoke"

    def __init__(
        self, registry: Registry, slots: I64, rng: np.random.Generator, start_ms: int, seq_start: int
    ) -> None:
        super().__init__(registry, slots, rng, start_ms, seq_start)
        n = self.size
        self.battery0 = rng.uniform(40.0, 100.0, n)
        self.drain_per_day = rng.uniform(0.002, 0.01, n)
        self.rssi = rng.uniform(-95.0, -60.0, n)
        self.obscuration = rng.uniform(0.005, 0.03, n)

    def values(self, idx: I64, t_ms: int) -> list[Message]:
        n = idx.size
        days = (t_ms - self.start_ms) / 86_400_000
        battery = np.round(
            np.clip(self.battery0[idx] - self.drain_per_day[idx] * days, 25.0, 100.0), 1
        ).tolist()
        obsc = np.round(self.obscuration[idx] + np.abs(self.rng.normal(0, 0.003, n)), 3).tolist()
        rssi = np.round(self.rssi[idx] + self.rng.normal(0, 2.0, n)).tolist()
        return [
            {"alarm": False, "obscuration_db_m": o, "battery_pct": b, "rssi_dbm": r, "tamper": False}
            for o, b, r in zip(obsc, battery, rssi, strict=True)
        ]


class ElectricalBank(_Bank):
    """Daily load cycle → phase currents; cable temperature follows load² with a first-order lag."""

    kind = "electrical"

    def __init__(
        self, registry: Registry, slots: I64, rng: np.random.Generator, start_ms: int, seq_start: int
    ) -> None:
        super().__init__(registry, slots, rng, start_ms, seq_start)
        n = self.size
        self.rated_a = rng.uniform(16.0, 80.0, n)
        self.usage = rng.uniform(0.5, 1.0, n)
        self.shift_h = rng.uniform(-1.0, 1.0, n)
        self.channels = np.where(rng.random(n) < 0.7, 3, 4)
        self.imbalance = rng.uniform(0.88, 1.08, (n, 4))
        self.rise_c = rng.uniform(12.0, 20.0, n)
        """Temperature rise over ambient at rated load (°C)."""
        self.ambient = rng.uniform(20.0, 27.0, n)
        self.tau_s = rng.uniform(900.0, 1800.0, n)
        self.residual = rng.uniform(3.0, 40.0, n)
        load0 = self._load(np.arange(n), start_ms)
        self.excess = self.rise_c * load0**2
        self.excess_t = np.full(n, float(start_ms))

    def _load(self, idx: I64, t_ms: int) -> F64:
        return np.asarray(load_factor(local_hour(t_ms) + self.shift_h[idx]) * self.usage[idx])

    def values(self, idx: I64, t_ms: int) -> list[Message]:
        n = idx.size
        load = self._load(idx, t_ms)
        target = self.rise_c[idx] * load**2
        dt = np.maximum(t_ms - self.excess_t[idx], 0.0) / 1000.0
        excess = target + (self.excess[idx] - target) * np.exp(-dt / self.tau_s[idx])
        self.excess[idx] = excess
        self.excess_t[idx] = float(t_ms)
        hour = local_hour(t_ms)
        ambient = self.ambient[idx] + 2.0 * np.sin((hour - 9.0) / 24.0 * 2 * math.pi)
        imb = self.imbalance[idx]
        temps = ambient[:, None] + excess[:, None] * imb**2 + self.rng.normal(0, 0.15, (n, 4))
        currents = (self.rated_a[idx] * load)[:, None] * imb + self.rng.normal(0, 0.2, (n, 4))
        residual = np.clip(self.residual[idx] * (0.8 + 0.4 * load) + self.rng.normal(0, 1.5, n), 0.0, None)
        temp_rows = np.round(temps, 1).tolist()
        current_rows = np.round(np.abs(currents), 2).tolist()
        channels = self.channels[idx].tolist()
        return [
            {"residual_ma": r, "temp_c": t[:c], "current_a": a[:c], "arc_count": 0}
            for r, t, a, c in zip(
                np.round(residual, 1).tolist(), temp_rows, current_rows, channels, strict=True
            )
        ]


class WaterBank(_Bank):
    """Daily demand cycle lowers pressure; a booster pump with hysteresis lifts it back."""

    kind = "water"

    def __init__(
        self, registry: Registry, slots: I64, rng: np.random.Generator, start_ms: int, seq_start: int
    ) -> None:
        super().__init__(registry, slots, rng, start_ms, seq_start)
        n = self.size
        self.nominal = rng.uniform(0.28, 0.55, n)
        self.boost = rng.uniform(0.04, 0.07, n)
        self.pump_on = np.zeros(n, dtype=bool)
        self.has_tank = rng.random(n) < 0.4
        self.tank_m = rng.uniform(1.8, 3.2, n)
        self.battery0 = rng.uniform(50.0, 100.0, n)

    def values(self, idx: I64, t_ms: int) -> list[Message]:
        n = idx.size
        hour = local_hour(t_ms)
        demand = water_demand(hour)
        nominal = self.nominal[idx]
        raw = nominal * (1.0 - 0.18 * demand)
        on = self.pump_on[idx]
        on = np.where(raw < nominal * 0.88, True, np.where(raw > nominal * 0.95, False, on))
        self.pump_on[idx] = on
        pressure = raw + on * self.boost[idx] + self.rng.normal(0, 0.004, n)
        level = self.tank_m[idx] - 0.3 * demand + self.rng.normal(0, 0.01, n)
        days = (t_ms - self.start_ms) / 86_400_000
        battery = np.round(np.clip(self.battery0[idx] - 0.005 * days, 25.0, 100.0), 1).tolist()
        out: list[Message] = []
        for p, lv, b, tank in zip(
            np.round(pressure, 3).tolist(),
            np.round(level, 2).tolist(),
            battery,
            self.has_tank[idx].tolist(),
            strict=True,
        ):
            message: Message = {"pressure_mpa": p, "battery_pct": b}
            if tank:
                message["level_m"] = lv
            out.append(message)
        return out


@dataclass(frozen=True, slots=True)
class Scan:
    t_ms: int
    tag: int
    """The tag's index in the patrol bank."""
    worker: int
    """The worker's index in :attr:`PatrolBank.workers`."""


@dataclass(slots=True)
class _Day:
    times: I64
    tags: I64


class PatrolBank(_Bank):
    """NFC checkpoints and the workers who walk their rounds.

    Every checkpoint belongs to the round of its grid's first grid worker (supervisors only
    patrol grids that have no grid worker). A worker's round visits the checkpoints of all
    their grids once a day, starting between 08:00 and 14:00 local time (± 20 min from day to
    day), walking at a personal speed of 0.9-1.5 m/s and spending 1-3 min at each checkpoint.
    """

    kind = "patrol"

    def __init__(
        self,
        registry: Registry,
        slots: I64,
        rng: np.random.Generator,
        start_ms: int,
        seq_start: int,
        *,
        seed: int,
    ) -> None:
        super().__init__(registry, slots, rng, start_ms, seq_start)
        self.seed = seed
        n = self.size
        grid_of = [registry.grid_of(s) for s in slots.tolist()]
        workers = registry.workers
        patroller: dict[str, str] = {}
        for gid, grid in registry.grids.items():
            regular = [w for w in grid.workers if w in workers and not workers[w].is_supervisor]
            chosen = regular or [w for w in grid.workers if w in workers]
            if chosen:
                patroller[gid] = chosen[0]
        self.workers: list[str] = sorted(set(patroller.values()))
        index = {w: i for i, w in enumerate(self.workers)}
        self.worker_of = np.array([index.get(patroller.get(g, ""), -1) for g in grid_of], dtype=np.int64)
        self.unpatrolled = [self.device_ids[i] for i in np.flatnonzero(self.worker_of < 0).tolist()]
        n_workers = len(self.workers)
        self.speed = rng.uniform(WALK_MIN_M_S, WALK_MAX_M_S, max(n_workers, 1))
        self.start_s = rng.uniform(8 * 3600, 14 * 3600, max(n_workers, 1))
        dwell = rng.uniform(60.0, 180.0, n)
        # route order: by grid, then around the grid's centre; offsets relative to the start
        self.offset_s = np.zeros(n)
        self.routes: list[I64] = []
        grid_key = np.array([registry.grid_idx[s] for s in slots.tolist()], dtype=np.int64)
        for w in range(n_workers):
            tags = np.flatnonzero(self.worker_of == w)
            if tags.size == 0:
                self.routes.append(tags)
                continue
            angle = np.zeros(tags.size)
            for g in np.unique(grid_key[tags]).tolist():
                sel = grid_key[tags] == g
                angle[sel] = np.arctan2(
                    self.lat[tags[sel]] - self.lat[tags[sel]].mean(),
                    self.lon[tags[sel]] - self.lon[tags[sel]].mean(),
                )
            route = tags[np.lexsort((angle, grid_key[tags]))]
            legs = haversine_m_array(
                self.lat[route[:-1]], self.lon[route[:-1]], self.lat[route[1:]], self.lon[route[1:]]
            )
            walk = np.concatenate([[0.0], legs / self.speed[w]])
            self.offset_s[route] = np.cumsum(walk + np.concatenate([[0.0], dwell[route[:-1]]]))
            self.routes.append(route)
        self.worker_ids_of_tag = [self.workers[w] if w >= 0 else "" for w in self.worker_of.tolist()]
        self._days: dict[int, _Day] = {}

    def _jitter(self, day: int) -> F64:
        rng = np.random.default_rng([self.seed, 0x7A7201, day])
        return rng.uniform(-DAILY_JITTER_S, DAILY_JITTER_S, max(len(self.workers), 1))

    def _day(self, day: int) -> _Day:
        """Every scan of local day ``day`` (days since the epoch, local time), sorted by time."""
        cached = self._days.get(day)
        if cached is None:
            patrolled = np.flatnonzero(self.worker_of >= 0)
            w = self.worker_of[patrolled]
            local = day * DAY_S + self.start_s[w] + self._jitter(day)[w] + self.offset_s[patrolled]
            times = np.round((local - LOCAL_OFFSET_S) * 1000.0).astype(np.int64)
            order = np.argsort(times, kind="stable")
            cached = _Day(times[order], patrolled[order])
            if len(self._days) > 8:
                self._days.pop(min(self._days))
            self._days[day] = cached
        return cached

    def scans(self, t0_ms: int, t1_ms: int) -> list[Scan]:
        """Normal scans with ``t0_ms <= t < t1_ms``, by time."""
        out: list[Scan] = []
        first = (t0_ms // 1000 + LOCAL_OFFSET_S) // DAY_S - 1
        last = (t1_ms // 1000 + LOCAL_OFFSET_S) // DAY_S
        for day in range(first, last + 1):
            d = self._day(day)
            lo, hi = np.searchsorted(d.times, [t0_ms, t1_ms], side="left").tolist()
            out.extend(
                Scan(t, tag, int(self.worker_of[tag]))
                for t, tag in zip(d.times[lo:hi].tolist(), d.tags[lo:hi].tolist(), strict=True)
            )
        return out

    def worker_scans(self, worker: int, t0_ms: int, t1_ms: int) -> list[Scan]:
        return [s for s in self.scans(t0_ms, t1_ms) if s.worker == worker]

    def tag_scans(self, tag: int, t0_ms: int, t1_ms: int) -> list[int]:
        """Times of the normal scans of ``tag`` with ``t0_ms <= t < t1_ms``."""
        w = int(self.worker_of[tag])
        if w < 0:
            return []
        first = (t0_ms // 1000 + LOCAL_OFFSET_S) // DAY_S - 1
        last = (t1_ms // 1000 + LOCAL_OFFSET_S) // DAY_S
        out = []
        for day in range(first, last + 1):
            local = day * DAY_S + self.start_s[w] + self._jitter(day)[w] + self.offset_s[tag]
            t = round((local - LOCAL_OFFSET_S) * 1000.0)
            if t0_ms <= t < t1_ms:
                out.append(t)
        return out

    def last_scan_before(self, tag: int, t_ms: int) -> int | None:
        """The time of the last normal scan of ``tag`` before ``t_ms`` (within three days)."""
        times = self.tag_scans(tag, t_ms - 3 * DAY_S * 1000, t_ms)
        return times[-1] if times else None

    def values(self, idx: I64, t_ms: int) -> list[Message]:
        return [{"worker_id": self.worker_ids_of_tag[i], "result": "ok"} for i in idx.tolist()]

    def scan_message(self, scan: Scan, worker_id: str | None = None) -> tuple[int, Message] | None:
        """The stamped message of one scan (effects applied); ``None`` when suppressed."""
        message: Message = {"worker_id": worker_id or self.workers[scan.worker], "result": "ok"}
        ts = scan.t_ms if scan.t_ms > self.last_ts[scan.tag] else self.last_ts[scan.tag] + 1
        for effect in self.effects.get(scan.tag, ()):
            if not effect.apply(message, ts):
                return None
        ts, seq = self.stamp(scan.tag, scan.t_ms)
        return scan.tag, {"ts": ts, "seq": seq, **message}


@dataclass
class Fleet:
    """Every device of a registry with its physics, as one bank per kind."""

    registry: Registry
    seed: int = 1
    start_ms: int = 0
    seq_start: int = 1
    banks: dict[str, _Bank] = field(init=False)

    def __post_init__(self) -> None:
        registry = self.registry
        active = np.array(sorted(registry.slot_of.values()), dtype=np.int64)
        kinds = registry.kind_code[active] if active.size else np.zeros(0, dtype=np.int8)
        factories: dict[str, Callable[[I64, np.random.Generator], _Bank]] = {
            "smoke": lambda s, r: SmokeBank(registry, s, r, self.start_ms, self.seq_start),
            "electrical": lambda s, r: ElectricalBank(registry, s, r, self.start_ms, self.seq_start),
            "water": lambda s, r: WaterBank(registry, s, r, self.start_ms, self.seq_start),
            "patrol": lambda s, r: PatrolBank(registry, s, r, self.start_ms, self.seq_start, seed=self.seed),
        }
        self.banks = {}
        for code, spec in enumerate(KINDS):
            make = factories.get(spec.name)
            if make is None:
                raise ValueError(f"no physics for device kind {spec.name}")
            self.banks[spec.name] = make(
                active[kinds == code], np.random.default_rng([self.seed, 0xF1EE7, code])
            )
        self._local: dict[int, tuple[str, int]] = {}
        for name, bank in self.banks.items():
            for i, slot in enumerate(bank.slots.tolist()):
                self._local[slot] = (name, i)

    @property
    def smoke(self) -> SmokeBank:
        bank = self.banks["smoke"]
        assert isinstance(bank, SmokeBank)
        return bank

    @property
    def electrical(self) -> ElectricalBank:
        bank = self.banks["electrical"]
        assert isinstance(bank, ElectricalBank)
        return bank

    @property
    def water(self) -> WaterBank:
        bank = self.banks["water"]
        assert isinstance(bank, WaterBank)
        return bank

    @property
    def patrol(self) -> PatrolBank:
        bank = self.banks["patrol"]
        assert isinstance(bank, PatrolBank)
        return bank

    def locate(self, device_id: str) -> tuple[str, int] | None:
        """(kind, index in its bank) of a registered device."""
        slot = self.registry.slot_of.get(device_id)
        return None if slot is None else self._local.get(slot)

    def add_effect(self, kind: str, index: int, effect: Effect) -> None:
        self.banks[kind].effects.setdefault(index, []).append(effect)

    def heartbeat_s(self, kind: str) -> F64:
        """Each device's heartbeat (registry override or the kind's default), by bank index."""
        bank = self.banks[kind]
        default = KIND_BY_NAME[kind].heartbeat_s
        values = self.registry.overrides["heartbeat_s"][bank.slots].astype(np.float64)
        return np.where(np.isnan(values), float(default or 0.0), values)
