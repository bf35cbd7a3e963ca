"""What the registry says of each grid: how many devices, of which abilities (from the kinds'
``KindSpec``: offline detection, battery, fault reports; patrol checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from devices import KINDS, RETIRED, Registry
from devices.patrol import SPEC as PATROL

CHECKPOINT_KIND: Final = PATROL.name
FAULT_KINDS: Final = frozenset(spec.name for spec in KINDS if spec.has_fault)
BATTERY_KINDS: Final = frozenset(spec.name for spec in KINDS if spec.has_battery)


@dataclass(frozen=True, slots=True)
class GridFleet:
    """Registered devices of one grid."""

    devices: int = 0
    """All kinds (the denominator of "per device")."""
    monitored: int = 0
    """Kinds that report on a heartbeat and so can go offline (smoke, electrical, water)."""
    with_fault: int = 0
    """Kinds that report faults."""
    with_battery: int = 0
    """Battery-powered kinds."""
    checkpoints: int = 0
    """Patrol checkpoint tags."""


def fleet_by_grid(registry: Registry) -> dict[str, GridFleet]:
    """Every grid of the registry (those without devices too), plus any other grid a device
    lies in (``_unassigned``)."""
    active = registry.kind_code != RETIRED
    grids = registry.grid_idx[active]
    kinds = registry.kind_code[active].astype(np.int64)
    n_grids, n_kinds = len(registry.grid_names), len(KINDS)
    counts = np.bincount(grids * n_kinds + kinds, minlength=n_grids * n_kinds).reshape(n_grids, n_kinds)

    def total(wanted: list[bool]) -> npt.NDArray[np.int64]:
        summed: npt.NDArray[np.int64] = counts[:, np.array(wanted, dtype=bool)].sum(axis=1)
        return summed

    columns = {
        "devices": counts.sum(axis=1),
        "monitored": total([spec.can_go_offline for spec in KINDS]),
        "with_fault": total([spec.has_fault for spec in KINDS]),
        "with_battery": total([spec.has_battery for spec in KINDS]),
        "checkpoints": total([spec.name == CHECKPOINT_KIND for spec in KINDS]),
    }
    out: dict[str, GridFleet] = {}
    for index, grid_id in enumerate(registry.grid_names):
        if grid_id in registry.grids or columns["devices"][index]:
            out[grid_id] = GridFleet(**{name: int(values[index]) for name, values in columns.items()})
    return out
