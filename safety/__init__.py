"""Handling figures and the grid fire-safety index (CONTRACT §12), from the event store's history.

Typical use by the service::

    safety = Safety(data_dir / alerts.DB_NAME, lambda: service.registry, load_weights(path))
    safety.sla(Scope(grids=...), SlaQuery(district=..., since_ms=..., at_ms=...))   # GET /sla
    safety.index(Scope(...), IndexQuery(grid=..., at_ms=...))                     # GET /index
    schedule = Schedule(safety, emit, wall_ms, index_interval_ms=..., sla_period_ms=...)
    schedule.start() ... schedule.stop(); safety.close()

The figures are a pure function of each event's history (:func:`figures` over
:class:`Handling`), the index a pure function of the events at ``at`` and the registry
(:func:`grid_index`); docs/INDEX.md explains both to supervisors.
"""

from safety._api import EVERYTHING, IndexQuery, Safety, Scope, SlaQuery, wall_ms
from safety._figures import FIGURES, Figures, Handling, figures, nearest_rank, percent
from safety._fleet import GridFleet, fleet_by_grid
from safety._history import EventAt, History, Selection
from safety._index import GROUPS, HALF_PER_100_DEVICES, NOT_HAZARDS, GridEvents, GridIndex, grid_index
from safety._points import INDEX_MEASUREMENT, SLA_MEASUREMENT
from safety._schedule import Cancelled, Schedule, never
from safety._weights import DEFAULTS, Weights, WeightsError, load_weights

__all__ = [
    "DEFAULTS",
    "EVERYTHING",
    "FIGURES",
    "GROUPS",
    "HALF_PER_100_DEVICES",
    "INDEX_MEASUREMENT",
    "NOT_HAZARDS",
    "SLA_MEASUREMENT",
    "Cancelled",
    "EventAt",
    "Figures",
    "GridEvents",
    "GridFleet",
    "GridIndex",
    "Handling",
    "History",
    "IndexQuery",
    "Safety",
    "Schedule",
    "Scope",
    "Selection",
    "SlaQuery",
    "Weights",
    "WeightsError",
    "figures",
    "fleet_by_grid",
    "grid_index",
    "load_weights",
    "nearest_rank",
    "never",
    "percent",
    "wall_ms",
]
