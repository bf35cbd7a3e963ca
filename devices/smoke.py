"""Wireless smoke detectors."""

from __future__ import annotations

from typing import ClassVar

from devices._kind import Fault, FieldValue, Finite, KindSpec, Payload, Percent, fault_field, put
from devices._lineproto import FLOAT_TEXT


class SmokePayload(Payload):
    kind: ClassVar[str] = "smoke"

    alarm: bool
    obscuration_db_m: Finite | None = None
    battery_pct: Percent | None = None
    rssi_dbm: Finite | None = None
    tamper: bool | None = None
    fault: Fault = None

    def influx_fields(self) -> dict[str, FieldValue]:
        fields: dict[str, FieldValue] = {"alarm": self.alarm}
        put(fields, "obscuration_db_m", self.obscuration_db_m)
        put(fields, "battery_pct", self.battery_pct)
        put(fields, "rssi_dbm", self.rssi_dbm)
        put(fields, "tamper", self.tamper)
        put(fields, "fault", self.fault or None)
        return fields

    def influx_fields_text(self) -> str:
        text = "alarm=true" if self.alarm else "alarm=false"
        if self.obscuration_db_m is not None:
            text += ",obscuration_db_m=" + FLOAT_TEXT[self.obscuration_db_m]
        if self.battery_pct is not None:
            text += ",battery_pct=" + FLOAT_TEXT[self.battery_pct]
        if self.rssi_dbm is not None:
            text += ",rssi_dbm=" + FLOAT_TEXT[self.rssi_dbm]
        if self.tamper is not None:
            text += ",tamper=true" if self.tamper else ",tamper=false"
        return text + fault_field(self.fault)


SPEC = KindSpec(
    name="smoke",
    payload=SmokePayload,
    sample={
        "ts": 1764583200000,
        "seq": 1,
        "alarm": False,
        "obscuration_db_m": 0.02,
        "battery_pct": 87,
        "rssi_dbm": -71,
        "tamper": False,
        "fault": None,
    },
    heartbeat_s=3600,
    overrides=("heartbeat_s",),
)
