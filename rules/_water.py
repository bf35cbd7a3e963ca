"""Fire-water pressure monitors: LOW_PRESSURE, PRESSURE_LOSS and HIGH_PRESSURE."""

from __future__ import annotations

from collections.abc import Sequence

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
    exact,
    fault_flags,
    floats,
    machine_columns,
    per_device,
    positions,
    step,
)
from rules._hit import Hit, duration, num

KIND = "water"


def extract(readings: Sequence[Reading]) -> dict[str, Array]:
    payloads: list[WaterPayload] = [r.payload for r in readings]  # type: ignore[misc]
    return {
        "pressure_mpa": floats([p.pressure_mpa for p in payloads]),
        "battery_pct": floats([p.battery_pct for p in payloads]),
        "fault": fault_flags(payloads),
    }


class WaterRules(Family):
    kinds = (KIND,)
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
        valid = ~np.isnan(p)
        local, ts, slots = batch.local, batch.ts, batch.slots

        low, lp, low_clear = self.min_pressure[local], cfg.low_pressure, self.low_clear[local]
        up, down = step(
            cols,
            "LOW_PRESSURE",
            local,
            ts,
            up=p < low,
            down=p >= low_clear,
            valid=valid,
            for_ms=lp.for_s * 1000,
        )
        self._emit(
            out,
            "LOW_PRESSURE",
            slots,
            ts,
            p=p,
            limit=low,
            up=up,
            down=down,
            op="<",
            suffix=f"{_for(lp.for_s)}",
            clear_op="≥",
            clear_at=low_clear,
        )

        loss = cfg.pressure_loss
        limit = np.full(p.size, loss.limit)
        up, down = step(
            cols,
            "PRESSURE_LOSS",
            local,
            ts,
            up=p < loss.limit,
            down=p >= loss.clear,
            valid=valid,
            for_ms=loss.for_s * 1000,
        )
        self._emit(
            out,
            "PRESSURE_LOSS",
            slots,
            ts,
            p=p,
            limit=limit,
            up=up,
            down=down,
            op="<",
            suffix=f"{_for(loss.for_s)}",
            clear_op="≥",
            clear_at=np.full(p.size, loss.clear),
        )

        high, hp, high_clear = self.max_pressure[local], cfg.high_pressure, self.high_clear[local]
        up, down = step(
            cols,
            "HIGH_PRESSURE",
            local,
            ts,
            up=p > high,
            down=p <= high_clear,
            valid=valid,
            for_ms=hp.for_s * 1000,
        )
        self._emit(
            out,
            "HIGH_PRESSURE",
            slots,
            ts,
            p=p,
            limit=high,
            up=up,
            down=down,
            op=">",
            suffix=f"{_for(hp.for_s)}",
            clear_op="≤",
            clear_at=high_clear,
        )

    def _emit(
        self,
        out: list[Hit],
        rule_type: str,
        slots: Array,
        ts: Array,
        *,
        p: Floats,
        limit: Floats,
        up: Array,
        down: Array,
        op: str,
        suffix: str,
        clear_op: str,
        clear_at: Floats,
    ) -> None:
        for i in positions(up):
            v, lim = float(p[i]), float(limit[i])
            self.ctx.hit(
                out,
                rule_type,
                int(slots[i]),
                "raise",
                value=v,
                threshold=lim,
                ts=int(ts[i]),
                message=f"Water pressure {num(v)} MPa {op} {num(lim)} MPa{suffix}",
            )
        for i in positions(down):
            v, lim = float(p[i]), float(limit[i])
            self.ctx.hit(
                out,
                rule_type,
                int(slots[i]),
                "clear",
                value=v,
                threshold=lim,
                ts=int(ts[i]),
                message=f"Water pressure {num(v)} MPa {clear_op} {num(float(clear_at[i]))} MPa: cleared",
            )


def _for(seconds: float) -> str:
    return f" for {duration(seconds)}" if seconds > 0 else ""
