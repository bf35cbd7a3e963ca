"""How much fuzzing each run does: bounded and reproducible in ``make test``, large in ``make soak``.

``make test`` deselects ``@pytest.mark.soak``; ``make soak`` runs only those. The bounded runs are
derandomized (the same inputs on every machine); the soak runs draw fresh randomness every time
and print the seed of their random-bytes loops, so a failure can be replayed with
``FIREGRID_FUZZ_SEED=<seed>``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from hypothesis import HealthCheck, Phase, settings

BOUNDED_EXAMPLES: Final = 300
"""Hypothesis examples per structured property in ``make test``."""
BOUNDED_BYTES: Final = 2_000
"""Random-bytes inputs per target in ``make test``."""
SOAK_INPUTS: Final = 100_000
"""Inputs per target (at least) in ``make soak``."""
SOAK_ROUND: Final = 5_000
"""Hypothesis examples per round of a soak run (each round is a fresh engine: bounded memory)."""
SOAK_TIMEOUT_S: Final = 3_600

_HEALTH: Final = (HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much)

BOUNDED: Final = settings(
    max_examples=BOUNDED_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=_HEALTH,
    print_blob=True,
)
SOAK: Final = settings(
    max_examples=SOAK_ROUND,
    derandomize=False,
    database=None,
    deadline=None,
    suppress_health_check=_HEALTH,
    phases=(Phase.generate, Phase.shrink),
    print_blob=True,
)

BOUNDED_SEED: Final = 20_251_201


def soak_seed() -> int:
    """Fresh for every soak run unless ``FIREGRID_FUZZ_SEED`` names one (to replay a failure)."""
    fixed = os.environ.get("FIREGRID_FUZZ_SEED")
    return int(fixed) if fixed else random.SystemRandom().randrange(2**63)


@dataclass(slots=True)
class Tally:
    """Inputs fed to one target (a hypothesis example may carry several)."""

    inputs: int = 0
    started: float = field(default_factory=time.perf_counter)

    def add(self, count: int = 1) -> None:
        self.inputs += count

    def report(self, what: str) -> str:
        elapsed = time.perf_counter() - self.started
        return f"{what}: {self.inputs:,} inputs in {elapsed:.1f} s"


def soak(run_round: Callable[[], None], tally: Tally, what: str, minimum: int = SOAK_INPUTS) -> None:
    """Call ``run_round`` (a ``@given`` test under :data:`SOAK`) until ``minimum`` inputs ran."""
    while tally.inputs < minimum:
        run_round()
    print(tally.report(what))
