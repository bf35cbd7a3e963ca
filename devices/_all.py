"""Every device kind, in one explicit list (like Telegraf's plugins/inputs/all)."""

from __future__ import annotations

from devices import electrical, patrol, smoke, water
from devices._kind import KindSpec

KINDS: tuple[KindSpec, ...] = (smoke.SPEC, electrical.SPEC, water.SPEC, patrol.SPEC)
KIND_BY_NAME: dict[str, KindSpec] = {spec.name: spec for spec in KINDS}
KIND_CODE: dict[str, int] = {spec.name: code for code, spec in enumerate(KINDS)}
