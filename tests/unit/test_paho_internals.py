"""The private paho API that ``ingest._consumer._BurstClient`` builds on, checked loudly.

paho-mqtt is pinned to the minor version these were checked against (pyproject.toml); when an
upgrade changes any of them this test names what changed, instead of ingest stalling or losing
acks at run time.
"""

from __future__ import annotations

import inspect
from collections import deque

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, _ConnectionState
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ingest import _consumer
from ingest._consumer import MqttConsumer, _BurstClient
from ingest._lanes import Inbox

# name → the parameter names (after self) _BurstClient relies on
PRIVATE_METHODS = {
    "_sock_recv": ["bufsize"],
    "_packet_queue": ["command", "packet", "mid", "qos", "info"],
    "_packet_read": [],
    "_loop_rc_handle": ["rc"],
    "loop_write": [],
    "loop_read": ["max_packets"],
}


@pytest.mark.parametrize("name", sorted(PRIVATE_METHODS))
def test_paho_private_method_keeps_its_signature(name: str) -> None:
    method = getattr(mqtt.Client, name, None)
    assert method is not None, f"paho-mqtt {mqtt.__name__} has no Client.{name}: _BurstClient needs it"
    params = list(inspect.signature(method).parameters)[1:]
    assert params == PRIVATE_METHODS[name], f"Client.{name}{params}: _BurstClient was written for it"


def test_paho_private_attributes_exist() -> None:
    client = _BurstClient(CallbackAPIVersion.VERSION2, client_id="internals")
    assert hasattr(client, "_sock"), "Client._sock (the socket _BurstClient buffers reads from)"
    assert isinstance(client._out_packet, deque), "Client._out_packet (queued writes)"
    # loop_read treats rc > 0 as an error and AGAIN as "socket drained"
    assert MQTTErrorCode.MQTT_ERR_AGAIN.value < 0 < MQTTErrorCode.MQTT_ERR_NO_CONN.value
    assert mqtt.PUBACK == 0x40


def test_ack_many_queues_one_write_of_pubacks() -> None:
    client = _BurstClient(CallbackAPIVersion.VERSION2, client_id="internals")
    client.ack_many([1, 2, 0x1234])
    [packet] = list(client._out_packet)
    assert packet["packet"] == b"\x40\x02\x00\x01\x40\x02\x00\x02\x40\x02\x12\x34"


def test_qos0_dropped_under_overload_is_counted() -> None:
    drops: list[int] = []
    consumer = MqttConsumer(
        "mqtt://127.0.0.1:1", "internals", ["fire/#"], Inbox(), on_overload_drop=lambda: drops.append(1)
    )
    message = mqtt.MQTTMessage(mid=0, topic=b"fire/D01/smoke/S1")
    message.payload = b"{}"
    message.qos = 0

    for _ in range(_consumer.QOS0_INBOX_LIMIT + 5):
        consumer._on_message(consumer.client, None, message)
    assert consumer.overload_dropped == len(drops) == 4


@pytest.mark.parametrize(("announced", "expected"), [(None, 256), (10, 10), (16384, 256)])
def test_the_publish_window_is_capped_by_the_brokers_receive_maximum(
    announced: int | None, expected: int
) -> None:
    """paho sends up to 20 unacknowledged QoS 1 publications whatever the broker's CONNACK says;
    the consumer sets its window at each connect, at most the broker's Receive Maximum."""
    consumer = MqttConsumer("mqtt://127.0.0.1:1", "window", ["fire/#"], Inbox())
    consumer.publish_window = 256
    consumer.client._state = _ConnectionState.MQTT_CS_CONNECTED  # as paho sets it before on_connect
    properties = Properties(PacketTypes.CONNACK)  # type: ignore[no-untyped-call]
    if announced is not None:
        properties.ReceiveMaximum = announced
    consumer._on_connect(
        consumer.client,
        None,
        mqtt.ConnectFlags(False),
        ReasonCode(PacketTypes.CONNACK, "Success"),
        properties,
    )
    assert consumer.client._max_inflight_messages == expected
