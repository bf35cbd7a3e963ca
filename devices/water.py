"""Fire-water pressure monitors (hydrants, sprinkler mains, tanks)."""

from __future__ import annotations

from typing import ClassVar

from devices._kind import Fault, FieldValue, Finite, KindSpec, Payload, Percent, fault_field, put
from devices._lineproto import FLOAT_TEXT


class WaterPayload(Payload):
    kind: ClassVar[str] = "water"

    pressure_mpa: Finite
    level_m: Finite | None = None
    battery_pct: Percent | None = None
    fault: Fault = None

    def influx_fields(self) -> dict[str, FieldValue]:
        fields: dict[str, FieldValue] = {"pressure_mpa": float(self.pressure_mpa)}
        put(fields, "level_m", self.level_m)
        put(fields, "battery_pct", self.battery_pct)
        put(fields, "fault", self.fault or None)
        return fields

    def influx_fields_text(self) -> str:
        text = "pressure_mpa=" + FLOAT_TEXT[self.pressure_mpa]
        if self.level_m is not None:
            text += ",level_m=" + FLOAT_TEXT[self.level_m]
        if self.battery_pct is not None:
            text += ",battery_pct=" + FLOAT_TEXT[self.battery_pct]
        return text + fault_field(self.fault)


SPEC = KindSpec(
    name="water",
    payload=WaterPayload,
    sample={"ts": 1764583200000, "seq": 1, "pressure_mpa": 0.32, "level_m": 2.4, "battery_pct": 64},
    heartbeat_s=300,
    overrides=("min_pressure_mpa", "max_pressure_mpa", "heartbeat_s"),
)
