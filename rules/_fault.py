"""DEVICE_FAULT: a kind that reports ``fault`` (smoke, electrical, water) raises while it is non-empty.

Patrol tags carry no fault field, so they never raise it. A payload without ``fault`` means
null (CONTRACT §4), which clears.
"""

from __future__ import annotations

from devices import KINDS, Reading
from rules._family import Batch, Cols, Column, Family, Small, machine_columns, quiet_condition
from rules._hit import Hit

TYPE = "DEVICE_FAULT"


class FaultRules(Family):
    state_key = "FaultRules"
    kinds = tuple(spec.name for spec in KINDS if spec.has_fault)
    types = (TYPE,)

    def columns(self, kind: str) -> dict[str, Column]:
        return machine_columns(TYPE)

    def process(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        fault = batch.fields["fault"]
        self.condition(
            cols,
            out,
            TYPE,
            batch,
            up=fault,
            down=~fault,
            for_s=self.ctx.config.device_fault.for_s,
            value=None,
            threshold=None,
            raised=lambda i: f"Device fault: {getattr(batch.readings[i].payload, 'fault', None) or ''}",
            cleared=lambda i: "Device fault cleared",
        )

    def process_small(self, small: Small, cols: Cols, out: list[Hit]) -> bool:
        def condition(reading: Reading) -> tuple[bool, bool, bool]:
            fault = bool(getattr(reading.payload, "fault", None))
            return fault, not fault, True

        return quiet_condition(small, cols, TYPE, self.ctx.config.device_fault.for_s, condition)
