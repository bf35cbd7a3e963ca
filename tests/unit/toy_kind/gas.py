"""A fifth device kind for the toy-kind test: a combustible-gas detector (copied into devices/)."""

from __future__ import annotations

from typing import ClassVar

from devices._kind import Fault, FieldValue, Finite, KindSpec, Payload, Percent, put


class GasPayload(Payload):
    kind: ClassVar[str] = "gas"

    lel_pct: Finite
    battery_pct: Percent | None = None
    fault: Fault = None

    def influx_fields(self) -> dict[str, FieldValue]:
        fields: dict[str, FieldValue] = {"lel_pct": float(self.lel_pct)}
        put(fields, "battery_pct", self.battery_pct)
        put(fields, "fault", self.fault or None)
        return fields


SPEC = KindSpec(
    name="gas",
    payload=GasPayload,
    sample={"ts": 1764583200000, "seq": 1, "lel_pct": 2.0, "battery_pct": 80},
    heartbeat_s=600,
    overrides=("heartbeat_s",),
)
