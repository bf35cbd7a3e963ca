"""The grids' fire-safety index and handling figures for supervisors (CONTRACT §12, issue 15).

Read from ingest's ``GET /index`` (every grid, kept :data:`INDEX_TTL_S` so that any number of
page views cost one request) and ``GET /sla?grid=`` (one grid's last 30 days, kept as long),
as the console's account; who sees which grid is the rule of ``/events`` (§10), applied here.
The JSON is read defensively: a score that is not a number shows as none, an answer of another
shape is an :class:`~console._api.ApiError` (the page says ingest answered unexpectedly).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from access import Visibility
from console._api import ApiError, IngestApi
from console._recent import Recent

INDEX_TTL_S: Final = 30.0
"""How long an answer of ``/index`` or ``/sla`` is shown before ingest is asked again."""

GROUPS: Final[Mapping[str, str]] = {
    "hazards": "Open hazards",
    "handling": "Handling",
    "patrol": "Patrol",
    "devices": "Devices",
}
"""The groups of §12 in the order shown, with their titles; others (a later version) follow."""

INDICATORS: Final[Mapping[str, str]] = {
    "hazards.critical": "Critical hazards",
    "hazards.major": "Major hazards",
    "hazards.minor": "Minor hazards",
    "handling.acked_on_time": "Acknowledged on time",
    "handling.handled_8h": "Resolved within 8 h",
    "handling.closure": "Closed",
    "patrol.on_schedule": "Checkpoints on schedule now",
    "patrol.on_schedule_30d": "On schedule for 30 days",
    "patrol.genuine_30d": "No faked rounds in 30 days",
    "devices.online": "Detectors online",
    "devices.fault_free": "Without faults",
    "devices.battery_ok": "Batteries fine",
}
"""Titles of the indicators (``group.name``); an unknown one is shown by its name."""

BASIS: Final[Mapping[str, str]] = {
    "unresolved": "unresolved",
    "devices": "devices",
    "acked_on_time": "acknowledged on time",
    "due": "due",
    "handled_8h": "resolved within 8 h",
    "raised_8h_before": "raised ≥ 8 h ago",
    "closed": "closed",
    "overdue": "overdue",
    "overdue_in_30d": "overdue in 30 days",
    "too_fast_in_30d": "scanned too fast in 30 days",
    "checkpoints": "checkpoints",
    "offline": "offline",
    "monitored": "monitored",
    "faulty": "faulty",
    "reporting": "reporting",
    "low_battery": "low battery",
}
"""Words for the counts behind an indicator; an unknown count is shown by its name."""

FIGURES: Final = (
    "raised",
    "acked_on_time",
    "handled_8h",
    "closed",
    "ack_p50_s",
    "ack_p90_s",
    "resolve_p50_s",
    "resolve_p90_s",
    "handled_8h_pct",
    "closure_pct",
)
"""The figures of §12 the grid page shows."""

BANDS: Final = ((80.0, "high"), (60.0, "mid"))
"""Score colours, as on the Grid safety dashboard: green from 80, orange from 60, red below."""


def band(score: object) -> str:
    """``high``, ``mid``, ``low``, or ``none`` (no score): the CSS class ``band-…``."""
    if isinstance(score, bool) or not isinstance(score, int | float):
        return "none"
    return next((name for floor, name in BANDS if score >= floor), "low")


def may_see_grid(seen: Visibility, grid_id: str) -> bool:
    """The grid rule of ``/events`` (§10): supervisors every grid, a worker the grids that list it.
    A station's rule is by event, not by grid: no grid's summary."""
    return not seen.forbidden and seen.station is None and (seen.grids is None or grid_id in seen.grids)


def _score(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _number(value: object) -> int | float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _title(name: str) -> str:
    return name.replace("_", " ")


@dataclass(frozen=True, slots=True)
class Indicator:
    name: str
    title: str
    score: float | None
    weight: float | None
    basis: tuple[tuple[str, object], ...]
    """(words, count) of the counts the score comes from, in ingest's order."""


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    title: str
    score: float | None
    weight: float | None
    indicators: tuple[Indicator, ...]


@dataclass(frozen=True, slots=True)
class GridSafety:
    grid_id: str
    district: str
    index: float | None
    groups: tuple[Group, ...]

    def scores(self) -> list[tuple[str, float | None]]:
        """(title, score) of the four groups of §12, in order (None where missing)."""
        by_name = {g.name: g.score for g in self.groups}
        return [(title, by_name.get(name)) for name, title in GROUPS.items()]


def rank_key(grid: GridSafety) -> tuple[bool, float, str]:
    """Least safe first; grids without an index last; then by grid_id."""
    return (grid.index is None, grid.index or 0.0, grid.grid_id)


def _indicators(group: str, raw: object) -> tuple[Indicator, ...]:
    if not isinstance(raw, dict):
        return ()
    out = []
    for name, value in raw.items():
        entry = value if isinstance(value, dict) else {}
        basis = entry.get("basis")
        counts = basis.items() if isinstance(basis, dict) else ()
        out.append(
            Indicator(
                str(name),
                INDICATORS.get(f"{group}.{name}", _title(str(name))),
                _score(entry.get("score")),
                _score(entry.get("weight")),
                tuple((BASIS.get(str(k), _title(str(k))), v) for k, v in counts),
            )
        )
    return tuple(out)


def parse_grid(grid_id: str, raw: object) -> GridSafety:
    """One grid of ``/index`` (``GridIndex.to_dict``): {"district", "index", "groups": {name:
    {"score", "weight", "indicators": {name: {"score", "weight", "basis"}}}}}."""
    if not isinstance(raw, dict):
        raise ApiError(f"firegrid ingest answered /index with something unexpected for {grid_id}")
    groups_raw = raw.get("groups")
    groups = groups_raw if isinstance(groups_raw, dict) else {}
    order = [*(n for n in GROUPS if n in groups), *(n for n in groups if n not in GROUPS)]
    parsed = []
    for name in order:
        entry = groups[name] if isinstance(groups[name], dict) else {}
        parsed.append(
            Group(
                str(name),
                GROUPS.get(name, _title(str(name))),
                _score(entry.get("score")),
                _score(entry.get("weight")),
                _indicators(str(name), entry.get("indicators")),
            )
        )
    return GridSafety(grid_id, str(raw.get("district", "")), _score(raw.get("index")), tuple(parsed))


@dataclass(frozen=True, slots=True)
class IndexAnswer:
    at_ms: int | None
    grids: Mapping[str, GridSafety]


def parse_index(body: Mapping[str, Any]) -> IndexAnswer:
    grids = body["grids"]
    at = body.get("at")
    return IndexAnswer(
        at if isinstance(at, int) else None,
        {str(grid_id): parse_grid(str(grid_id), raw) for grid_id, raw in grids.items()},
    )


@dataclass(frozen=True, slots=True)
class Handling:
    """One grid's figures of §12 over ``[since, at]`` (None: ingest does not know the grid)."""

    at_ms: int | None
    since_ms: int | None
    figures: Mapping[str, int | float | None] | None


def parse_sla(grid_id: str, body: Mapping[str, Any]) -> Handling:
    raw = body["grids"].get(grid_id)
    at, since = body.get("at"), body.get("since")
    figures = None
    if isinstance(raw, dict):
        figures = {name: _number(raw.get(name)) for name in FIGURES}
    return Handling(at if isinstance(at, int) else None, since if isinstance(since, int) else None, figures)


@dataclass(frozen=True, slots=True)
class Ranking:
    at_ms: int | None
    grids: list[GridSafety]


@dataclass(frozen=True, slots=True)
class GridPage:
    safety: GridSafety
    at_ms: int | None
    handling: Handling


class GridBoard:
    """The index and figures as a user may see them, from ingest's answers kept briefly."""

    def __init__(
        self, api: IngestApi, *, clock: Callable[[], float] = time.monotonic, ttl_s: float = INDEX_TTL_S
    ) -> None:
        self.api = api
        self.index_answers: Recent[None, IndexAnswer] = Recent(ttl_s, clock=clock, max_keys=1)
        self.sla_answers: Recent[str, Handling] = Recent(ttl_s, clock=clock, max_keys=4096)

    async def _index(self) -> IndexAnswer:
        async def fetch() -> IndexAnswer:
            return parse_index(await self.api.index())

        return await self.index_answers.get(None, fetch)

    async def _handling(self, grid_id: str) -> Handling:
        async def fetch() -> Handling:
            return parse_sla(grid_id, await self.api.sla(grid_id))

        return await self.sla_answers.get(grid_id, fetch)

    async def ranking(self, seen: Visibility) -> Ranking:
        """The grids ``seen`` may see, least safe first. Raises ApiError."""
        answer = await self._index()
        grids = [g for g in answer.grids.values() if may_see_grid(seen, g.grid_id)]
        return Ranking(answer.at_ms, sorted(grids, key=rank_key))

    async def grid(self, seen: Visibility, grid_id: str) -> GridPage | None:
        """The grid's index and figures; None when ingest knows no such grid or ``seen`` may not
        see it (the same answer). Raises ApiError."""
        if not may_see_grid(seen, grid_id):
            return None
        answer = await self._index()
        safety = answer.grids.get(grid_id)
        if safety is None:  # not asking /sla about grids that ingest does not know
            return None
        return GridPage(safety, answer.at_ms, await self._handling(grid_id))
