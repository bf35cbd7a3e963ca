"""Which events a principal may see (CONTRACT §10, ``/events``).

- worker: the events of the grids whose ``workers`` list it;
- station: the critical events routed to it (``station_id`` is the station);
- supervisor, service account: all;
- device, or a user the registry does not know: nothing (HTTP 403).

``grids`` and ``station`` let a query filter in SQL; :meth:`Visibility.allows` checks one event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from access._principals import Principals, Role
from devices import Registry


@dataclass(frozen=True, slots=True)
class Visibility:
    user: str
    role: Role | None
    """None: not a principal of the registry."""
    grids: frozenset[str] | None = None
    """The grid_ids whose events are visible; None: every grid (within ``station``, if set)."""
    station: str | None = None
    """Only critical events routed to this station."""

    @property
    def forbidden(self) -> bool:
        """No events at all: answer 403 (devices, users unknown to the registry)."""
        return self.role is None or self.role is Role.DEVICE

    @property
    def sees_all(self) -> bool:
        return not self.forbidden and self.grids is None and self.station is None

    def allows_fields(self, grid_id: object, severity: object, station_id: object) -> bool:
        if self.forbidden:
            return False
        if self.station is not None:
            return severity == "critical" and station_id == self.station
        return self.grids is None or (isinstance(grid_id, str) and grid_id in self.grids)

    def allows(self, event: Mapping[str, object]) -> bool:
        """For an event as JSON (``grid_id``, ``severity``, ``station_id``)."""
        return self.allows_fields(event.get("grid_id"), event.get("severity"), event.get("station_id"))


class Access:
    """Rights of the principals of one registry; build a new one when the registry reloads."""

    def __init__(self, registry: Registry) -> None:
        self.principals = Principals(registry)

    def for_user(self, user: str) -> Visibility:
        """What an authenticated ``user`` may see."""
        role = self.principals.role_of(user)
        if role is Role.WORKER:
            return Visibility(user, role, grids=frozenset(g.grid_id for g in self.principals.grids_of(user)))
        if role is Role.STATION:
            return Visibility(user, role, station=user)
        if role in (Role.SUPERVISOR, Role.SERVICE):
            return Visibility(user, role)
        return Visibility(user, role, grids=frozenset())  # device or unknown: nothing
