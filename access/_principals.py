"""Principals (CONTRACT §10): who may connect, under which name, in which role.

Every device, worker and station of the registry is a principal, plus the service accounts. The
MQTT (and HTTP) username is the identifier, so the names must be unique across all of them. The
registry keeps a million devices column-wise; this view answers from those columns and builds a
:class:`Principal` only when asked for one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from devices import Grid, Registry, RegistryError


class Role(StrEnum):
    DEVICE = "device"
    WORKER = "worker"
    SUPERVISOR = "supervisor"
    STATION = "station"
    SERVICE = "service"


INGEST_ACCOUNT: Final = "firegrid"
CONSOLE_ACCOUNT: Final = "firegrid-console"
SIMULATOR_ACCOUNT: Final = "firegrid-sim"
SERVICE_ACCOUNTS: Final = (INGEST_ACCOUNT, CONSOLE_ACCOUNT, SIMULATOR_ACCOUNT)


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role


class Principals:
    """The principals of one registry; raises :class:`RegistryError` when two share a name."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._stations = frozenset(s.station_id for s in registry.stations)
        self._grids_of: dict[str, tuple[Grid, ...]] | None = None
        problems = [
            f"{what}: {name} is also the name of {other} (usernames must be unique)"
            for what, name, other in self._collisions()
        ]
        if problems:
            raise RegistryError(problems)

    def _collisions(self) -> Iterator[tuple[str, str, str]]:
        # only the few workers, stations and service accounts need checking against the devices
        registry = self.registry
        for name in SERVICE_ACCOUNTS:
            if name in registry.workers or name in self._stations or name in registry.slot_of:
                yield "service account", name, "a device, worker or station"
        for name in registry.workers:
            if name in self._stations:
                yield "workers.csv", name, "a station"
            if name in registry.slot_of:
                yield "workers.csv", name, "a device"
        for name in self._stations:
            if name in registry.slot_of:
                yield "stations.csv", name, "a device"

    def __len__(self) -> int:
        return len(SERVICE_ACCOUNTS) + len(self.registry.workers) + len(self._stations) + len(self.registry)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.role_of(name) is not None

    def role_of(self, name: str) -> Role | None:
        worker = self.registry.workers.get(name)
        if worker is not None:
            return Role.SUPERVISOR if worker.is_supervisor else Role.WORKER
        if name in self.registry.slot_of:
            return Role.DEVICE
        if name in self._stations:
            return Role.STATION
        if name in SERVICE_ACCOUNTS:
            return Role.SERVICE
        return None

    def get(self, name: str) -> Principal | None:
        role = self.role_of(name)
        return None if role is None else Principal(name, role)

    def __iter__(self) -> Iterator[Principal]:
        """Service accounts, workers, stations, then devices in slot order (a stable file order)."""
        for name in SERVICE_ACCOUNTS:
            yield Principal(name, Role.SERVICE)
        for worker in self.registry.workers.values():
            yield Principal(worker.worker_id, Role.SUPERVISOR if worker.is_supervisor else Role.WORKER)
        for station in self.registry.stations:
            yield Principal(station.station_id, Role.STATION)
        for device_id in self.registry.slot_of:
            yield Principal(device_id, Role.DEVICE)

    def grids_of(self, worker_id: str) -> tuple[Grid, ...]:
        """The grids whose ``workers`` list ``worker_id`` (in grid_id order)."""
        if self._grids_of is None:
            index: dict[str, list[Grid]] = {}
            for grid in self.registry.grids.values():
                for member in grid.workers:
                    listed = index.setdefault(member, [])
                    if not listed or listed[-1] is not grid:  # a worker named twice in one grid
                        listed.append(grid)
            self._grids_of = {worker: tuple(grids) for worker, grids in index.items()}
        return self._grids_of.get(worker_id, ())
