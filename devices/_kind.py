"""What every device kind provides: its payload model, its InfluxDB mapping and a sample."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from devices._lineproto import encode_trusted_fields, quote_string

FieldValue = float | bool | str
"""InfluxDB field types firegrid writes: numbers always as floats (PITFALLS: fixed field types)."""

MAX_BATCH = 1000
"""Elements of one gateway batch (CONTRACT §4)."""
MAX_PAYLOAD = 256 * 1024
"""Bytes of one uplink message (CONTRACT §4); larger ones are rejected as ``too_large``."""

Finite = Annotated[float, Field(allow_inf_nan=False)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Fault = Annotated[str | None, Field(default=None, max_length=200)]


class Payload(BaseModel):
    """Fields common to every uplink message (CONTRACT §4). Unknown fields are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, frozen=True)

    kind: ClassVar[str]
    has_influx_tags: ClassVar[bool] = False
    """Whether :meth:`influx_tags` can be non-empty (the encoder skips it otherwise)."""

    ts: int | None = Field(default=None, ge=0, le=2**53)
    seq: int | None = Field(default=None, ge=0, le=2**63 - 1)

    def influx_fields(self) -> dict[str, FieldValue]:
        """The fields of this reading's point; an absent optional field is not written."""
        raise NotImplementedError

    def influx_fields_text(self) -> str:
        """:meth:`influx_fields` as line protocol (``key=value,...``), exactly
        ``encode_trusted_fields(self.influx_fields())``: the kinds on ingest's hot path write it
        directly, without the dict."""
        return encode_trusted_fields(self.influx_fields())

    def influx_tags(self) -> Mapping[str, str]:
        """Tags beyond district/grid/site/device (patrol adds the worker)."""
        return {}

    @property
    def fault_text(self) -> str | None:
        """The device's fault report, when the kind has one and it is non-empty."""
        fault = getattr(self, "fault", None)
        return fault if isinstance(fault, str) and fault else None


def fault_field(fault: str | None) -> str:
    """The ``,fault="..."`` field of :meth:`Payload.influx_fields_text`, empty when absent."""
    return f",fault={quote_string(fault)}" if fault else ""


def put(fields: dict[str, FieldValue], name: str, value: float | bool | str | None) -> None:
    """Add ``value`` to ``fields`` unless it is absent; numbers become floats."""
    if value is None:
        return
    if isinstance(value, bool | str):
        fields[name] = value
    else:
        fields[name] = float(value)


@dataclass(frozen=True, slots=True)
class KindSpec:
    """Everything firegrid knows of one device kind; the rest of the code derives from it.

    Adding a kind means a module like ``devices/water.py`` with its ``SPEC`` (listed in
    ``devices/_all.py``), a rules module (listed in ``rules/_all.py``) and its sample here."""

    name: str
    """The kind's topic segment and InfluxDB measurement."""
    payload: type[Payload]
    sample: Mapping[str, Any]
    heartbeat_s: float | None
    """Default heartbeat for offline detection; ``None`` for kinds that are never offline."""
    overrides: tuple[str, ...] = ()
    """The per-device ``devices.csv`` columns this kind's rules read (CONTRACT §3)."""
    worker_field: str | None = None
    """A payload field that must name a worker of the registry (a patrol scan's ``worker_id``)."""

    def __post_init__(self) -> None:
        if self.heartbeat_s is not None and "heartbeat_s" not in self.overrides:
            raise ValueError(f"kind {self.name}: a kind with a heartbeat takes the heartbeat_s override")
        if self.worker_field is not None and self.worker_field not in self.payload.model_fields:
            raise ValueError(f"kind {self.name}: worker_field {self.worker_field} is not a payload field")

    @property
    def adapter(self) -> TypeAdapter[Any]:
        return _adapter(self.payload)

    @property
    def can_go_offline(self) -> bool:
        return self.heartbeat_s is not None

    @property
    def has_battery(self) -> bool:
        return "battery_pct" in self.payload.model_fields

    @property
    def has_fault(self) -> bool:
        return "fault" in self.payload.model_fields

    def worker_of(self, payload: Payload) -> str | None:
        """The worker a reading names, for kinds with a ``worker_field``."""
        if self.worker_field is None:
            return None
        value = getattr(payload, self.worker_field)
        return value if isinstance(value, str) else None


_ADAPTERS: dict[type[Payload], TypeAdapter[Any]] = {}


def _adapter(model: type[Payload]) -> TypeAdapter[Any]:
    """One message: a single object or a gateway batch (array of 1..MAX_BATCH objects)."""
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        batch = Annotated[list[model], Field(min_length=1, max_length=MAX_BATCH)]  # type: ignore[valid-type]
        adapter = TypeAdapter(model | batch)  # type: ignore[arg-type]
        _ADAPTERS[model] = adapter
    return adapter
