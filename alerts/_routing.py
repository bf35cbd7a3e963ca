"""Where an event goes: its grid topic, the nearest station of its district, the escalation topic.

Topics (each with the deployment's topic prefix in front, e.g. ``t1/``)::

    alerts/{district}/{grid_id}        every raise and every later change (QoS 1, not retained)
    alerts/station/{station_id}        the same, for critical events (nearest station, haversine)
    alerts/{district}/escalations      an event not acknowledged within its deadline
    actions/{worker_id}/result         the answer to a worker's action
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from devices import Registry, Station

log = logging.getLogger(__name__)

QOS: Final = 1
EARTH_RADIUS_M: Final = 6_371_008.8
ACTIONS_SUBSCRIPTION: Final = "actions/+"
"""What the service subscribes to (after its prefix) for worker actions (``+`` is one level,
so the ``actions/{worker}/result`` answers are not received back)."""


class Publisher(Protocol):
    """The seam to MQTT: a paho ``Client`` fits (its ``publish`` takes these arguments)."""

    def publish(self, topic: str, payload: bytes, qos: int) -> object: ...


@dataclass(frozen=True, slots=True)
class Publication:
    topic: str
    payload: bytes
    qos: int = QOS


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def nearest_station(stations: Sequence[Station], lat: float | None, lon: float | None) -> str | None:
    """The nearest station (ties: the lowest station_id), or None without stations or a position."""
    if not stations:
        return None
    if lat is None or lon is None:
        return min(s.station_id for s in stations)
    best = min(stations, key=lambda s: (haversine_m(lat, lon, s.lat, s.lon), s.station_id))
    return best.station_id


class Topics:
    """Topic names with the deployment's prefix."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def grid(self, district: str, grid_id: str) -> str:
        return f"{self.prefix}alerts/{district}/{grid_id}"

    def station(self, station_id: str) -> str:
        return f"{self.prefix}alerts/station/{station_id}"

    def escalations(self, district: str) -> str:
        return f"{self.prefix}alerts/{district}/escalations"

    def action_result(self, worker_id: str) -> str:
        return f"{self.prefix}actions/{worker_id}/result"

    @property
    def actions_subscription(self) -> str:
        return f"{self.prefix}{ACTIONS_SUBSCRIPTION}"

    def action_worker(self, topic: str) -> str | None:
        """The worker_id of an ``actions/{worker_id}`` topic, or None for any other topic."""
        if not topic.startswith(self.prefix):
            return None
        parts = topic[len(self.prefix) :].split("/")
        if len(parts) != 2 or parts[0] != "actions" or not parts[1]:
            return None
        return parts[1]


class StationIndex:
    """The stations of each district of one registry."""

    def __init__(self, registry: Registry) -> None:
        by_district: dict[str, list[Station]] = {}
        for station in registry.stations:
            by_district.setdefault(station.district, []).append(station)
        self._by_district = {d: tuple(s) for d, s in by_district.items()}
        self._ids = frozenset(s.station_id for s in registry.stations)
        self._warned: set[str] = set()

    def __contains__(self, station_id: object) -> bool:
        return station_id in self._ids

    def nearest(self, district: str, lat: float | None, lon: float | None) -> str | None:
        stations = self._by_district.get(district, ())
        if not stations and district not in self._warned:
            self._warned.add(district)
            log.warning("district %s has no station: its critical events go to the grid topic only", district)
        return nearest_station(stations, lat, lon)
