"""Every MQTT topic firegrid uses (CONTRACT §4, §8, §10), built and parsed in one place.

Each topic carries the deployment's prefix (``FIREGRID_TOPIC_PREFIX``, e.g. ``t1/``)::

    fire/{district}/{kind}/{device_id}  device readings (uplink)
    alerts/{district}/{grid_id}         every raise and later change of an event
    alerts/station/{station_id}         the same, for critical events (nearest station)
    alerts/{district}/escalations       an event not acknowledged within its deadline
    actions/{worker_id}                 a worker's action
    actions/{worker_id}/result          its answer
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

READINGS: Final = "fire"
ALERTS: Final = "alerts"
ACTIONS: Final = "actions"
STATION_SCOPE: Final = "station"
ESCALATIONS: Final = "escalations"


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    district: str
    kind: str
    device_id: str


@dataclass(frozen=True, slots=True)
class AlertTopic:
    """Where an alert was published: a grid, a station or a district's escalations."""

    scope: Literal["grid", "station", "escalations"]
    district: str | None
    """None for a station topic (a station serves one district, but its topic does not say which)."""
    name: str
    """grid_id, station_id, or ``escalations``."""


class Topics:
    """Topic names with the deployment's prefix; ``parse_*`` return None for any other topic."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    # -- building
    def device(self, district: str, kind: str, device_id: str) -> str:
        return f"{self.prefix}{READINGS}/{district}/{kind}/{device_id}"

    def grid(self, district: str, grid_id: str) -> str:
        return f"{self.prefix}{ALERTS}/{district}/{grid_id}"

    def station(self, station_id: str) -> str:
        return f"{self.prefix}{ALERTS}/{STATION_SCOPE}/{station_id}"

    def escalations(self, district: str) -> str:
        return f"{self.prefix}{ALERTS}/{district}/{ESCALATIONS}"

    def actions(self, worker_id: str) -> str:
        return f"{self.prefix}{ACTIONS}/{worker_id}"

    def action_result(self, worker_id: str) -> str:
        return f"{self.prefix}{ACTIONS}/{worker_id}/result"

    # -- subscriptions
    @property
    def readings_subscription(self) -> str:
        """``fire/#`` rather than ``fire/+/+/+``: messages on malformed topics must reach the
        rejects instead of vanishing."""
        return f"{self.prefix}{READINGS}/#"

    @property
    def alerts_subscription(self) -> str:
        return f"{self.prefix}{ALERTS}/#"

    @property
    def actions_subscription(self) -> str:
        """``+`` is one level, so the ``actions/{worker}/result`` answers are not received back."""
        return f"{self.prefix}{ACTIONS}/+"

    @property
    def results_subscription(self) -> str:
        return f"{self.prefix}{ACTIONS}/+/result"

    # -- parsing
    def _levels(self, topic: str) -> list[str] | None:
        if not topic.startswith(self.prefix):
            return None
        return topic[len(self.prefix) :].split("/")

    def parse_device(self, topic: str) -> DeviceTopic | None:
        """The parts of a ``fire/{district}/{kind}/{device_id}`` topic (not yet validated)."""
        levels = self._levels(topic)
        if levels is None or len(levels) != 4 or levels[0] != READINGS:
            return None
        return DeviceTopic(levels[1], levels[2], levels[3])

    def parse_alert(self, topic: str) -> AlertTopic | None:
        levels = self._levels(topic)
        if levels is None or len(levels) != 3 or levels[0] != ALERTS or not levels[1] or not levels[2]:
            return None
        if levels[1] == STATION_SCOPE:
            return AlertTopic("station", None, levels[2])
        if levels[2] == ESCALATIONS:
            return AlertTopic("escalations", levels[1], ESCALATIONS)
        return AlertTopic("grid", levels[1], levels[2])

    def action_worker(self, topic: str) -> str | None:
        """The worker_id of an ``actions/{worker_id}`` topic."""
        levels = self._levels(topic)
        if levels is None or len(levels) != 2 or levels[0] != ACTIONS or not levels[1]:
            return None
        return levels[1]

    def result_worker(self, topic: str) -> str | None:
        """The worker_id of an ``actions/{worker_id}/result`` topic."""
        levels = self._levels(topic)
        if (
            levels is None
            or len(levels) != 3
            or levels[0] != ACTIONS
            or levels[2] != "result"
            or not levels[1]
        ):
            return None
        return levels[1]
