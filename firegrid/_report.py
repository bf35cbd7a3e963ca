"""What ``firegrid report`` shows (CONTRACT §12), computed from the event store alone through
:class:`safety.Safety`: the district's index at the end of each day of the month (its mean and
the worst grids), the ranking of its grids at the month's end, the handling figures of the
month's events per grid, and the worst grids with their hazards still unresolved then.

"The month's end" is the end of the month, or now while it is running; everything is evaluated
as it stood then (safety's ``at``), so a past month's report is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from devices import Registry
from firegrid._report_month import Month
from safety import EVERYTHING, GROUPS, NOT_HAZARDS, EventAt, IndexQuery, Safety, Selection, SlaQuery

WORST: Final = 5
"""Grids shown with their open hazards (the lowest indexes) and drawn in the trend."""
HAZARDS_SHOWN: Final = 25
"""Open hazards listed per worst grid (the rest are counted)."""
SEVERITY_ORDER: Final = {"critical": 0, "major": 1, "minor": 2}

Figures = Mapping[str, int | float | None]


@dataclass(frozen=True, slots=True)
class GridRank:
    rank: int | None
    """1 for the lowest index (equal indexes share a rank); None without an index."""
    grid_id: str
    name: str
    index: float | None
    groups: Mapping[str, float | None]
    """Each group's score, in :data:`safety.GROUPS` order."""


@dataclass(frozen=True, slots=True)
class Trend:
    ats: tuple[int, ...]
    """The end of each day (the last: the month's end, or now)."""
    mean: tuple[float | None, ...]
    """The mean index of the district's grids (those with an index) at each time."""
    grids: Mapping[str, tuple[float | None, ...]]
    """The worst grids' index at each time."""


@dataclass(frozen=True, slots=True)
class OpenHazard:
    event_id: str
    grid_id: str
    type: str
    severity: str
    device_id: str
    site_id: str
    raised_at: int
    state: str
    """At the month's end: ``open`` or ``acknowledged``."""
    escalated: bool
    """Not acknowledged before its escalation deadline, which had passed by the month's end."""


@dataclass(frozen=True, slots=True)
class WorstGrid:
    grid: GridRank
    hazards: tuple[OpenHazard, ...]
    """The first :data:`HAZARDS_SHOWN`: most severe first, then oldest."""
    more: int
    """Open hazards not listed."""


@dataclass(frozen=True, slots=True)
class FigureRow:
    grid_id: str
    name: str
    figures: Figures


@dataclass(frozen=True, slots=True)
class Report:
    district: str
    month: Month
    generated_ms: int
    cut_ms: int
    running: bool
    weights: str
    """Where the index's weights came from."""
    group_weights: Mapping[str, float]
    """Each group's weight in the index."""
    trend: Trend
    ranking: tuple[GridRank, ...]
    worst: tuple[WorstGrid, ...]
    total: Figures
    figures: tuple[FigureRow, ...]
    """Every grid of the district (and any other grid the month's events name), by grid id."""

    @property
    def mean_index(self) -> float | None:
        return self.trend.mean[-1]


def rank_grids(indexes: Mapping[str, Mapping[str, Any]], names: Mapping[str, str]) -> list[GridRank]:
    """The grids of a ``/index`` answer least safe first, as the console lists them: the lowest
    index first, ties by grid id, grids without an index last."""
    rows = sorted(
        indexes.items(), key=lambda item: (item[1]["index"] is None, item[1]["index"] or 0, item[0])
    )
    out: list[GridRank] = []
    for position, (grid_id, answer) in enumerate(rows, start=1):
        index = answer["index"]
        rank = None if index is None else position
        if out and index is not None and out[-1].index == index:
            rank = out[-1].rank
        groups = {name: answer["groups"][name]["score"] for name in GROUPS}
        out.append(GridRank(rank, grid_id, names.get(grid_id, ""), index, groups))
    return out


def worst_grids(ranking: Sequence[GridRank], count: int = WORST) -> list[GridRank]:
    """The first ``count`` grids of :func:`rank_grids` that have an index."""
    return [g for g in ranking if g.index is not None][:count]


def mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 1) if present else None


def open_hazards(events: Iterable[EventAt], registry: Registry, cut_ms: int) -> list[OpenHazard]:
    """The hazards among ``events`` still unresolved (those the index's hazards group counts),
    most severe first, then oldest."""
    out = []
    for event in events:
        if event.type in NOT_HAZARDS or not event.unresolved:
            continue
        device = registry.device(event.device_id)
        handling = event.handling
        out.append(
            OpenHazard(
                event_id=event.event_id,
                grid_id=event.grid_id,
                type=event.type,
                severity=event.severity,
                device_id=event.device_id,
                site_id=device.site_id if device is not None else "",
                raised_at=event.raised_at,
                state="open" if event.acked_at is None else "acknowledged",  # unresolved by then
                escalated=not handling.acked_on_time() and handling.deadline_ms() <= cut_ms,
            )
        )
    out.sort(key=lambda h: (SEVERITY_ORDER.get(h.severity, len(SEVERITY_ORDER)), h.raised_at, h.event_id))
    return out


def build_report(safety: Safety, registry: Registry, district: str, month: Month, now_ms: int) -> Report:
    """The report of ``district`` for ``month`` as it stands at ``now_ms`` (the month must have begun)."""
    cut = month.cut_ms(now_ms)
    ats = month.day_ends(now_ms)
    daily = [safety.index(EVERYTHING, IndexQuery(district=district, at_ms=at))["grids"] for at in ats]
    names = {grid_id: grid.name for grid_id, grid in registry.grids.items()}
    ranking = rank_grids(daily[-1], names)
    worst = worst_grids(ranking)
    trend = Trend(
        ats=tuple(ats),
        mean=tuple(mean(grid["index"] for grid in day.values()) for day in daily),
        grids={g.grid_id: tuple(day.get(g.grid_id, {}).get("index") for day in daily) for g in worst},
    )
    selection = Selection(district=district, grids=frozenset(g.grid_id for g in worst))
    not_closed = safety.history.not_closed(selection, cut, now_ms=now_ms) if worst else []
    hazards: dict[str, list[OpenHazard]] = {g.grid_id: [] for g in worst}
    for hazard in open_hazards(not_closed, registry, cut):
        hazards[hazard.grid_id].append(hazard)
    sla = safety.sla(
        EVERYTHING, SlaQuery(district=district, since_ms=month.start_ms, until_ms=month.end_ms, at_ms=cut)
    )
    return Report(
        district=district,
        month=month,
        generated_ms=now_ms,
        cut_ms=cut,
        running=month.running(now_ms),
        weights=safety.weights.source,
        group_weights={name: safety.weights.groups[name] for name in GROUPS},
        trend=trend,
        ranking=tuple(ranking),
        worst=tuple(
            WorstGrid(
                g, tuple(hazards[g.grid_id][:HAZARDS_SHOWN]), max(len(hazards[g.grid_id]) - HAZARDS_SHOWN, 0)
            )
            for g in worst
        ),
        total=sla["total"],
        figures=tuple(
            FigureRow(grid_id, names.get(grid_id, ""), figures)
            for grid_id, figures in sorted(sla["grids"].items())
        ),
    )
