"""Who handles an event, and when: the simulated workers' decisions, without any I/O.

Every decision is drawn from a random stream of its own, seeded by the policy's seed and a name
(``random.Random`` hashes a string seed with SHA-512, so the streams do not depend on the process):

- a worker's profile (``normal``, ``slow`` or ``silent``) from ``worker:{worker_id}``; supervisors
  are always ``normal`` (they close; a silent one would leave a whole block of grids unclosed);
- an event's handling from its identity as the ground truth names it (type, grid, device or site)
  and its occurrence in the run, never from its ``event_id`` (ingest makes those up), so the same
  scenario with the same seed gets the same decisions: left alone (the ``ignore`` share), else the
  worker who acts (one of the grid's listed workers of role ``worker``, else of its listed
  supervisors), the acknowledgement delay (× the slow factor), the resolution delay (× the slow
  factor) and the closing supervisor (listed on the grid, else on a grid of its district, else
  any) with the closing delay.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from devices import Registry
from simulators._respond_policy import Lognormal, RespondPolicy

Profile = Literal["normal", "slow", "silent"]
Reason = Literal["ignored", "silent_worker", "no_workers", "human"]
"""Why an event is left alone: the policy's ``ignore`` share, its worker never answers, or its
grid lists no workers."""
EventKey = tuple[str, str, str]
"""(type, grid_id, device_id — or site_id for FIRE_CONFIRMED), as the ground truth names events."""


def event_key(event: Mapping[str, Any]) -> EventKey:
    """The ground truth's identity of an event JSON (CONTRACT §8)."""
    who = event.get("device_id") or event.get("site_id") or ""
    return (str(event.get("type", "")), str(event.get("grid_id", "")), str(who))


@dataclass(frozen=True, slots=True)
class Handling:
    """An event a worker takes: delays in scenario seconds."""

    worker_id: str
    profile: Profile
    ack_s: float
    """After the event was raised."""
    resolve_s: float
    """After the acknowledgement's result."""
    closer: str | None
    """The supervisor who closes it (None: the registry has no supervisor)."""
    close_s: float
    """After the resolution's result."""


@dataclass(frozen=True, slots=True)
class LeftAlone:
    reason: Reason
    worker_id: str | None = None
    """The silent worker, for ``silent_worker``."""


def draw(rng: random.Random, delay: Lognormal, factor: float = 1.0) -> float:
    """One delay (scenario seconds) of the ``delay`` distribution, times ``factor``."""
    return rng.lognormvariate(delay.mu, delay.sigma) * factor


class Handlers:
    """The decisions of one run: :meth:`decide` once per event, in the order they are first seen."""

    def __init__(
        self, registry: Registry, policy: RespondPolicy, humans: frozenset[str] = frozenset()
    ) -> None:
        """``humans``: workers played by people (the demo's invited users): the events of the grids
        they work are left to them, and they never close a simulated worker's event."""
        self.policy = policy
        self.humans = humans
        workers = registry.workers
        self.supervisors = sorted(
            w for w, worker in workers.items() if worker.is_supervisor and w not in humans
        )
        self._human_grids = {g.grid_id for g in registry.grids.values() if humans & set(g.workers)}
        self._takers: dict[str, tuple[str, ...]] = {}
        self._closers: dict[str, tuple[str, ...]] = {}
        by_district: dict[str, set[str]] = {}
        for grid in registry.grids.values():
            listed = [w for w in grid.workers if w in workers]
            plain = tuple(w for w in listed if not workers[w].is_supervisor)
            bosses = tuple(w for w in listed if workers[w].is_supervisor and w not in humans)
            self._takers[grid.grid_id] = () if humans & set(plain) else plain or bosses
            self._closers[grid.grid_id] = bosses
            by_district.setdefault(grid.district, set()).update(bosses)
        for grid in registry.grids.values():
            if not self._closers[grid.grid_id]:
                self._closers[grid.grid_id] = tuple(sorted(by_district.get(grid.district, ()))) or tuple(
                    self.supervisors
                )
        self.profiles: dict[str, Profile] = {
            w: "normal" if worker.is_supervisor else self._profile(w) for w, worker in workers.items()
        }
        self._seen: Counter[EventKey] = Counter()

    def _rng(self, name: str) -> random.Random:
        return random.Random(f"firegrid-respond:{self.policy.seed}:{name}")

    def _profile(self, worker_id: str) -> Profile:
        u = self._rng(f"worker:{worker_id}").random()
        if u < self.policy.silent:
            return "silent"
        if u < self.policy.silent + self.policy.slow.share:
            return "slow"
        return "normal"

    def _worked_by_humans(self, grid_id: str) -> bool:
        return grid_id in self._human_grids

    def takers(self, grid_id: str) -> tuple[str, ...]:
        """The workers who may take the grid's events (its listed workers, else supervisors)."""
        return self._takers.get(grid_id, ())

    def decide(self, key: EventKey) -> Handling | LeftAlone:
        """The handling of the next occurrence of the event ``key`` in this run."""
        occurrence = self._seen[key]
        self._seen[key] += 1
        kind, grid_id, who = key
        rng = self._rng(f"event:{kind}:{grid_id}:{who}:{occurrence}")
        ignored = rng.random() < self.policy.ignore
        takers = self.takers(grid_id)
        if not takers:
            return LeftAlone("human" if self._worked_by_humans(grid_id) else "no_workers")
        if ignored:
            return LeftAlone("ignored")
        worker = takers[rng.randrange(len(takers))]
        profile = self.profiles[worker]
        if profile == "silent":
            return LeftAlone("silent_worker", worker)
        factor = self.policy.slow.factor if profile == "slow" else 1.0
        ack_s = draw(rng, self.policy.ack, factor)
        resolve_s = draw(rng, self.policy.resolve, factor)
        closers = self._closers.get(grid_id, ())
        closer = closers[rng.randrange(len(closers))] if closers else None
        close_s = draw(rng, self.policy.close)
        return Handling(worker, profile, ack_s, resolve_s, closer, close_s)
