"""LOW_BATTERY for the battery-powered kinds (smoke, water): battery_pct < 15, clears at ≥ 20."""

from __future__ import annotations

import numpy as np

from rules._family import Batch, Cols, Column, Family, machine_columns, positions, step
from rules._hit import Hit, num

TYPE = "LOW_BATTERY"


class BatteryRules(Family):
    kinds = ("smoke", "water")
    types = (TYPE,)

    def columns(self, kind: str) -> dict[str, Column]:
        return machine_columns(TYPE)

    def process(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        rule = self.ctx.config.low_battery
        battery = batch.fields["battery_pct"]
        valid = ~np.isnan(battery)
        up, down = step(
            cols,
            TYPE,
            batch.local,
            batch.ts,
            up=battery < rule.limit,
            down=battery >= rule.clear,
            valid=valid,
            for_ms=rule.for_s * 1000,
        )
        for i in positions(up):
            v = float(battery[i])
            self.ctx.hit(
                out,
                TYPE,
                int(batch.slots[i]),
                "raise",
                value=v,
                threshold=rule.limit,
                ts=int(batch.ts[i]),
                message=f"Battery {num(v)} % < {num(rule.limit)} %",
            )
        for i in positions(down):
            v = float(battery[i])
            self.ctx.hit(
                out,
                TYPE,
                int(batch.slots[i]),
                "clear",
                value=v,
                threshold=rule.limit,
                ts=int(batch.ts[i]),
                message=f"Battery {num(v)} % ≥ {num(rule.clear)} %: cleared",
            )
