"""The console on the broker (CONTRACT §10, §11): ``firegrid-console``, subscribed to ``alerts/#``
and ``actions/+/result``, publishing the signed-in workers' actions on ``actions/{worker_id}``.

paho runs its own network thread and reconnects by itself (with backoff); every callback hands
its work to the caller's callbacks at once. The session is clean: what was missed while
disconnected comes from a sync with ingest's API after each (re)connect, not from the broker.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from devices import MqttUrl, Topics

log = logging.getLogger(__name__)


def client_id() -> str:
    """Unique per console process, so that several consoles never take each other's place."""
    host = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:40]
    return f"firegrid-console-{host}-{os.getpid()}"


class ConsoleMqtt:
    """``on_alert(event)`` for each alert (parsed JSON object), ``on_result(worker_id, result)``
    for each action result, ``on_connected()`` once subscribed after each (re)connect."""

    def __init__(
        self,
        broker: MqttUrl,
        topics: Topics,
        *,
        on_alert: Callable[[dict[str, Any]], None],
        on_result: Callable[[str, dict[str, Any]], None],
        on_connected: Callable[[], None],
        ca_file: Path | None = None,
    ) -> None:
        self.broker = broker
        self.topics = topics
        self._on_alert = on_alert
        self._on_result = on_result
        self._on_connected = on_connected
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id(), protocol=MQTTProtocolVersion.MQTTv5
        )
        if broker.user is not None:
            client.username_pw_set(broker.user, broker.password)
        if broker.tls:
            context = ssl.create_default_context(cafile=ca_file)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            client.tls_set_context(context)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_message = self._message
        client.on_subscribe = self._subscribed
        self._subscription: int | None = None
        self.client = client
        self.connected = False

    def start(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.connected = False
        self.client.disconnect()
        self.client.loop_stop()

    def publish_action(self, worker_id: str, action: dict[str, Any]) -> bool:
        """Publish (QoS 1) on ``actions/{worker_id}``; False when not connected now."""
        if not self.connected:
            return False
        info = self.client.publish(self.topics.actions(worker_id), orjson.dumps(action), qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    # -- paho callbacks (its network thread) --------------------------------------------------------

    def _connected(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker %s refused the console: %s", self.broker, reason)
            return
        self.connected = True
        _, self._subscription = client.subscribe(
            [(self.topics.alerts_subscription, 1), (self.topics.results_subscription, 1)]
        )
        log.info("connected to the broker %s", self.broker)

    def _subscribed(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode], properties: Any
    ) -> None:
        if mid == self._subscription:  # only now does the broker route alerts to us
            self._on_connected()

    def _disconnected(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if self.connected:
            log.warning("lost the broker %s (%s); reconnecting", self.broker, reason)
        self.connected = False

    def _message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            document = orjson.loads(message.payload)
        except orjson.JSONDecodeError:
            log.warning("ignored a message on %s that is not JSON", message.topic)
            return
        if not isinstance(document, dict):
            return
        worker = self.topics.result_worker(message.topic)
        if worker is not None:
            self._on_result(worker, document)
        elif self.topics.parse_alert(message.topic) is not None:
            self._on_alert(document)
