"""Electrical-fire monitors: RESIDUAL_CURRENT_HIGH, CABLE_OVERHEAT (escalating) and TEMP_RISE_FAST.

TEMP_RISE_FAST keeps a ring of :data:`RING` (ts, max temp_c) points per device. Readings are
decimated into buckets of ``window_s / (RING - 1)`` (8 s by default): a reading in the same
bucket as the newest point replaces it, so the ring always spans the whole window even for
devices that report every second. The slope is the least-squares fit over the points whose
``ts`` lies in ``[ts - window_s, ts]``; it raises at ≥ ``rate_c_per_min`` with at least
``min_readings`` points spanning ``min_span_s``, and clears once a fit over at least two points
gives a slope below ``clear_rate_c_per_min``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from devices import ElectricalPayload, Reading
from rules._family import (
    NO_TS,
    Array,
    Batch,
    Cols,
    Column,
    Family,
    Floats,
    KindView,
    Small,
    exact,
    fault_flags,
    floats,
    machine_columns,
    per_device,
    positions,
    quiet_step,
)
from rules._hit import Hit, duration, held_for, num

KIND = "electrical"
RING = 16


def extract(readings: Sequence[Reading]) -> dict[str, Array]:
    payloads: list[ElectricalPayload] = [r.payload for r in readings]  # type: ignore[misc]
    return {
        "residual_ma": floats([p.residual_ma for p in payloads]),
        "temp_c_max": floats([max(t) if (t := p.temp_c) else None for p in payloads]),
        "fault": fault_flags(payloads),
    }


class ElectricalRules(Family):
    state_key = "ElectricalRules"
    kinds = (KIND,)
    extract = staticmethod(extract)
    types = ("RESIDUAL_CURRENT_HIGH", "CABLE_OVERHEAT", "TEMP_RISE_FAST")

    quiet_rise: bool = True
    """Skip TEMP_RISE_FAST's fit in a batch where no device can raise or clear it (False:
    always fit; the equivalence test's reference)."""

    residual_limit: Floats
    residual_clear: Floats
    temp_limit: Floats
    temp_clear: Floats
    temp_critical: Floats

    def columns(self, kind: str) -> dict[str, Column]:
        return {
            **machine_columns("RESIDUAL_CURRENT_HIGH"),
            **machine_columns("CABLE_OVERHEAT"),
            "CABLE_OVERHEAT.level": Column(np.int8, 0),
            **machine_columns("TEMP_RISE_FAST"),
            "rise.ts": Column(np.int64, NO_TS, RING),
            "rise.temp": Column(np.float64, np.nan, RING),
            "rise.head": Column(np.int8, 0),
        }

    def configure(self, view: KindView, cols: Cols) -> None:
        cfg = self.ctx.config
        self.residual_limit = per_device(self.ctx, view, "residual_ma_limit", cfg.residual_current_high.limit)
        self.temp_limit = per_device(self.ctx, view, "temp_limit_c", cfg.cable_overheat.limit)
        # derived thresholds, once per (re)load rather than per batch
        self.residual_clear = exact(self.residual_limit * cfg.residual_current_high.clear_ratio)
        self.temp_clear = exact(self.temp_limit - cfg.cable_overheat.clear_delta)
        delta = cfg.cable_overheat.critical_delta
        self.temp_critical = np.full(view.n, np.inf) if delta is None else exact(self.temp_limit + delta)

    def process(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        self._residual(batch, cols, out)
        temp = batch.fields["temp_c_max"]
        has_temp = ~np.isnan(temp)
        if has_temp.any():
            self._overheat(batch, cols, temp, has_temp, out)
            self._rise(batch, cols, temp, has_temp, out)

    def process_small(self, small: Small, cols: Cols, out: list[Hit]) -> bool:
        """Quiet readings in plain Python: no condition raises or clears, no overheat escalates;
        pending ``for`` runs and the TEMP_RISE_FAST ring move as :meth:`process` moves them."""
        cfg = self.ctx.config
        residual_ms = cfg.residual_current_high.for_s * 1000
        overheat_ms = cfg.cable_overheat.for_s * 1000
        r_active, r_since = cols["RESIDUAL_CURRENT_HIGH.active"], cols["RESIDUAL_CURRENT_HIGH.since"]
        o_active, o_since = cols["CABLE_OVERHEAT.active"], cols["CABLE_OVERHEAT.since"]
        level = cols["CABLE_OVERHEAT.level"]
        moves: list[tuple[int, int, tuple[int, float, int, int] | None]] = []  # (entry, since, overheat)
        for reading, i in zip(small.readings, small.local, strict=True):
            payload: ElectricalPayload = reading.payload  # type: ignore[assignment]
            ts = reading.ts
            value = float(payload.residual_ma)
            r = quiet_step(
                r_active.item(i),
                r_since.item(i),
                ts,
                up=value >= self.residual_limit.item(i),
                down=value < self.residual_clear.item(i),
                valid=not math.isnan(value),
                for_ms=residual_ms,
            )
            if r is None:
                return False
            if not payload.temp_c:
                moves.append((i, r, None))
                continue
            temp = float(max(payload.temp_c))
            o = quiet_step(
                o_active.item(i),
                o_since.item(i),
                ts,
                up=temp >= self.temp_limit.item(i),
                down=temp < self.temp_clear.item(i),
                valid=True,
                for_ms=overheat_ms,
            )
            if o is None or (level.item(i) == 1 and temp >= self.temp_critical.item(i)):
                return False
            head = self._quiet_rise(cols, i, ts, temp)
            if head is None:
                return False
            moves.append((i, r, (o, temp, head, ts)))
        ring_ts, ring_temp, heads = cols["rise.ts"], cols["rise.temp"], cols["rise.head"]
        for i, r, heat in moves:
            if residual_ms > 0:
                r_since[i] = r
            if heat is None:
                continue
            o, temp, head, ts = heat
            if overheat_ms > 0:
                o_since[i] = o
            heads[i] = head
            ring_ts[i, head] = ts
            ring_temp[i, head] = temp
        return True

    def _quiet_rise(self, cols: Cols, i: int, ts: int, temp: float) -> int | None:
        """The ring's new head for a reading at ``ts`` when TEMP_RISE_FAST certainly neither
        raises nor clears with it; None when it might (then :meth:`_rise` decides).

        The fit here sums in another order than numpy's, so it is trusted only away from the
        thresholds by a bound on both sums' rounding errors; the count of points and the span,
        which decide most readings, are exact."""
        rule = self.ctx.config.temp_rise_fast
        window = int(rule.window_s * 1000)
        bucket = max(1, window // (RING - 1))
        head: int = cols["rise.head"].item(i)
        points = cols["rise.ts"][i].tolist()
        newest = points[head]
        if not (newest != NO_TS and newest // bucket == ts // bucket):
            head = (head + 1) % RING
        points[head] = ts
        # the points in [ts - window, ts] (an empty entry, NO_TS, never: numpy's age for it wraps)
        lo = max(ts - window, NO_TS + 1)
        inside = [j for j, t in enumerate(points) if lo <= t <= ts]
        n = len(inside)
        span_s = (min(points[j] for j in inside) - ts) * (1 / 60000.0) * -60.0
        active = cols["TEMP_RISE_FAST.active"].item(i)
        if not active and (n < rule.min_readings or span_s < rule.min_span_s):
            return head  # cannot raise, and nothing to clear
        temps = cols["rise.temp"][i].tolist()
        temps[head] = temp
        xs = [(points[j] - ts) * (1 / 60000.0) for j in inside]
        ys = [temps[j] for j in inside]
        sx, sy = sum(xs), sum(ys)
        sxx = sum(x * x for x in xs)
        sxy = sum(x * y for x, y in zip(xs, ys, strict=True))
        ax, ay = sum(abs(x) for x in xs), sum(abs(y) for y in ys)
        axy = sum(abs(x * y) for x, y in zip(xs, ys, strict=True))
        if not math.isfinite(sxy + sy):
            return None
        # each sum is within k·Σ|terms| of the exact one, in numpy's order as in this one
        k = (RING + 4) * 2.0**-53
        e_num = 2 * (n * k * axy + 2 * ax * k * ay + k * k * ax * ay + k * (n * abs(sxy) + abs(sx * sy)))
        e_den = 2 * (n * k * sxx + 2 * ax * k * ax + k * k * ax * ax + k * (n * sxx + sx * sx))
        num_, den = n * sxy - sx * sy, n * sxx - sx * sx
        if den - 2 * e_den > 1e-12:
            margin = 2 * (e_num + abs(num_) * e_den / (den - 2 * e_den)) / (den - 2 * e_den) + 1e-6
            slope = num_ / den
            up = slope + margin >= rule.rate_c_per_min  # might raise
            down = slope - margin < rule.clear_rate_c_per_min  # might clear
        elif den + 2 * e_den <= 1e-12:
            up = down = False  # no fit: neither
        else:
            return None
        if active and down:
            return None
        if not active and up and n >= rule.min_readings and span_s >= rule.min_span_s:
            return None
        return head

    def _residual(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        rule = self.ctx.config.residual_current_high
        value = batch.fields["residual_ma"]
        limit = self.residual_limit[batch.local]
        below = self.residual_clear[batch.local]
        self.condition(
            cols,
            out,
            "RESIDUAL_CURRENT_HIGH",
            batch,
            up=value >= limit,
            down=value < below,
            valid=~np.isnan(value),
            for_s=rule.for_s,
            value=value,
            threshold=limit,
            raised=lambda i: (
                f"Residual current {num(float(value[i]))} mA ≥ {num(float(limit[i]))} mA"
                f"{held_for(rule.for_s)}"
            ),
            cleared=lambda i: (
                f"Residual current {num(float(value[i]))} mA < {num(float(below[i]))} mA: cleared"
            ),
        )

    def _overheat(self, batch: Batch, cols: Cols, temp: Floats, valid: Array, out: list[Hit]) -> None:
        rule = self.ctx.config.cable_overheat
        limit = self.temp_limit[batch.local]
        critical_at = self.temp_critical[batch.local]
        critical = (temp >= critical_at) | (rule.severity == "critical")
        # NaN (a reading without temp_c) compares false
        up, down = self.condition(
            cols,
            out,
            "CABLE_OVERHEAT",
            batch,
            up=temp >= limit,
            down=temp < self.temp_clear[batch.local],
            valid=valid,
            for_s=rule.for_s,
            value=temp,
            threshold=limit,
            raised=lambda i: (
                f"Cable temperature {num(float(temp[i]))} °C ≥ {num(float(limit[i]))} °C"
                f"{held_for(rule.for_s)}"
            ),
            cleared=lambda i: (
                f"Cable temperature {num(float(temp[i]))} °C "
                f"< {num(float(limit[i]) - rule.clear_delta)} °C: cleared"
            ),
            severity=lambda i: "critical" if critical[i] else None,
        )
        level = cols["CABLE_OVERHEAT.level"]
        escalate = (level[batch.local] == 1) & (temp >= critical_at) & ~up & ~down
        level[batch.local[up]] = np.where(critical[up], 2, 1)
        level[batch.local[down]] = 0
        for i in positions(escalate):
            v, lim = float(temp[i]), float(limit[i])
            level[batch.local[i]] = 2
            self.ctx.hit(
                out,
                "CABLE_OVERHEAT",
                int(batch.slots[i]),
                "raise",
                value=v,
                threshold=lim,
                ts=int(batch.ts[i]),
                message=f"Cable temperature {num(v)} °C ≥ {num(float(critical_at[i]))} °C "
                f"(limit {num(lim)} °C + {num(rule.critical_delta or 0)}): critical",
                severity="critical",
            )

    def _rise(self, batch: Batch, cols: Cols, temp: Floats, has_temp: Array, out: list[Hit]) -> None:
        rule = self.ctx.config.temp_rise_fast
        window = int(rule.window_s * 1000)
        bucket = max(1, window // (RING - 1))
        sel = np.flatnonzero(has_temp)
        local, ts, value = batch.local[sel], batch.ts[sel], temp[sel]
        ring_ts, ring_temp, heads = cols["rise.ts"], cols["rise.temp"], cols["rise.head"]
        rows = np.arange(sel.size)
        head = heads[local].astype(np.int64)
        points = ring_ts[local]  # (m, RING) copy
        newest = points[rows, head]
        same = (newest != NO_TS) & (newest // bucket == ts // bucket)
        head = np.where(same, head, (head + 1) % RING)
        heads[local] = head
        ring_ts[local, head] = ts
        ring_temp[local, head] = value
        points[rows, head] = ts

        age = points - ts[:, None]  # ms before this reading (empty entries: hugely negative)
        inside = (age >= -window) & (age <= 0)
        count = inside.sum(axis=1)
        if (
            self.quiet_rise
            and not (count >= rule.min_readings).any()
            and not cols["TEMP_RISE_FAST.active"][local].any()
        ):
            return  # none can raise (too few points) or clear (none raised): the usual batch
        x = np.where(inside, age, 0) * (1 / 60000.0)  # minutes; this reading itself is at 0
        y = np.where(inside, ring_temp[local], 0.0)
        n = count.astype(np.float64)
        sx, sy = x.sum(axis=1), y.sum(axis=1)
        sxx, sxy = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", x, y)
        den = n * sxx - sx * sx
        fit = den > 1e-12
        # rounded: an exact 5 °C/min ramp must not fit as 4.9999999
        slope = np.round((n * sxy - sx * sy) / np.where(fit, den, 1.0), 6)
        span_s = x.min(axis=1) * -60.0
        up = fit & (n >= rule.min_readings) & (span_s >= rule.min_span_s) & (slope >= rule.rate_c_per_min)
        down = fit & (slope < rule.clear_rate_c_per_min)
        self.condition(
            cols,
            out,
            "TEMP_RISE_FAST",
            batch,
            rows=sel,
            up=up,
            down=down,
            value=slope,
            threshold=rule.rate_c_per_min,
            raised=lambda j: (
                f"Cable temperature rising {num(float(slope[j]))} °C/min over "
                f"{duration(float(span_s[j]))} (≥ {num(rule.rate_c_per_min)} °C/min), "
                f"now {num(float(value[j]))} °C"
            ),
            cleared=lambda j: (
                f"Cable temperature rise {num(float(slope[j]))} °C/min "
                f"< {num(rule.clear_rate_c_per_min)} °C/min: cleared"
            ),
        )
