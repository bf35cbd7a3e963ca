"""Fire-water pressure monitors: LOW_PRESSURE, PRESSURE_LOSS and HIGH_PRESSURE."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from devices import Reading, WaterPayload
from rules._family import (
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
    quiet_step,
)
from rules._hit import Hit, held_for, num

KIND = "water"


def extract(readings: Sequence[Reading]) -> dict[str, Array]:
    payloads: list[WaterPayload] = [r.payload for r in readings]  # type: ignore[misc]
    return {
        "pressure_mpa": floats([p.pressure_mpa for p in payloads]),
        "battery_pct": floats([p.battery_pct for p in payloads]),
        "fault": fault_flags(payloads),
    }


class WaterRules(Family):
    state_key = "WaterRules"
    kinds = (KIND,)
    extract = staticmethod(extract)
    types = ("LOW_PRESSURE", "PRESSURE_LOSS", "HIGH_PRESSURE")

    min_pressure: Floats
    max_pressure: Floats
    low_clear: Floats
    high_clear: Floats

    def columns(self, kind: str) -> dict[str, Column]:
        return {
            **machine_columns("LOW_PRESSURE"),
            **machine_columns("PRESSURE_LOSS"),
            **machine_columns("HIGH_PRESSURE"),
        }

    def configure(self, view: KindView, cols: Cols) -> None:
        cfg = self.ctx.config
        self.min_pressure = per_device(self.ctx, view, "min_pressure_mpa", cfg.low_pressure.limit)
        self.max_pressure = per_device(self.ctx, view, "max_pressure_mpa", cfg.high_pressure.limit)
        self.low_clear = exact(self.min_pressure + cfg.low_pressure.clear_delta)
        self.high_clear = exact(self.max_pressure - cfg.high_pressure.clear_delta)

    def process(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        cfg = self.ctx.config
        p = batch.fields["pressure_mpa"]
        valid = ~np.isnan(p)  # NaN compares false both ways: a reading without pressure holds
        local = batch.local
        low, loss, high = cfg.low_pressure, cfg.pressure_loss, cfg.high_pressure
        below, above = (np.less, "<", np.greater_equal, "≥"), (np.greater, ">", np.less_equal, "≤")
        conditions = (  # rule, its settings, limit, clear level, raise and clear tests with their signs
            ("LOW_PRESSURE", low.for_s, self.min_pressure[local], self.low_clear[local], below),
            ("PRESSURE_LOSS", loss.for_s, np.full(p.size, loss.limit), np.full(p.size, loss.clear), below),
            ("HIGH_PRESSURE", high.for_s, self.max_pressure[local], self.high_clear[local], above),
        )
        for rule_type, for_s, limit, clear_at, (violates, op, clears, clear_op) in conditions:
            raised, cleared = _messages(p, limit, clear_at, op, clear_op, for_s)
            self.condition(
                cols,
                out,
                rule_type,
                batch,
                up=violates(p, limit),
                down=clears(p, clear_at),
                valid=valid,
                for_s=for_s,
                value=p,
                threshold=limit,
                raised=raised,
                cleared=cleared,
            )

    def process_small(self, small: Small, cols: Cols, out: list[Hit]) -> bool:
        cfg = self.ctx.config
        low, loss, high = cfg.low_pressure, cfg.pressure_loss, cfg.high_pressure
        machines = [
            (cols[f"{t}.active"], cols[f"{t}.since"])
            for t in ("LOW_PRESSURE", "PRESSURE_LOSS", "HIGH_PRESSURE")
        ]
        fors = (low.for_s * 1000, loss.for_s * 1000, high.for_s * 1000)
        moves: list[tuple[int, int, int, int]] = []
        for reading, i in zip(small.readings, small.local, strict=True):
            p = float(reading.payload.pressure_mpa)  # type: ignore[attr-defined]
            valid = not math.isnan(p)
            tests = (
                (p < self.min_pressure.item(i), p >= self.low_clear.item(i)),
                (p < loss.limit, p >= loss.clear),
                (p > self.max_pressure.item(i), p <= self.high_clear.item(i)),
            )
            new: list[int] = []
            for (active, since), for_ms, (up, down) in zip(machines, fors, tests, strict=True):
                s = quiet_step(
                    active.item(i), since.item(i), reading.ts, up=up, down=down, valid=valid, for_ms=for_ms
                )
                if s is None:
                    return False
                new.append(s)
            moves.append((i, new[0], new[1], new[2]))
        for i, *new in moves:
            for (_, since), for_ms, s in zip(machines, fors, new, strict=True):
                if for_ms > 0:
                    since[i] = s
        return True


def _messages(
    p: Floats, limit: Floats, clear_at: Floats, op: str, clear_op: str, for_s: float
) -> tuple[Callable[[int], str], Callable[[int], str]]:
    def raised(i: int) -> str:
        return f"Water pressure {num(float(p[i]))} MPa {op} {num(float(limit[i]))} MPa{held_for(for_s)}"

    def cleared(i: int) -> str:
        return f"Water pressure {num(float(p[i]))} MPa {clear_op} {num(float(clear_at[i]))} MPa: cleared"

    return raised, cleared
