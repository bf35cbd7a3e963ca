"""Every rule family and every kind's field extractor, in one explicit list.

Adding a device kind means adding its rules module here; ``tests/unit/rules`` fails when a kind
has no extractor or a CONTRACT §7 type has no family.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from devices import Reading
from rules import _electrical, _smoke, _water
from rules._battery import BatteryRules
from rules._electrical import ElectricalRules
from rules._family import Array, Family
from rules._fault import FaultRules
from rules._offline import OfflineRules
from rules._patrol import PatrolRules
from rules._smoke import SmokeRules
from rules._water import WaterRules

Extractor = Callable[[Sequence[Reading]], dict[str, Array]]

FAMILIES: tuple[type[Family], ...] = (
    OfflineRules,
    SmokeRules,
    BatteryRules,
    FaultRules,
    ElectricalRules,
    WaterRules,
    PatrolRules,
)


def _no_fields(readings: Sequence[Reading]) -> dict[str, Array]:
    return {}


EXTRACTORS: dict[str, Extractor] = {
    "smoke": _smoke.extract,
    "electrical": _electrical.extract,
    "water": _water.extract,
    "patrol": _no_fields,  # the patrol family reads its (few) payloads directly
}
