"""How the simulated grid workers handle the events of their grids (a scenario's ``respond:`` block).

Every delay is in *scenario* seconds (a run at time scale X waits delay / X wall seconds), drawn
from a lognormal distribution given by its median and sigma (the standard deviation of its
logarithm: 68 % of the draws lie within median × e^±sigma). The defaults are sized against the
escalation deadlines (CONTRACT §8: critical 2 min, major 30 min, minor 8 h; they run on the
service's clock) and the reference district's "90 % handled within 8 hours":

- ``ack`` 45 s (sigma 0.8) after the event was raised: ~11 % of a normal worker's critical events
  are acknowledged late, practically no major or minor one;
- ``resolve`` 1 h (sigma 1.0) after the acknowledgement, ``close`` by a supervisor 2 h (sigma 1.0)
  after the resolution;
- ``ignore`` 3 % of the events are left alone (they escalate);
- ``slow``: 10 % of the workers take 3 × as long to acknowledge and to resolve (most of their
  critical events escalate); ``silent``: 2 % never answer (all their events escalate).
  Profiles are drawn per worker; supervisors always close, at the ``close`` delay.

Together: ~90 % of the events resolved within 8 h of being raised (see simulators/README.md).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from simulators._schema_base import Model, Seconds

PositiveSeconds = Annotated[Seconds, Field(gt=0)]
Share = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class Lognormal(Model):
    """A delay: lognormal with this ``median`` (scenario seconds) and ``sigma`` (of its log)."""

    distribution: Literal["lognormal"] = "lognormal"
    median: PositiveSeconds
    sigma: float = Field(default=0.8, ge=0, le=3, allow_inf_nan=False)

    @property
    def mu(self) -> float:
        """The mean of the delay's logarithm."""
        return math.log(self.median)


class SlowWorkers(Model):
    """A share of the workers who take ``factor`` times as long to acknowledge and to resolve."""

    share: Share = 0.1
    factor: float = Field(default=3.0, ge=1, le=1000, allow_inf_nan=False)


class RespondPolicy(Model):
    """What the simulated workers do with the alerts of their grids; defaults in the module doc."""

    ack: Lognormal = Lognormal(median=45.0, sigma=0.8)
    """Raised → acknowledged (by a worker of the event's grid)."""
    resolve: Lognormal = Lognormal(median=3600.0, sigma=1.0)
    """Acknowledged → resolved (by the same worker)."""
    close: Lognormal = Lognormal(median=7200.0, sigma=1.0)
    """Resolved → closed (by a supervisor of the grid, else of the district)."""
    ignore: Share = 0.03
    """Share of the events nobody acts on: they escalate."""
    slow: SlowWorkers = SlowWorkers()
    silent: Share = 0.02
    """Share of the workers who never answer."""
    seed: int = 1
    """Same seed, same worker profiles and the same decisions for the same events."""
    linger: Seconds = 60.0
    """Wall seconds, at most, that ``simulate run`` keeps acting after its traffic ends (until
    nothing is scheduled any more)."""

    @model_validator(mode="after")
    def _profiles_fit(self) -> RespondPolicy:
        if self.slow.share + self.silent > 1:
            raise ValueError(
                f"slow.share {self.slow.share:g} and silent {self.silent:g} add up to more than 1"
            )
        return self


def _enabled(value: object) -> object:
    """``respond: true`` is the defaults, ``respond: false`` (or nothing) none."""
    if value is True:
        return {}
    if value is False:
        return None
    return value


RespondBlock = Annotated[RespondPolicy | None, BeforeValidator(_enabled)]
"""A scenario's ``respond:``: a mapping (missing keys take the defaults), ``true``, or nothing."""
