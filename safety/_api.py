"""``GET /sla`` and ``GET /index`` (CONTRACT §12) and the points behind ``grid_index`` and
``grid_sla``: the selection of grids a user may see, the events read at ``at``, the figures and
the index per grid.

Who sees what (the rule of ``/events``, §10, as a :class:`Scope`): a worker the grids that list
it; supervisors and service accounts every grid; a station the grids of its district, and in
``/sla`` only the critical events routed to it (the events it may see). ``/index`` is a grid's
summary, not its events: a station sees the index of its district's grids.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from devices import Registry
from safety._figures import Figures, Handling, figures
from safety._fleet import GridFleet, fleet_by_grid
from safety._history import EventAt, History, Selection
from safety._index import HANDLING_WINDOW_MS, GridEvents, GridIndex, grid_index
from safety._points import INDEX_MEASUREMENT, SLA_MEASUREMENT, grid_line
from safety._schedule import Cancelled, never
from safety._weights import Weights

T = TypeVar("T")

DEFAULT_SLA_WINDOW_MS: Final = 30 * 86_400_000
"""``/sla`` without ``since``: the 30 days before ``at``."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Scope:
    """What a principal may see (from ``access.Visibility``)."""

    grids: frozenset[str] | None = None
    """Only these grids (None: all)."""
    station: str | None = None
    """A station: its district's grids, its own critical events."""


EVERYTHING: Final = Scope()


@dataclass(frozen=True, slots=True)
class SlaQuery:
    district: str | None = None
    grid: str | None = None
    type: str | None = None
    since_ms: int | None = None
    """``raised_at >= since``; default: ``at`` − 30 days."""
    until_ms: int | None = None
    """``raised_at < until``; default: no bound."""
    at_ms: int | None = None
    """Default: now."""


@dataclass(frozen=True, slots=True)
class IndexQuery:
    district: str | None = None
    grid: str | None = None
    at_ms: int | None = None
    """Default: now (an extension of §12: a past ``at`` gives the index as it was then)."""


class Safety:
    """Figures and index from the event store at ``db_path`` and the current registry."""

    def __init__(
        self,
        db_path: Path,
        registry: Callable[[], Registry],
        weights: Weights,
        *,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        """``clock``: the service clock (epoch ms), the default ``at``."""
        self.history = History(db_path)
        self.weights = weights
        self._registry = registry
        self._clock = clock
        self._fleet: tuple[Registry, dict[str, GridFleet]] | None = None

    def close(self) -> None:
        self.history.close()

    # -- selections --------------------------------------------------------------------------------

    def _fleets(self, registry: Registry) -> dict[str, GridFleet]:
        cached = self._fleet
        if cached is None or cached[0] is not registry:
            cached = self._fleet = (registry, fleet_by_grid(registry))
        return cached[1]

    def _grids(
        self, registry: Registry, scope: Scope, district: str | None, grid: str | None
    ) -> dict[str, str]:
        """The registry's grids of the selection that ``scope`` may see: grid_id → district."""
        grids = {grid_id: g.district for grid_id, g in registry.grids.items()}
        if scope.station is not None:
            home = next((s.district for s in registry.stations if s.station_id == scope.station), None)
            grids = {g: d for g, d in grids.items() if d == home}
        if scope.grids is not None:
            grids = {g: d for g, d in grids.items() if g in scope.grids}
        if district is not None:
            grids = {g: d for g, d in grids.items() if d == district}
        if grid is not None:
            grids = {g: d for g, d in grids.items() if g == grid}
        return grids

    @staticmethod
    def _selection(
        scope: Scope, grids: Mapping[str, str], district: str | None, grid: str | None, event_type: str | None
    ) -> Selection | None:
        """The events of the selection ``scope`` may see; None: none at all."""
        allowed = scope.grids
        if scope.station is not None:
            allowed = frozenset(grids)  # its district's grids (already narrowed to the selection)
        if grid is not None:
            if allowed is not None and grid not in allowed:
                return None
            allowed = frozenset({grid})
        if allowed is not None and not allowed:
            return None
        return Selection(district=district, grids=allowed, type=event_type, station=scope.station)

    # -- /sla ------------------------------------------------------------------------------------

    def sla(self, scope: Scope, query: SlaQuery) -> dict[str, Any]:
        at = self._clock() if query.at_ms is None else query.at_ms
        since = at - DEFAULT_SLA_WINDOW_MS if query.since_ms is None else query.since_ms
        total, grids = self._figures(scope, query, since, at)
        return {
            "at": at,
            "since": since,
            "until": query.until_ms,
            "total": total.to_dict(),
            "grids": {grid_id: grid.to_dict() for grid_id, (_, grid) in sorted(grids.items())},
        }

    def _figures(
        self, scope: Scope, query: SlaQuery, since: int, at: int
    ) -> tuple[Figures, dict[str, tuple[str, Figures]]]:
        """The total, and grid_id → (district, figures) of every grid of the selection."""
        grids = self._grids(self._registry(), scope, query.district, query.grid)
        selection = self._selection(scope, grids, query.district, query.grid, query.type)
        events = (
            [] if selection is None else self.history.raised_between(selection, since, query.until_ms, at)
        )
        for event in events:  # events of grids the registry no longer has (or _unassigned)
            grids.setdefault(event.grid_id, event.district)
        handlings: dict[str, list[Handling]] = defaultdict(list)
        for event in events:
            handlings[event.grid_id].append(event.handling)
        total = figures(itertools.chain.from_iterable(handlings.values()), at)
        return total, {
            grid_id: (district, figures(handlings.get(grid_id, ()), at))
            for grid_id, district in grids.items()
        }

    def sla_lines(self, since_ms: int, until_ms: int, cancelled: Callable[[], bool] = never) -> Iterator[str]:
        """``grid_sla`` points of every grid for the events raised in ``[since, until)``, evaluated
        at ``until`` and timed at ``since`` (recomputing them gives the same points), one grid at
        a time. Raises :class:`Cancelled` once ``cancelled()`` is true."""
        query = SlaQuery(since_ms=since_ms, until_ms=until_ms, at_ms=until_ms)
        _, grids = self._figures(EVERYTHING, query, since_ms, until_ms)
        for grid_id, (district, grid) in checking(sorted(grids.items()), cancelled):
            if (line := grid_line(SLA_MEASUREMENT, district, grid_id, grid.to_dict(), since_ms)) is not None:
                yield line

    # -- /index ----------------------------------------------------------------------------------

    def index(self, scope: Scope, query: IndexQuery) -> dict[str, Any]:
        at = self._clock() if query.at_ms is None else query.at_ms
        return {
            "at": at,
            "weights": self.weights.source,
            "grids": {
                grid.grid_id: grid.to_dict() for grid in self._indexes(scope, query.district, query.grid, at)
            },
        }

    def index_lines(self, at_ms: int, cancelled: Callable[[], bool] = never) -> Iterator[str]:
        """``grid_index`` points of every grid of the registry at ``at_ms`` (timed at ``at_ms``),
        one grid at a time (a province has ~115,000). Raises :class:`Cancelled` once
        ``cancelled()`` is true."""
        for g in self._indexes(EVERYTHING, None, None, at_ms, cancelled):
            if (line := grid_line(INDEX_MEASUREMENT, g.district, g.grid_id, g.fields(), at_ms)) is not None:
                yield line

    def _indexes(
        self,
        scope: Scope,
        district: str | None,
        grid: str | None,
        at: int,
        cancelled: Callable[[], bool] = never,
    ) -> Iterator[GridIndex]:
        registry = self._registry()
        grids = self._grids(registry, scope, district, grid)
        if not grids:
            return
        # every event of these grids (a station's index is of its grids, not of its events)
        everything = scope == EVERYTHING and grid is None
        selection = Selection(district=district, grids=None if everything else frozenset(grids))
        not_closed = _by_grid(self.history.not_closed(selection, at, now_ms=self._clock()))
        recent = _by_grid(self.history.raised_between(selection, at - HANDLING_WINDOW_MS, None, at))
        fleets = self._fleets(registry)
        for grid_id in checking(sorted(grids), cancelled):
            yield grid_index(
                grid_id,
                grids[grid_id],
                fleets.get(grid_id, GridFleet()),
                GridEvents(not_closed.get(grid_id, ()), recent.get(grid_id, ())),
                at,
                self.weights,
            )


CHECK_EVERY: Final = 1024
"""Grids between two looks at ``cancelled`` (a province has ~115,000)."""


def checking(items: Sequence[T], cancelled: Callable[[], bool]) -> Iterator[T]:
    """``items``, raising :class:`Cancelled` once ``cancelled()`` is true (looked at every
    :data:`CHECK_EVERY` items)."""
    for i, item in enumerate(items):
        if i % CHECK_EVERY == 0 and cancelled():
            raise Cancelled
        yield item


def _by_grid(events: Sequence[EventAt]) -> dict[str, list[EventAt]]:
    out: dict[str, list[EventAt]] = defaultdict(list)
    for event in events:
        out[event.grid_id].append(event)
    return out
