"""The MQTT side: a persistent QoS 1 session whose messages are acked only once durable.

paho-mqtt 2.x with ``manual_ack=True``. The network thread only appends messages to an inbox;
the pipeline thread takes everything waiting as one batch (batches grow by themselves under
load), makes it durable and acks it in arrival order (MQTT §4.6). A reconnect starts a new
*generation*: acks for messages of an older connection are dropped, since the broker redelivers
those anyway.

paho reads one packet per socket-readiness event at QoS 1 (its ``loop_read`` budget counts only
in-flight QoS 2 messages), which costs a ``select`` per message; :class:`_BurstClient` reads
every packet already buffered instead, as Home Assistant does (its PR #118222).
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from devices import MqttError, MqttUrl, SettingsError
from ingest._lanes import READINGS_LANE, Inbox
from ingest._pipeline import InMessage, wall_ms

log = logging.getLogger(__name__)

RECEIVE_MAXIMUM = 16384
SESSION_EXPIRY_S = 7 * 24 * 3600
READ_BURST = 1000
QOS0_INBOX_LIMIT = 200_000
PAHO_INFLIGHT = 20
"""paho's own default of unacknowledged QoS 1 publications."""
REFUSED_LOGIN = frozenset({0x86, 0x87, 0x8A, 0x8C})
"""CONNACK reasons that no retry can cure: bad user name or password, not authorized, banned,
bad authentication method. The service stops (exit 3) instead of reconnecting forever."""


_PUBACK = struct.Struct("!BBH")  # MQTT 5 PUBACK, reason "success" left implicit (remaining length 2)


class _BurstClient(mqtt.Client):
    """paho with buffered reads, burst reading and batched PUBACKs (private paho API, paho < 3).

    paho reads each packet with several ``recv`` calls (command byte, each length byte, body):
    four system calls a message. Reading 256 KiB at a time and serving paho's small reads from
    that buffer makes it about one per few hundred messages. The buffer is always drained before
    paho goes back to ``select``: ``loop_read`` reads until the socket would block.
    """

    _RECV_CHUNK = 256 * 1024
    _rbuf: bytes = b""
    _rpos: int = 0
    _rsock: object = None
    on_certificate_refused: Callable[[ssl.SSLCertVerificationError], None] = staticmethod(lambda exc: None)
    """Told when the broker's TLS certificate fails verification, on whichever thread connects
    (paho's loop only logs a failed reconnect at debug level and retries)."""

    def reconnect(self) -> MQTTErrorCode:
        try:
            return super().reconnect()
        except ssl.SSLCertVerificationError as exc:
            self.on_certificate_refused(exc)
            raise

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rsock is not self._sock:  # a new connection: nothing buffered belongs to it
            self._rbuf, self._rpos, self._rsock = b"", 0, self._sock
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(self._RECV_CHUNK)  # raises BlockingIOError when empty
            if not data:
                return data  # end of stream
            self._rbuf, self._rpos = data, 0
        start = self._rpos
        self._rpos = min(start + bufsize, len(self._rbuf))
        return self._rbuf[start : self._rpos]

    on_plain_publish: Callable[[int, int, str, bytes], None] | None = None
    """Takes (mid, qos, topic, payload) of every QoS 0/1 PUBLISH without properties whose topic
    starts with none of :attr:`handled_prefixes` (None: paho handles every PUBLISH)."""
    handled_prefixes: tuple[str, ...] = ()
    """Topic prefixes of the filtered callbacks (``message_callback_add``): paho routes those."""

    def _handle_publish(self) -> MQTTErrorCode:
        """The common PUBLISH (QoS 0/1, MQTT 5, no properties, UTF-8 topic) straight to
        :attr:`on_plain_publish`, without paho's ``Properties``, ``MQTTMessage`` (and its
        ``Condition``) and callback matching: 5 times less of the network thread's CPU per
        message (measured), which the pipeline gets back under the GIL. Anything else, malformed
        packets included, goes through paho as before."""
        deliver = self.on_plain_publish
        header, body = self._in_packet["command"], self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        if (
            deliver is None
            or qos == 2
            or not self._manual_ack
            or self._protocol != MQTTProtocolVersion.MQTTv5
        ):
            return super()._handle_publish()
        size = len(body)
        topic_end = 2 + ((body[0] << 8) | body[1]) if size >= 2 else size + 1
        properties_at = topic_end + 2 if qos else topic_end
        if properties_at >= size or body[properties_at] != 0:  # properties (or malformed): paho
            return super()._handle_publish()
        try:
            topic = body[2:topic_end].decode()
        except UnicodeDecodeError:
            return super()._handle_publish()
        if not topic or topic.startswith(self.handled_prefixes):
            return super()._handle_publish()
        mid = (body[topic_end] << 8) | body[topic_end + 1] if qos else 0
        deliver(mid, qos, topic, bytes(body[properties_at + 1 :]))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def set_publish_window(self, maximum: int) -> None:
        """paho's limit of unacknowledged QoS 1 publications, also on an open connection (from
        the CONNACK callback), which its public setter refuses (private paho API, paho < 3)."""
        self._max_inflight_messages = max(1, maximum)

    def ack_many(self, mids: list[int]) -> None:
        """PUBACK every mid, in order, as one queued write (paho's ``ack`` wakes the network
        thread and sends one 4-byte packet per message: a third of the ingest CPU at 10k msg/s)."""
        if mids:
            pack = _PUBACK.pack
            self._packet_queue(PUBACK, b"".join([pack(PUBACK, 2, mid) for mid in mids]), 0, 0)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        packets = 0
        # Never return with bytes left in the buffer: select() would not see them and the
        # session would stall until the next packet (or keepalive) arrives.
        while packets < READ_BURST or self._rpos < len(self._rbuf):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            packets += 1
            if self._out_packet:
                # an alert (or PUBACKs) queued by another thread: send it now, not after the
                # burst (under a flood of readings a burst took up to 150 ms; measured)
                rc = self.loop_write()
                if rc > 0:
                    return rc
        return MQTTErrorCode.MQTT_ERR_SUCCESS


class MqttConsumer:
    def __init__(
        self,
        url: str,
        client_id: str,
        subscriptions: list[str],
        inbox: Inbox,
        *,
        on_fatal: Callable[[BaseException], None] = lambda exc: None,
        on_overload_drop: Callable[[], None] = lambda: None,
        extra_handlers: dict[str, Callable[[mqtt.MQTTMessage], None]] | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        clock_ms: Callable[[], int] = wall_ms,
        lane: int = READINGS_LANE,
        unsubscriptions: Sequence[str] = (),
    ) -> None:
        """``ca_file``: the CA (PEM) that an ``mqtts://`` broker's certificate must chain to;
        None: the system's trust store. Host names are always checked. ``clock_ms``: the service
        clock, each message's ``received_ms``. ``lane``: the inbox lane its messages go to.
        ``unsubscriptions``: filters the persistent session may hold from an earlier version and
        must drop, unsubscribed at each connect."""
        self._clock_ms = clock_ms
        self.lane = lane
        self.address = MqttUrl.parse(url)
        self.ca_file = ca_file
        self.inbox = inbox
        self.subscriptions = subscriptions
        self.unsubscriptions = list(unsubscriptions)
        self.generation = 0
        self.connected = False
        self.overload_dropped = 0
        self._on_overload_drop = on_overload_drop
        self.on_connection_change: Callable[[bool], None] = lambda up: None
        """Told of every connect (True) and loss (False), on the network thread; set it before
        :meth:`start` (the service does, once the sinks that need it exist)."""
        self.publish_window = PAHO_INFLIGHT
        """QoS 1 publications of this client unacknowledged at most (the alert outbox's window on
        the connection alerts leave on); at each connect capped by the broker's Receive Maximum,
        which paho does not read itself (a broker may disconnect a client that exceeds it)."""
        self.on_published: Callable[[int, str | None], None] = lambda mid, error: None
        """Told of the PUBACK of each QoS 1 message this client published (its mid, and the
        reason when the broker refused it), on the network thread while paho holds its lock:
        it must not block or wait for a lock a publishing thread may hold."""
        self._on_fatal = on_fatal
        client = _BurstClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if self.address.user:
            client.username_pw_set(self.address.user, self.address.password)
        if self.address.tls:
            client.tls_set_context(_tls_context(ca_file))
            client.on_certificate_refused = self._on_certificate_refused
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        for topic_filter, handler in (extra_handlers or {}).items():
            client.message_callback_add(topic_filter, self._wrap(handler))
        client.handled_prefixes = tuple(_fixed_prefix(f) for f in extra_handlers or {})
        client.on_plain_publish = self._deliver
        self.client = client

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        try:
            self.client.connect(
                self.address.host, self.address.port, keepalive=30, clean_start=False, properties=properties
            )
        except ssl.SSLCertVerificationError:
            return  # fatal, already reported by on_certificate_refused
        except OSError as exc:
            log.warning("MQTT broker %s unreachable (%s); retrying in the background", self.address, exc)
            self.client.connect_async(
                self.address.host, self.address.port, keepalive=30, clean_start=False, properties=properties
            )
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect without unsubscribing: the session (and messages queued in it) stays."""
        self.client.disconnect()
        self.client.loop_stop()

    def ack(self, messages: Sequence[InMessage]) -> None:
        """Acknowledge those of ``messages`` (in arrival order) that came on this consumer's
        lane and current connection."""
        generation, lane = self.generation, self.lane
        self.client.ack_many(
            [m.mid for m in messages if m.qos == 1 and m.generation == generation and m.lane == lane]
        )

    # -- paho callbacks (network thread) -----------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            if reason.value in REFUSED_LOGIN:
                user = self.address.user
                who = f"the login of user {user}" if user else "an anonymous login"
                client.disconnect()
                self._on_fatal(MqttError(f"MQTT broker {self.address} refused {who}: {reason}"))
            else:
                log.warning("MQTT broker %s refused the connection: %s", self.address, reason)
            return
        self.generation += 1
        broker_maximum = getattr(properties, "ReceiveMaximum", 65535)  # absent: 65,535 (MQTT 5 §3.2.2.3.3)
        self.client.set_publish_window(min(self.publish_window, broker_maximum))
        sock = client.socket()
        if isinstance(sock, socket.socket):
            # without it, an alert published right after a burst of PUBACKs waits for the
            # broker's delayed ACK (Nagle): ~40 ms more per alert, measured
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.info("connected to MQTT broker %s (session present: %s)", self.address, flags.session_present)
        client.subscribe([(topic, 1) for topic in self.subscriptions])
        if self.unsubscriptions:
            client.unsubscribe(self.unsubscriptions)
        self.connected = True
        self.on_connection_change(True)

    def _on_certificate_refused(self, exc: ssl.SSLCertVerificationError) -> None:
        trusted = f"the CA of {self.ca_file}" if self.ca_file else "the system's CAs"
        reason = exc.verify_message or exc.reason or str(exc)
        self._on_fatal(
            MqttError(f"MQTT broker {self.address}: TLS certificate refused ({reason}; trusting {trusted})")
        )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self.connected:
            log.warning("disconnected from MQTT broker %s: %s", self.address, reason)
        self.connected = False
        self.on_connection_change(False)

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.on_published(mid, str(reason) if reason.is_failure else None)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._deliver(message.mid, message.qos, message.topic, bytes(message.payload))

    def _deliver(self, mid: int, qos: int, topic: str, payload: bytes) -> None:
        if qos == 0 and len(self.inbox) > QOS0_INBOX_LIMIT:
            self.overload_dropped += 1
            self._on_overload_drop()
            return
        self.inbox.put(InMessage(mid, qos, topic, payload, self._clock_ms(), self.generation, self.lane))

    def _wrap(
        self, handler: Callable[[mqtt.MQTTMessage], None]
    ) -> Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None]:
        def callback(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
            try:
                handler(message)
            except Exception:
                log.exception("handler for %s failed", message.topic)
            finally:
                if message.qos:
                    client.ack(message.mid, message.qos)

        return callback


def _tls_context(ca_file: str | os.PathLike[str] | None) -> ssl.SSLContext:
    """Verify the broker's certificate chain and host name (TLS 1.2 or later)."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except OSError as exc:  # ssl.SSLError included
        raise SettingsError(
            f"cannot load the MQTT CA certificates from {ca_file}: {exc.strerror or exc}"
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def end_session(
    url: str, client_id: str, *, ca_file: str | os.PathLike[str] | None = None, timeout: float = 10.0
) -> bool:
    """End the persistent session ``client_id`` may hold at the broker, and drop what it queued: a
    clean start with a session expiry of 0, then a disconnect. False (logged) when the broker did
    not accept the connection within ``timeout`` s."""
    address = MqttUrl.parse(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    if address.user:
        client.username_pw_set(address.user, address.password)
    if address.tls:
        client.tls_set_context(_tls_context(ca_file))
    accepted = threading.Event()
    client.on_connect = lambda c, u, flags, reason, properties: None if reason.is_failure else accepted.set()
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = 0
    try:
        client.connect(address.host, address.port, keepalive=30, clean_start=True, properties=properties)
    except (OSError, ValueError) as exc:
        log.warning("could not end the MQTT session %s at %s: %s", client_id, address, exc)
        return False
    client.loop_start()
    try:
        if not accepted.wait(timeout):
            log.warning(
                "could not end the MQTT session %s at %s: no CONNACK in %.0f s", client_id, address, timeout
            )
            return False
        return True
    finally:
        client.disconnect()
        client.loop_stop()


def _fixed_prefix(topic_filter: str) -> str:
    """A prefix of every topic ``topic_filter`` matches (the text before its first wildcard,
    without the trailing slash, as ``a/#`` matches ``a`` too)."""
    return topic_filter.split("+", 1)[0].split("#", 1)[0].rstrip("/")
