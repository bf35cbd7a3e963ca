"""NFC patrol checkpoint tags: each message is one scan of the tag by a grid worker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from devices._ids import Identifier
from devices._kind import FieldValue, KindSpec, Payload, put
from devices._lineproto import quote_string

Hazard = Annotated[str, Field(min_length=1, max_length=100)]


class PatrolPayload(Payload):
    kind: ClassVar[str] = "patrol"
    has_influx_tags: ClassVar[bool] = True

    worker_id: Identifier
    result: Literal["ok", "hazard"]
    hazards: Annotated[list[Hazard], Field(max_length=50)] | None = None
    note: Annotated[str, Field(max_length=2000)] | None = None

    def influx_fields(self) -> dict[str, FieldValue]:
        hazards = self.hazards or []
        fields: dict[str, FieldValue] = {"result": self.result, "hazard_count": float(len(hazards))}
        if hazards:
            fields["hazards"] = ",".join(hazards)
        put(fields, "note", self.note or None)
        return fields

    def influx_fields_text(self) -> str:
        hazards = self.hazards
        if not hazards:
            text = f'result="{self.result}",hazard_count=0.0'
        else:
            text = f'result="{self.result}",hazard_count={float(len(hazards))!r},hazards='
            text += quote_string(",".join(hazards))
        return (text + f",note={quote_string(self.note)}") if self.note else text

    def influx_tags(self) -> Mapping[str, str]:
        return {"worker": self.worker_id}


SPEC = KindSpec(
    name="patrol",
    payload=PatrolPayload,
    sample={
        "ts": 1764583200000,
        "seq": 1,
        "worker_id": "W0001",
        "result": "hazard",
        "hazards": ["blocked exit", "extinguisher expired"],
        "note": "stairwell B",
    },
    heartbeat_s=None,
    overrides=("patrol_interval_h",),
    worker_field="worker_id",
)
