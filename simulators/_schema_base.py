"""What every model of the scenario files shares: durations in seconds, and the strict base model.

Kept apart from ``_scenario_schema`` so that the models of a scenario's ``respond:`` block
(``_respond_policy``) use the same durations without importing the step models.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _seconds(value: object) -> object:
    """Accept 90, 1.5, "90s", "5m", "26h", "2d" (seconds of simulated time)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration (use a number of seconds or e.g. 90s, 5m, 2h, 1d)")
        return float(match.group(1)) * _UNIT_S[match.group(2)]
    return value


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0, allow_inf_nan=False)]


class Model(BaseModel):
    """Frozen, and unknown keys are errors (a typo in a scenario file must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
