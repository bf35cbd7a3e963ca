"""LOW_BATTERY for the kinds whose payload reports ``battery_pct``: below 15, clears at ≥ 20."""

from __future__ import annotations

import math

import numpy as np

from devices import KINDS, Reading
from rules._family import Batch, Cols, Column, Family, Small, machine_columns, quiet_condition
from rules._hit import Hit, num

TYPE = "LOW_BATTERY"


class BatteryRules(Family):
    state_key = "BatteryRules"
    kinds = tuple(spec.name for spec in KINDS if spec.has_battery)
    types = (TYPE,)

    def columns(self, kind: str) -> dict[str, Column]:
        return machine_columns(TYPE)

    def process(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        rule = self.ctx.config.low_battery
        battery = batch.fields["battery_pct"]
        self.condition(
            cols,
            out,
            TYPE,
            batch,
            up=battery < rule.limit,
            down=battery >= rule.clear,
            valid=~np.isnan(battery),
            for_s=rule.for_s,
            value=battery,
            threshold=rule.limit,
            raised=lambda i: f"Battery {num(float(battery[i]))} % < {num(rule.limit)} %",
            cleared=lambda i: f"Battery {num(float(battery[i]))} % ≥ {num(rule.clear)} %: cleared",
        )

    def process_small(self, small: Small, cols: Cols, out: list[Hit]) -> bool:
        rule = self.ctx.config.low_battery

        def condition(reading: Reading) -> tuple[bool, bool, bool]:
            value = getattr(reading.payload, "battery_pct", None)
            b = math.nan if value is None else float(value)
            return b < rule.limit, b >= rule.clear, value is not None

        return quiet_condition(small, cols, TYPE, rule.for_s, condition)
