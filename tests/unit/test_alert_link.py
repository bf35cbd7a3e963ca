"""The alert link (firegrid/_alert_link.py): alerts leave on the alarm lane's connection while it
is up, else on the readings connection; each switch is a reconnect to the outbox; PUBACKs of the
two connections never collide."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from firegrid._alert_link import MID_SPAN, AlertLink


@dataclass
class _Info:
    mid: int
    rc: int = 0


@dataclass
class _Client:
    sent: list[str] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, qos: int) -> _Info:
        self.sent.append(topic)
        return _Info(len(self.sent))  # paho's mids: 1, 2, ... per client


class _Consumer:
    def __init__(self) -> None:
        self.client = _Client()
        self.connected = False
        self.publish_window = 20
        self.on_published: Callable[[int, str | None], None] = lambda mid, error: None


def _link() -> tuple[AlertLink, _Consumer, _Consumer, list[bool], list[int]]:
    alarm, readings = _Consumer(), _Consumer()
    changes: list[bool] = []
    acked: list[int] = []
    link = AlertLink([alarm, readings], window=256)
    link.bind(changes.append, lambda mid, error: acked.append(mid))
    return link, alarm, readings, changes, acked


def test_alerts_prefer_the_alarm_lane_and_fall_back_to_the_readings_connection() -> None:
    link, alarm, readings, changes, _ = _link()
    assert alarm.publish_window == readings.publish_window == 256
    readings.connected = True
    link.connection_changed()
    assert changes == [True]
    link.publish("a/1", b"", 1)
    assert readings.client.sent == ["a/1"]

    alarm.connected = True
    link.connection_changed()  # a switch: the outbox publishes again on the alarm lane
    assert changes == [True, False, True]
    link.publish("a/2", b"", 1)
    assert alarm.client.sent == ["a/2"]

    alarm.connected = False
    link.connection_changed()  # the alarm lane lost: at once on the readings connection
    assert changes == [True, False, True, False, True]
    link.publish("a/3", b"", 1)
    assert readings.client.sent == ["a/1", "a/3"]

    readings.connected = False
    link.connection_changed()
    assert changes[-1] is False
    alarm.connected = True
    link.connection_changed()
    assert changes[-2:] == [False, True]
    link.connection_changed()  # nothing changed: nothing told
    assert changes[-2:] == [False, True] and len(changes) == 7


def test_the_two_connections_message_ids_never_collide() -> None:
    link, alarm, readings, _, acked = _link()
    alarm.connected = readings.connected = True
    link.connection_changed()
    on_alarm = link.publish("a/1", b"", 1).mid
    alarm.connected = False
    link.connection_changed()
    on_readings = link.publish("a/2", b"", 1).mid
    assert on_alarm == 1 and on_readings == 1 + MID_SPAN  # both clients numbered it 1
    readings.on_published(1, None)
    alarm.on_published(1, None)
    assert acked == [on_readings, on_alarm]


def test_one_connection_is_the_link() -> None:
    readings = _Consumer()
    changes: list[bool] = []
    link = AlertLink([readings], window=256)
    link.bind(changes.append, lambda mid, error: None)
    readings.connected = True
    link.connection_changed()
    readings.connected = False
    link.connection_changed()
    assert changes == [True, False]
    assert link.publish("a/1", b"", 1).mid == 1
