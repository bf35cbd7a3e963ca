"""The ``grid_index`` and ``grid_sla`` measurements (CONTRACT §12): tags district, grid; numbers as
floats (§6); a figure or score without a value (null) is not written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from devices import encode_line, series_key

INDEX_MEASUREMENT: Final = "grid_index"
SLA_MEASUREMENT: Final = "grid_sla"


def grid_line(
    measurement: str, district: str, grid_id: str, values: Mapping[str, int | float | None], ts_ms: int
) -> str | None:
    """One point, or None when no value is left."""
    fields: dict[str, float | bool | str] = {
        name: float(value) for name, value in values.items() if value is not None
    }
    if not fields:
        return None
    return encode_line(series_key(measurement, (("district", district), ("grid", grid_id))), fields, ts_ms)
