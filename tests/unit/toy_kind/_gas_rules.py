"""GAS_LEAK for the toy gas kind (copied into rules/ as rules/_gas.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from devices import Reading
from rules._config import RuleSettings
from rules._family import Array, Batch, Cols, Column, Family, fault_flags, floats, machine_columns
from rules._hit import Hit, num


class GasLeakRule(RuleSettings):
    severity: str = "critical"  # type: ignore[assignment]
    limit: float = 20.0


def extract(readings: Sequence[Reading]) -> dict[str, Array]:
    payloads = [r.payload for r in readings]
    return {
        "lel_pct": floats([p.lel_pct for p in payloads]),  # type: ignore[attr-defined]
        "battery_pct": floats([p.battery_pct for p in payloads]),  # type: ignore[attr-defined]
        "fault": fault_flags(payloads),
    }


class GasRules(Family):
    state_key = "gas"
    kinds = ("gas",)
    extract = staticmethod(extract)
    types = ("GAS_LEAK",)
    settings: ClassVar[Mapping[str, type[RuleSettings]]] = {"GAS_LEAK": GasLeakRule}

    def columns(self, kind: str) -> dict[str, Column]:
        return machine_columns("GAS_LEAK")

    def process(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        rule = self.ctx.config.rule("GAS_LEAK")
        assert isinstance(rule, GasLeakRule)
        lel = batch.fields["lel_pct"]
        self.condition(
            cols,
            out,
            "GAS_LEAK",
            batch,
            up=lel >= rule.limit,
            down=lel < rule.limit,
            valid=~np.isnan(lel),
            for_s=0.0,
            value=lel,
            threshold=rule.limit,
            raised=lambda i: f"Gas {num(float(lel[i]))} % LEL",
            cleared=lambda i: "Gas cleared",
        )
