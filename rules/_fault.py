"""DEVICE_FAULT: a kind that reports ``fault`` (smoke, electrical, water) raises while it is non-empty.

Patrol tags carry no fault field, so they never raise it. A payload without ``fault`` means
null (CONTRACT §4), which clears.
"""

from __future__ import annotations

import numpy as np

from rules._family import Batch, Cols, Column, Family, machine_columns, positions, step
from rules._hit import Hit

TYPE = "DEVICE_FAULT"


class FaultRules(Family):
    kinds = ("smoke", "electrical", "water")
    types = (TYPE,)

    def columns(self, kind: str) -> dict[str, Column]:
        return machine_columns(TYPE)

    def process(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        fault = batch.fields["fault"]
        valid = np.ones(fault.size, dtype=np.bool_)
        up, down = step(
            cols,
            TYPE,
            batch.local,
            batch.ts,
            up=fault,
            down=~fault,
            valid=valid,
            for_ms=self.ctx.config.device_fault.for_s * 1000,
        )
        for i in positions(up):
            text = getattr(batch.readings[i].payload, "fault", None) or ""
            self.ctx.hit(
                out,
                TYPE,
                int(batch.slots[i]),
                "raise",
                value=None,
                threshold=None,
                ts=int(batch.ts[i]),
                message=f"Device fault: {text}",
            )
        for i in positions(down):
            self.ctx.hit(
                out,
                TYPE,
                int(batch.slots[i]),
                "clear",
                value=None,
                threshold=None,
                ts=int(batch.ts[i]),
                message="Device fault cleared",
            )
