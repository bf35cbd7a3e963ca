"""Electrical-fire monitoring units: residual current, cable temperatures, phase currents."""

from __future__ import annotations

from operator import add
from typing import Annotated, ClassVar

from pydantic import Field

from devices._kind import Fault, FieldValue, Finite, KindSpec, Payload, fault_field, put
from devices._lineproto import FLOAT_TEXT

_TEMP_KEYS = tuple(f"temp_c_{i}" for i in range(1, 9))
_TEMP_KEYS_EQ = tuple(f",{key}=" for key in _TEMP_KEYS)
_float_text = FLOAT_TEXT.__getitem__
Channels = Annotated[list[Finite], Field(min_length=1, max_length=8)]


class ElectricalPayload(Payload):
    kind: ClassVar[str] = "electrical"

    residual_ma: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    temp_c: Channels | None = None
    current_a: Channels | None = None
    arc_count: Annotated[int, Field(ge=0, le=2**53)] | None = None
    fault: Fault = None

    @property
    def temp_c_max(self) -> float | None:
        return max(self.temp_c) if self.temp_c else None

    def influx_fields(self) -> dict[str, FieldValue]:
        fields: dict[str, FieldValue] = {"residual_ma": float(self.residual_ma)}
        temps = self.temp_c
        if temps:
            fields["temp_c_max"] = float(max(temps))
            for key, value in zip(_TEMP_KEYS, temps, strict=False):
                fields[key] = float(value)
        if self.current_a:
            fields["current_a_max"] = float(max(self.current_a))
        put(fields, "arc_count", self.arc_count)
        put(fields, "fault", self.fault or None)
        return fields

    def influx_fields_text(self) -> str:
        text = "residual_ma=" + FLOAT_TEXT[self.residual_ma]
        temps = self.temp_c
        if temps:
            channels = map(add, _TEMP_KEYS_EQ, map(_float_text, temps))  # builtins only: no frame
            text += ",temp_c_max=" + FLOAT_TEXT[max(temps)] + "".join(channels)
        current = self.current_a
        if current:
            text += ",current_a_max=" + FLOAT_TEXT[max(current)]
        arcs = self.arc_count
        if arcs is not None:
            text += ",arc_count=" + (FLOAT_TEXT[arcs] if arcs else "0.0")  # an int: no -0.0
        return text + fault_field(self.fault)


SPEC = KindSpec(
    name="electrical",
    payload=ElectricalPayload,
    sample={
        "ts": 1764583200000,
        "seq": 1,
        "residual_ma": 42.0,
        "temp_c": [38.5, 41.0, 39.2],
        "current_a": [12.1, 10.4, 11.8],
        "arc_count": 0,
        "fault": None,
    },
    heartbeat_s=60,
    overrides=("residual_ma_limit", "temp_limit_c", "heartbeat_s"),
)
