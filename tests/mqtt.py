"""A small paho publisher/subscriber for tests."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

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


class ProbeClient:
    """A paho client (MQTT 5) for probing a broker's access rules: records its CONNACK, the
    PUBACKs' reason codes and the messages it receives."""

    def __init__(self, port: int, user: str | None, password: str | None = None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
        if user is not None:
            self.client.username_pw_set(user, password)
        self.connack: ReasonCode | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.pubacks: dict[int, int] = {}
        self.subacks: set[int] = set()
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        eventually(lambda: self.connack is not None, timeout=10, what=f"CONNACK for {user}")

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if self.connack is None:
            self.connack = reason

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        with self._lock:
            self.pubacks[mid] = reason.value

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, *args: Any) -> None:
        with self._lock:
            self.subacks.add(mid)

    @property
    def accepted(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def subscribe(self, *topics: str) -> None:
        for topic in topics:
            _, mid = self.client.subscribe(topic, 1)
            assert mid is not None
            self._wait_suback(mid, topic)

    def _wait_suback(self, mid: int, topic: str) -> None:
        eventually(lambda: mid in self.subacks, timeout=10, what=f"SUBACK for {topic}")

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS
        return eventually(lambda: self.pubacks.get(info.mid, -1) + 1, timeout=10, what=f"PUBACK {topic}") - 1

    def received(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        """Everything received up to and including the marker (topic, payload)."""
        eventually(lambda: (topic, payload) in self.received(), timeout=10, what=f"marker on {topic}")
        return self.received()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class SessionSubscriber:
    """A persistent MQTT session (fixed client id, clean_start False, session expiry): QoS 1
    messages published while it is away are queued for it by the broker, across its restart."""

    def __init__(self, url: str, client_id: str, topic: str) -> None:
        self.host, self.port, user, password = parse_mqtt_url(url)
        self.topic = topic
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        self.client.username_pw_set(user, password)
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()

    def connect(self, subscribe: bool) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 3600
        self.client.connect(self.host, self.port, clean_start=False, properties=properties)
        self.client.loop_start()
        eventually(self.client.is_connected, timeout=10, what=f"{self.topic} subscriber connected")
        if subscribe:
            self.client.subscribe(self.topic, qos=1)
            eventually(self._subscribed.is_set, timeout=10, what=f"SUBACK for {self.topic}")

    def disconnect(self) -> None:
        """Away, the session stays (its expiry is not over)."""
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, orjson.loads(message.payload)))

    def messages(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return list(self.received)
