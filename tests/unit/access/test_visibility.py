"""Who sees which event (CONTRACT §10, /events)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from access import Access, Role
from devices import Registry


def event(grid: str, severity: str = "major", station: str | None = None) -> dict[str, Any]:
    return {"event_id": "E1", "grid_id": grid, "district": "D01", "severity": severity, "station_id": station}


def test_worker_sees_the_grids_that_list_it(registry: Registry) -> None:
    seen = Access(registry).for_user("W1")
    assert (seen.role, seen.grids, seen.station) == (Role.WORKER, frozenset({"D01-G01"}), None)
    assert not seen.forbidden and not seen.sees_all
    assert seen.allows(event("D01-G01"))
    assert seen.allows(event("D01-G01", "critical", "D01-ST1"))
    assert not seen.allows(event("D01-G00"))
    assert not seen.allows({"grid_id": ["D01-G01"]})  # malformed: refused, not raised


def test_supervisor_and_services_see_all(registry: Registry) -> None:
    access = Access(registry)
    for user, role in (
        ("SUP1", Role.SUPERVISOR),
        ("firegrid", Role.SERVICE),
        ("firegrid-console", Role.SERVICE),
    ):
        seen = access.for_user(user)
        assert seen.role is role and seen.sees_all and seen.grids is None and seen.station is None
        assert seen.allows(event("D01-G03")) and seen.allows(event("D01-G01", "minor"))


def test_station_sees_the_critical_events_routed_to_it(registry: Registry) -> None:
    seen = Access(registry).for_user("D01-ST1")
    assert (seen.role, seen.grids, seen.station) == (Role.STATION, None, "D01-ST1")
    assert seen.allows(event("D01-G00", "critical", "D01-ST1"))
    assert not seen.allows(event("D01-G00", "critical", "D01-ST2"))
    assert not seen.allows(event("D01-G00", "major", "D01-ST1"))
    assert not seen.allows(event("D01-G00", "critical", None))


def test_devices_and_strangers_are_forbidden(registry: Registry) -> None:
    access = Access(registry)
    for user, role in (("S0000", Role.DEVICE), ("nobody", None), ("", None)):
        seen = access.for_user(user)
        assert seen.role is role and seen.forbidden and not seen.sees_all
        assert not seen.allows(event("D01-G00")) and not seen.allows(event("D01-G00", "critical", "D01-ST1"))


def test_worker_without_grids_sees_nothing_but_is_not_forbidden(registry_dir: Path) -> None:
    with (registry_dir / "workers.csv").open("a") as handle:
        handle.write("W9,Idle,worker\n")
    seen = Access(Registry.load(registry_dir)).for_user("W9")
    assert seen.grids == frozenset() and not seen.forbidden
    assert not seen.allows(event("D01-G00"))
