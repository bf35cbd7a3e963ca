"""A validated reading: what ingest hands to storage and to the rules engine."""

from __future__ import annotations

from dataclasses import dataclass

from devices._kind import Payload


@dataclass(slots=True, unsafe_hash=True)
class Reading:
    """Treat as immutable. Not ``frozen``: a frozen dataclass's ``__init__`` sets each field
    through ``object.__setattr__``, which made building one 3-4 times as costly, and ingest
    builds one per valid message (issue 17). Equality and hashing are by value, as before."""

    slot: int
    """The device's slot in the registry (index into per-device state arrays)."""
    device_id: str
    ts: int
    """Epoch milliseconds: the device's ``ts``, or the time of receipt when it sent none."""
    payload: Payload

    @property
    def kind(self) -> str:
        return self.payload.kind
