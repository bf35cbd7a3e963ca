"""Where an event goes: its grid topic, the nearest station of its district, the escalation topic
(the topic names themselves are ``devices.Topics``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from devices import Registry, Station, haversine_m

log = logging.getLogger(__name__)

QOS: Final = 1
URGENT_TYPES: Final = frozenset({"FIRE_ALARM", "FIRE_CONFIRMED"})
"""Event types whose publications the outbox hands over before other events' (issue 17: a fire
alarm must not wait behind a mass silence's DEVICE_OFFLINE). By type because an event's type never
changes, so all of its publications are in one class and keep their order. Not the smoke kind
(TAMPER is one of its types, and ``kind`` is the device's: a smoke detector's DEVICE_OFFLINE has
it), nor the severity (CABLE_OVERHEAT rises to critical, and a rules file may make DEVICE_OFFLINE
critical, which would put the bulk itself first)."""


class Publisher(Protocol):
    """The seam to MQTT: a paho ``Client`` fits (its ``publish`` takes these arguments)."""

    def publish(self, topic: str, payload: bytes, qos: int) -> object: ...


@dataclass(frozen=True, slots=True)
class Publication:
    topic: str
    payload: bytes
    qos: int = QOS
    urgent: bool = False
    """A publication of an event of :data:`URGENT_TYPES`."""


def nearest_station(stations: Sequence[Station], lat: float | None, lon: float | None) -> str | None:
    """The nearest station (ties: the lowest station_id), or None without stations or a position."""
    if not stations:
        return None
    if lat is None or lon is None:
        return min(s.station_id for s in stations)
    best = min(stations, key=lambda s: (haversine_m(lat, lon, s.lat, s.lon), s.station_id))
    return best.station_id


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
