"""The private paho API that ``ingest._consumer._BurstClient`` builds on, checked loudly.

paho-mqtt is pinned to the minor version these were checked against (pyproject.toml); when an
upgrade changes any of them this test names what changed, instead of ingest stalling or losing
acks at run time.
"""

from __future__ import annotations

import inspect
import struct
from collections import deque

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, _ConnectionState
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ingest import _consumer
from ingest._consumer import MqttConsumer, _BurstClient, _fixed_prefix
from ingest._lanes import Inbox

# name → the parameter names (after self) _BurstClient relies on
PRIVATE_METHODS = {
    "_sock_recv": ["bufsize"],
    "_packet_queue": ["command", "packet", "mid", "qos", "info"],
    "_packet_read": [],
    "_loop_rc_handle": ["rc"],
    "loop_write": [],
    "loop_read": ["max_packets"],
    "_handle_publish": [],
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
    # _handle_publish reads the packet paho read, and falls back to paho's own
    assert {"command", "packet"} <= set(client._in_packet), "Client._in_packet (the packet read)"
    assert client._manual_ack is False and client._protocol == mqtt.MQTTv311


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


ACTIONS = "firegrid/actions/+"


def _consumer_reading(
    body: bytes, header: int, *, plain: bool
) -> tuple[list[tuple[int, int, str, bytes, int]], list[str], str]:
    """Feed one PUBLISH packet to a consumer (with the plain path or paho's own): what reached
    the inbox, what reached the actions handler, and the error raised, if any."""
    inbox, actions = Inbox(), []
    consumer = MqttConsumer(
        "mqtt://127.0.0.1:1",
        "plain",
        ["fire/#"],
        inbox,
        extra_handlers={ACTIONS: lambda m: actions.append(m.topic)},
    )
    client = consumer.client
    client._protocol = mqtt.MQTTv5
    client.ack = lambda mid, qos: MQTTErrorCode.MQTT_ERR_SUCCESS  # type: ignore[method-assign]
    if not plain:
        client.on_plain_publish = None
    _feed(client, header, body)
    try:
        client._handle_publish()
    except Exception as exc:  # the error is compared, whatever it is
        error = type(exc).__name__
    else:
        error = ""
    taken = [(m.mid, m.qos, m.topic, m.payload, m.lane) for m in inbox.take(100, 0)]
    return taken, actions, error


def _feed(client: _BurstClient, header: int, body: bytes) -> None:
    """As paho's ``_packet_read`` leaves a packet for ``_handle_publish``."""
    client._in_packet["command"] = header
    client._in_packet["packet"] = bytearray(body)  # paho reads into a bytearray


def _publish_body(topic: bytes, qos: int, mid: int, properties: bytes, payload: bytes) -> bytes:
    variable = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"")
    return variable + bytes([len(properties)]) + properties + payload


TOPICS = st.one_of(
    st.sampled_from(
        [b"fire/D01/smoke/S1", b"firegrid/actions/G1", b"firegrid/actionsX", b"", b"fire/\xff/x"]
    ),
    st.text(max_size=30).map(str.encode),
)
PROPERTIES = st.sampled_from([b"", b"\x01\x01", b"\x23\x00\x05"])  # none, payload format, topic alias


@given(
    topic=TOPICS,
    qos=st.sampled_from([0, 1]),
    mid=st.integers(1, 65535),
    properties=PROPERTIES,
    payload=st.binary(max_size=40),
)
def test_the_plain_publish_path_delivers_what_paho_delivers(
    topic: bytes, qos: int, mid: int, properties: bytes, payload: bytes
) -> None:
    body = _publish_body(topic, qos, mid, properties, payload)
    header = 0x30 | qos << 1
    assert _consumer_reading(body, header, plain=True) == _consumer_reading(body, header, plain=False)


@given(body=st.binary(max_size=24), qos=st.sampled_from([0, 1]))
def test_a_malformed_publish_fails_as_in_paho(body: bytes, qos: int) -> None:
    header = 0x30 | qos << 1
    assert _consumer_reading(body, header, plain=True) == _consumer_reading(body, header, plain=False)


def test_the_plain_path_takes_plain_readings_only() -> None:
    """Readings go the plain way (paho's path is not taken: no MQTTMessage); an action, a
    PUBLISH with properties and a QoS 2 one (delivered by paho on its PUBREL) go through paho."""
    seen: list[str] = []
    consumer = MqttConsumer(
        "mqtt://127.0.0.1:1",
        "plain",
        ["fire/#"],
        Inbox(),
        extra_handlers={ACTIONS: lambda m: seen.append("paho")},
    )
    client = consumer.client
    client._protocol = mqtt.MQTTv5
    client.ack = lambda mid, qos: MQTTErrorCode.MQTT_ERR_SUCCESS  # type: ignore[method-assign]
    client.on_message = lambda *args: seen.append("paho")
    client.on_plain_publish = lambda *args: seen.append("plain")
    cases = [
        (b"fire/D01/smoke/S1", 1, b"", "plain"),
        (b"firegrid/actions/G1", 1, b"", "paho"),
        (b"fire/D01/smoke/S1", 1, b"\x01\x01", "paho"),
        (b"fire/D01/smoke/S1", 2, b"", "paho"),
    ]
    for topic, qos, properties, expected in cases:
        seen.clear()
        _feed(client, 0x30 | qos << 1, _publish_body(topic, qos, 7, properties, b"{}"))
        client._handle_publish()
        assert seen == ([expected] if expected == "plain" or qos < 2 else []), (topic, qos, properties)


@pytest.mark.parametrize(
    ("topic_filter", "prefix"),
    [("firegrid/actions/+", "firegrid/actions"), ("a/#", "a"), ("#", ""), ("+/x", ""), ("a/b", "a/b")],
)
def test_a_filters_fixed_prefix_starts_every_topic_it_matches(topic_filter: str, prefix: str) -> None:
    assert _fixed_prefix(topic_filter) == prefix
    for topic in ("a", "a/b", "firegrid/actions/G1", "x/x"):
        if mqtt.topic_matches_sub(topic_filter, topic):
            assert topic.startswith(prefix)
