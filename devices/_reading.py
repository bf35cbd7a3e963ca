"""A validated reading: what ingest hands to storage and to the rules engine."""

from __future__ import annotations

from dataclasses import dataclass

from devices._kind import Payload


@dataclass(frozen=True, slots=True)
class Reading:
    slot: int
    """The device's slot in the registry (index into per-device state arrays)."""
    device_id: str
    ts: int
    """Epoch milliseconds: the device's ``ts``, or the time of receipt when it sent none."""
    payload: Payload

    @property
    def kind(self) -> str:
        return self.payload.kind
