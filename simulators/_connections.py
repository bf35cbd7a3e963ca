"""One MQTT connection per device, all driven from the caller's thread.

Every device signs in as itself (MQTT 5, its own password), so the broker's per-device ACL is
exercised as in the field. There is no thread per device and no network thread at all: each
client's socket sits in one selector (epoll), which :meth:`DeviceConnections.service` polls.
paho writes a publish at once when it has no network thread, so the selector waits only for
reads (CONNACK, PUBACK, PINGRESP) and for the rare socket whose send buffer was full.

Connections are opened up front by :meth:`DeviceConnections.open`, at most ``connect_rate`` a
second and ``connect_window`` waiting for their CONNACK at once (mosquitto checks a password on
its single thread; beyond its listen backlog a dropped SYN would cost a second). A refused login
(CONNACK ≥ 0x80: a wrong password, an unknown principal) is final for that device and reported in
:attr:`DeviceConnections.failures`; a connection lost later is reopened with backoff, and a login
refused then (its password was rotated, the broker reloaded) is reported the same way.

Clients may also subscribe (``subscriptions``, one list of topic filters per login, QoS 1,
subscribed again on every connect since each starts clean) and hand what arrives to
``on_message(index, topic, payload)`` on the caller's thread; :meth:`DeviceConnections.wait_subscribed`
waits for the SUBACKs. The simulated workers (``_responders``) read their alerts this way.

QoS 1 publishes are tracked per device until their PUBACK; one with a reason code ≥ 0x80 (0x87,
not authorised: a topic the device's ACL does not allow) is *refused*. Publishes with
``watch=True`` go at QoS 1 whatever the run's QoS, so that their verdict is known (at QoS 0 the
broker drops a refused message silently).
"""

from __future__ import annotations

import collections
import contextlib
import resource
import selectors
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

IDLE: Final = 0
CONNECTING: Final = 1
UP: Final = 2
DOWN: Final = 3
"""Lost after being up; reopened at ``_retry_at``."""
FAILED: Final = 4
"""The broker refused the login, or it could not be opened: no more attempts."""
CLOSED: Final = 5

OPEN_ATTEMPTS: Final = 3
"""Transport failures (no CONNACK, connection reset) tolerated per device before it is failed."""
RECONNECT_MIN_S: Final = 0.5
RECONNECT_MAX_S: Final = 10.0
FDS_SPARE: Final = 256
CONNECT_RATE: Final = 2000.0
"""New connections a second, at most, by default (mosquitto checks each password on its one thread;
on 2 cores, client and broker together managed ~4,500 a second)."""


class _DeviceClient(mqtt.Client):
    """paho's client, connecting without binding first.

    paho binds every socket to ``("", 0)`` before connecting; ``bind`` must then find a port free
    for every destination, a search that slows down as ports fill up (ephemeral ports held by the
    other devices' connections and by TIME_WAIT): with 9,468 devices it took 23 s of a 42 s start.
    ``connect`` on an unbound socket picks a port per destination, in microseconds. Overrides
    paho's private ``_create_socket_connection`` (checked in tests/unit/simulators/test_per_device.py).
    """

    def _create_socket_connection(self) -> socket.socket:
        return socket.create_connection((self._host, self._port), timeout=self._connect_timeout)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A QoS 1 publish whose PUBACK carried a failure reason code."""

    device: str
    topic: str
    kind: str
    reason: str
    watched: bool
    """Published with ``watch=True`` (the caller expected the refusal)."""


@dataclass(slots=True)
class _Pending:
    topic: str
    kind: str
    watched: bool


class DeviceConnections:
    """MQTT 5 clients, one per ``(username, password)`` of ``logins``, on one selector.

    Use: :meth:`open`, then :meth:`publish` by index and :meth:`service` between blocks (or
    :meth:`idle` instead of sleeping), then :meth:`drain` and :meth:`close`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        logins: Sequence[tuple[str, str]],
        *,
        qos: int = 0,
        client_prefix: str = "",
        keepalive: int = 60,
        connect_rate: float = CONNECT_RATE,
        connect_window: int = 64,
        connect_timeout: float = 10.0,
        subscriptions: Sequence[Sequence[str]] | None = None,
        on_message: Callable[[int, str, bytes], None] | None = None,
    ) -> None:
        if not connect_rate > 0:
            raise ValueError(f"connect rate must be positive, not {connect_rate}")
        if subscriptions is not None and len(subscriptions) != len(logins):
            raise ValueError("subscriptions needs one list of topic filters per login")
        self.host = host
        self.port = port
        self.names = [name for name, _ in logins]
        self._passwords = [password for _, password in logins]
        self.qos = qos
        self.client_prefix = client_prefix
        self.keepalive = keepalive
        self.connect_rate = connect_rate
        self.connect_window = max(1, connect_window)
        self.connect_timeout = connect_timeout
        n = len(logins)
        self.clients: list[mqtt.Client | None] = [None] * n
        self.state = [IDLE] * n
        self.failures: dict[str, str] = {}
        """Device → why it is not connected (final)."""
        self.unsent: dict[str, int] = {}
        """Device → messages not published because it was not connected."""
        self.refusals: list[Refusal] = []
        self.accepted_watched: list[tuple[str, str]] = []
        """(device, topic) of watched publishes the broker accepted."""
        self.published = 0
        self.acked = 0
        """QoS 1 publishes answered by a PUBACK (refused ones included)."""
        self.reconnects = 0
        self.connect_seconds = 0.0
        self.connected_at_start = 0
        self._pending: list[dict[int, _Pending]] = [{} for _ in range(n)]
        self._unchecked = [True] * n
        self._attempts = [0] * n
        self._deadline: dict[int, float] = {}
        """Connections waiting for their CONNACK, with the time they give up."""
        self._retry_at: dict[int, float] = {}
        self._backoff = [RECONNECT_MIN_S] * n
        self._writing: set[int] = set()
        self._busy: set[int] = set()
        """Devices with QoS 1 publishes awaiting their PUBACK."""
        self._selector = selectors.DefaultSelector()
        self._next_misc = 0.0
        self._misc_every = max(1.0, keepalive / 4)
        """Keepalive bookkeeping (paho's ``loop_misc``, O(devices)) this often: a PINGREQ is then at
        most a quarter of the keepalive late, well within the broker's 1.5 × keepalive."""
        self._closing = False
        self._opening = False
        self._queue: collections.deque[int] = collections.deque()
        self._subscriptions = [list(topics) for topics in subscriptions] if subscriptions else None
        self._on_message_cb = on_message
        self._subscribing: dict[int, int] = {}
        """Connections whose SUBSCRIBE awaits its SUBACK → the SUBSCRIBE's message id."""
        self.lost: dict[str, str] = {}
        """Device → why its connection is down now (it is being reopened)."""
        _raise_fd_limit(n + FDS_SPARE)

    # -- opening ---------------------------------------------------------------------------------

    def open(
        self, stop: Callable[[], bool] | None = None, on_progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Connect every device; returns once each has its answer (or ``stop()`` says so).

        Raises ``ConnectionError`` when the broker cannot be reached at all, or refused every login.
        """
        started = time.monotonic()
        n = len(self.names)
        self._queue.extend(range(n))
        self._opening = True
        begun = 0
        try:
            while self._queue or self._deadline:
                if stop is not None and stop():
                    break
                now = time.monotonic()
                allowed = int((now - started) * self.connect_rate) + 1 - begun
                while allowed > 0 and self._queue and len(self._deadline) < self.connect_window:
                    begun += 1
                    allowed -= 1
                    self._start(self._queue.popleft(), now)
                self.service(0.001 if self._queue else 0.01)
                self._expire(time.monotonic())
                if on_progress is not None:
                    on_progress(n - len(self._queue) - len(self._deadline), n)
        finally:
            self._opening = False
            self.connect_seconds = time.monotonic() - started
            self.connected_at_start = self.connected
        if n and not self.connected and not (stop is not None and stop()):
            first = self.names[0]
            raise ConnectionError(
                f"no device could sign in to the MQTT broker at {self.host}:{self.port} "
                f"(first: {first}: {self.failures.get(first, 'not connected')})"
            )

    @property
    def connected(self) -> int:
        return sum(1 for s in self.state if s == UP)

    def _client(self, i: int) -> mqtt.Client:
        client = self.clients[i]
        if client is None:
            client = _DeviceClient(
                CallbackAPIVersion.VERSION2,
                client_id=f"{self.client_prefix}{self.names[i]}",
                protocol=MQTTProtocolVersion.MQTTv5,
                userdata=i,
            )
            client.username_pw_set(self.names[i], self._passwords[i])
            client.max_inflight_messages_set(0)  # paho's window scans its queue on every ack
            client.max_queued_messages_set(0)
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            # on_publish is set only while QoS 1 publishes await their PUBACK: with it, paho
            # builds a ReasonCode and a Properties object for every QoS 0 message it writes
            # (a fifth of the cost of a publish)
            if self._on_message_cb is not None:
                client.on_message = self._on_message
            if self._subscriptions is not None:
                client.on_subscribe = self._on_subscribe
            client.on_socket_open = self._on_socket_open
            client.on_socket_close = self._on_socket_close
            client.connect_async(self.host, self.port, self.keepalive, clean_start=True)
            self.clients[i] = client
        return client

    def _start(self, i: int, now: float) -> None:
        """Open device ``i``'s connection and send its CONNECT (the CONNACK comes later)."""
        client = self._client(i)
        self._attempts[i] += 1
        self.state[i] = CONNECTING
        self._deadline[i] = now + self.connect_timeout
        try:
            client.reconnect()
        except OSError as exc:
            self._deadline.pop(i, None)
            if (
                self._opening
                and not self.connected
                and isinstance(exc, ConnectionRefusedError | socket.gaierror)
            ):
                raise ConnectionError(
                    f"cannot connect to the MQTT broker at {self.host}:{self.port}: {exc}"
                ) from exc
            self._transport_failure(i, f"cannot connect: {exc}")

    def _expire(self, now: float) -> None:
        """Give up on the connections whose CONNACK is overdue."""
        for i, deadline in list(self._deadline.items()):
            if now > deadline:
                del self._deadline[i]
                self.state[i] = IDLE  # before the DISCONNECT, so that _on_disconnect ignores it
                client = self.clients[i]
                if client is not None:
                    client.disconnect()
                self._transport_failure(i, f"no CONNACK within {self.connect_timeout:g} s")

    def _transport_failure(self, i: int, why: str) -> None:
        """The connection could not be opened: try again (while opening, a few times), or fail."""
        if self._opening:
            if self._attempts[i] >= OPEN_ATTEMPTS:
                self._fail(i, f"{why} ({self._attempts[i]} attempts)")
            else:
                self.state[i] = IDLE
                self._queue.append(i)
        else:
            self.lost[self.names[i]] = why
            self._schedule(i)

    def _fail(self, i: int, why: str) -> None:
        self.state[i] = FAILED
        self._deadline.pop(i, None)
        self._retry_at.pop(i, None)
        self.failures[self.names[i]] = why

    def _schedule(self, i: int) -> None:
        self.state[i] = DOWN
        self._retry_at[i] = time.monotonic() + self._backoff[i]
        self._backoff[i] = min(RECONNECT_MAX_S, self._backoff[i] * 2)

    # -- paho callbacks (all on this thread) -----------------------------------------------------

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._selector.register(sock, selectors.EVENT_READ, userdata)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        self._writing.discard(userdata)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        i: int = userdata
        self._deadline.pop(i, None)
        if self._closing:
            return
        if reason.is_failure:
            when = "" if self._opening else " when it reconnected"
            self._fail(i, f"the broker refused its login{when}: {reason}")
            return
        self.state[i] = UP
        self._attempts[i] = 0
        self._backoff[i] = RECONNECT_MIN_S
        self.lost.pop(self.names[i], None)
        topics = self._subscriptions[i] if self._subscriptions is not None else None
        if topics:
            _rc, mid = client.subscribe([(topic, 1) for topic in topics])
            if mid is not None:
                self._subscribing[i] = mid
            if client.want_write():  # inside a callback paho queues the packet without writing it
                self._want_write(i, client)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any
    ) -> None:
        i: int = userdata
        if self._subscribing.get(i) == mid:
            del self._subscribing[i]

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        assert self._on_message_cb is not None
        self._on_message_cb(userdata, message.topic, bytes(message.payload))

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        i: int = userdata
        if self._closing:
            return
        if self.state[i] == CONNECTING:  # closed before its CONNACK
            self._deadline.pop(i, None)
            self._transport_failure(i, f"connection closed before the CONNACK ({reason})")
        elif self.state[i] == UP:
            self.lost[self.names[i]] = f"connection lost ({reason})"
            self._schedule(i)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, properties: Any
    ) -> None:
        i: int = userdata
        waiting = self._pending[i]
        pending = waiting.pop(mid, None)
        if not waiting:
            client.on_publish = None
        if pending is None:  # a QoS 0 publish, written
            return
        self.acked += 1
        if reason.is_failure:
            self.refusals.append(
                Refusal(self.names[i], pending.topic, pending.kind, str(reason), pending.watched)
            )
        elif pending.watched:
            self.accepted_watched.append((self.names[i], pending.topic))

    # -- traffic ---------------------------------------------------------------------------------

    def publish(self, i: int, topic: str, payload: bytes, kind: str, *, watch: bool = False) -> bool:
        """Publish as device ``i``; False when it is not connected (counted in :attr:`unsent`).

        The first publish of each connection, and every watched one, go at QoS 1."""
        if self.state[i] != UP:
            name = self.names[i]
            self.unsent[name] = self.unsent.get(name, 0) + 1
            return False
        client = self.clients[i]
        assert client is not None
        qos = 1 if watch or self._unchecked[i] else self.qos
        if qos and not self._pending[i]:
            client.on_publish = self._on_publish
        info = client.publish(topic, payload, qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            name = self.names[i]
            self.unsent[name] = self.unsent.get(name, 0) + 1
            return False
        self._unchecked[i] = False
        self.published += 1
        if qos:
            self._pending[i][info.mid] = _Pending(topic, kind, watch)
            self._busy.add(i)
        if client.want_write() and i not in self._writing:
            self._want_write(i, client)
        return True

    def _want_write(self, i: int, client: mqtt.Client) -> None:
        sock = client.socket()
        if sock is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, i)
            self._writing.add(i)

    def service(self, timeout: float = 0.0) -> None:
        """Read what arrived, write what waits, keep connections alive, reopen lost ones."""
        for key, mask in self._selector.select(timeout):
            i: int = key.data
            client = self.clients[i]
            if client is None:
                continue
            if mask & selectors.EVENT_READ:
                client.loop_read()
            if mask & selectors.EVENT_WRITE and client.socket() is not None:
                client.loop_write()
                if not client.want_write():
                    self._writing.discard(i)
                    sock = client.socket()
                    if sock is not None:
                        with contextlib.suppress(KeyError, ValueError):
                            self._selector.modify(sock, selectors.EVENT_READ, i)
        now = time.monotonic()
        if now >= self._next_misc:
            self._next_misc = now + self._misc_every
            for i, state in enumerate(self.state):
                client = self.clients[i]
                if state == UP and client is not None:
                    client.loop_misc()
        if not self._opening and not self._closing:
            if self._deadline:
                self._expire(now)
            if self._retry_at:
                self._reopen(now)

    def _reopen(self, now: float) -> None:
        """Reopen lost connections that are due, within the connect rate and window."""
        budget = max(1, int(self.connect_rate * 0.01))
        for i, at in sorted(self._retry_at.items(), key=lambda item: item[1]):
            if at > now or budget <= 0 or len(self._deadline) >= self.connect_window:
                break
            del self._retry_at[i]
            budget -= 1
            self.reconnects += 1
            self._start(i, now)

    def wait_subscribed(self, timeout: float, stop: Callable[[], bool] | None = None) -> list[str]:
        """Wait until every connection that is up has its SUBACK; returns those still waiting."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (stop is not None and stop()):
            if not any(self.state[i] == UP for i in self._subscribing):
                break
            self.service(0.01)
        return [self.names[i] for i in self._subscribing if self.state[i] == UP]

    def idle(self, seconds: float) -> None:
        """Wait up to ``seconds`` for network events (instead of sleeping)."""
        self.service(max(0.0, seconds))

    @property
    def unacked(self) -> int:
        return sum(len(self._pending[i]) for i in self._busy)

    def drain(self, timeout: float) -> int:
        """Flush every socket and wait for the PUBACKs; returns the QoS 1 publishes left unacked."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._busy = {i for i in self._busy if self._pending[i]}
            waiting = any(self.state[i] in (UP, DOWN, CONNECTING) for i in self._busy)
            if not waiting and not self._writing:
                break
            self.service(0.01)
        return self.unacked

    def close(self) -> None:
        """DISCONNECT every connection (paho closes each socket once its DISCONNECT is written)."""
        self._closing = True
        for i, client in enumerate(self.clients):
            if client is not None and client.socket() is not None:
                with contextlib.suppress(Exception):
                    client.disconnect()
                if client.want_write():
                    self._want_write(i, client)
            if self.state[i] != FAILED:
                self.state[i] = CLOSED
        deadline = time.monotonic() + 1.0
        while self._writing and time.monotonic() < deadline:
            self.service(0.01)
        for client in self.clients:
            sock = client.socket() if client is not None else None
            if sock is not None:  # its DISCONNECT could not be written: just close
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)
                sock.close()
        self._selector.close()


def _raise_fd_limit(wanted: int) -> None:
    """Raise this process's soft limit of open files to ``wanted`` (within the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
