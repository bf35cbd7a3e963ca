"""Every rule family and every kind's field extractor, in one explicit list.

Adding a device kind means adding its rules module here (its family names the kind, its field
extractor and any settings of new event types); ``tests/unit/rules`` fails when a kind has no
family or a CONTRACT §7 type has none, and ``tests/unit/toy_kind`` adds a fifth kind this way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from devices import Reading
from rules._battery import BatteryRules
from rules._electrical import ElectricalRules
from rules._family import Array, Family
from rules._fault import FaultRules
from rules._flooding import FloodingRules
from rules._offline import OfflineRules
from rules._patrol import PatrolRules
from rules._smoke import SmokeRules
from rules._water import WaterRules

Extractor = Callable[[Sequence[Reading]], dict[str, Array]]

FAMILIES: tuple[type[Family], ...] = (
    OfflineRules,
    FloodingRules,
    SmokeRules,
    BatteryRules,
    FaultRules,
    ElectricalRules,
    WaterRules,
    PatrolRules,
)


def _extractors() -> dict[str, Extractor]:
    found: dict[str, Extractor] = {}
    for family in FAMILIES:
        if family.extract is not Family.extract:
            for kind in family.kinds:
                if kind in found:
                    raise RuntimeError(f"two families extract the fields of kind {kind}")
                found[kind] = family.extract
    return found


EXTRACTORS: dict[str, Extractor] = _extractors()
"""Each kind's field extractor, from the family that owns the kind."""


def extractor(kind: str) -> Extractor:
    """The kind's extractor; kinds whose families read payloads directly (patrol) have none."""
    return EXTRACTORS.get(kind, Family.extract)
