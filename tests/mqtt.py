"""A small paho publisher/subscriber for tests."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from simulators import parse_mqtt_url
from tests.helpers import eventually


class TestClient:
    __test__ = False

    def __init__(self, url: str, client_id: str = "") -> None:
        """``url``: ``mqtt://user:password@host:port``, e.g. ``broker.url_as(SIMULATOR_ACCOUNT)``."""
        host, port, user, password = parse_mqtt_url(url)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        if user is not None:
            self.client.username_pw_set(user, password)
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subacked: set[int] = set()
        self.client.max_inflight_messages_set(1000)
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect(host, port)
        self.client.loop_start()
        eventually(self.client.is_connected, timeout=10, what="test MQTT client connected")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, *args: Any) -> None:
        with self._lock:
            self._subacked.add(mid)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK: only then does the broker route to us (a publish
        on another connection may otherwise overtake the subscription)."""
        result, mid = self.client.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert mid is not None
        eventually(lambda: mid in self._subacked, timeout=10, what=f"SUBACK for {topic}")

    def publish(self, topic: str, payload: bytes | str | dict[str, Any] | list[Any], qos: int = 1) -> None:
        if isinstance(payload, dict | list):
            payload = orjson.dumps(payload)
        info = self.client.publish(topic, payload, qos=qos)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc

    def publish_many(self, items: Iterable[tuple[str, bytes]], qos: int = 1) -> int:
        infos = [self.client.publish(topic, payload, qos=qos) for topic, payload in items]
        for info in infos:
            info.wait_for_publish(30)
        return len(infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
