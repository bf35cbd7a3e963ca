"""The traffic runner: publishes the fleet's messages to MQTT at a steady rate.

Pacing is deadline based: message ``n`` is due at ``t0 + n / rate``; each turn of the loop
publishes every message that is due by now (so a stall is caught up, never accumulated as drift)
and sleeps only when nothing is due. paho runs without its network thread (``client.loop(0)``
between blocks), which is about 40 % faster than ``loop_start()`` in one process.

Simulated time runs ``time_scale`` times faster than the wall clock and ends at the wall clock's
"now" at the end of the run (so no ``ts`` is ever in the future). Background telemetry is spread
over the devices in proportion to ``1 / heartbeat``; patrol scans, scenario reports and hostile
messages come on top of it, inside the same rate budget.

All traffic goes through one connection (the URL's user, normally ``firegrid-sim``), or, with
``RunOptions.credentials``, through one connection per device signed in as that device
(``_per_device``, ``_connections``), opened before the clock starts.

With ``RunOptions.respond`` (or a scenario's ``respond:`` block) the registry's workers act on
the alerts of their grids (``_responders``): they sign in before the clock starts, and keep
acting after the traffic until nothing is scheduled (at most the policy's ``linger``); what they
did is appended to the ground truth.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from devices import MqttUrl, Registry, ScenarioError
from rules import RulesConfig
from simulators._connections import CONNECT_RATE, DeviceConnections
from simulators._per_device import (
    DevicePublisher,
    Senders,
    keep_note,
    missing_passwords,
    named,
    read_passwords,
    rotate_command,
    write_truth,
)
from simulators._physics import Fleet, _Bank
from simulators._planner import RunWindow
from simulators._respond_policy import RespondPolicy
from simulators._responders import Responders, RespondSummary
from simulators._scenario_schema import Scenario, load_scenario, resolve_scenario
from simulators._scenarios import plan_scenario
from simulators._truth import Out, Plan

log = logging.getLogger(__name__)

MAX_AGE_S = 29 * 86_400
"""Simulated time may start at most this far in the past (the service refuses > 30 days)."""
MAX_CLOCK_RUN_S = 400 * 86_400
"""A run that follows ingest's service clock (``wall_start_ms``) may last this long, simulated."""
DEFAULT_DURATION_S = 10.0
MAX_BLOCK = 5000
INFLIGHT = 2000
MARK_EVERY = 50
"""QoS 1 messages published but not yet acknowledged, at most."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    registry: Path
    url: str = "mqtt://127.0.0.1:1883"
    rate: float = 1000.0
    """Messages per wall second (everything: telemetry, scans, scenario and hostile messages)."""
    duration: float | None = None
    """Wall seconds; default: the scenario's ``duration``, or what its steps need, or 10 s."""
    scenario: Path | str | None = None
    """A scenario file, or the name of a shipped one (``fire``, ``hostile``, ...)."""
    qos: int = 0
    time_scale: float | None = None
    """Simulated seconds per wall second; default: the scenario's, else 1."""
    truth: Path | None = None
    """Where to write the ground truth (JSON Lines)."""
    prefix: str = ""
    """Prepended to every topic (test isolation)."""
    seed: int = 1
    progress: bool = True
    start_ms: int | None = None
    """Simulated start time (epoch ms); default so that simulated time ends at the wall's now."""
    wall_start_ms: int | None = None
    """With ``start_ms``: the wall time (epoch ms) at which simulated time reads ``start_ms``; the
    traffic waits for it (and catches up when the start-up took longer), so the readings' ``ts``
    follow a service clock that maps this wall time to ``start_ms`` at ``time_scale`` (ingest's
    ``FIREGRID_CLOCK_ANCHOR``). The 29-day limit then does not apply: no ``ts`` lies in the
    service's past."""
    seq_start: int | None = None
    """First ``seq`` of every device; default the wall clock in ms at the start, so that a later
    run never repeats an earlier run's ``seq``."""
    client_id: str | None = None
    """The connection's client id; with ``credentials``, prepended (with ``-``) to each device id."""
    connect_timeout: float = 10.0
    rules: RulesConfig | None = None
    """The rules the scenario's ground truth is planned for (default: CONTRACT §7's)."""
    credentials: Path | None = None
    """Per-device connections: every device signs in as itself with its password from
    ``credentials/secrets.csv`` (the URL's user is then ignored). None: one connection."""
    connect_rate: float = CONNECT_RATE
    """With ``credentials``: new connections per second, at most."""
    respond: RespondPolicy | bool | None = None
    """Simulated workers act on the alerts: a policy; True: the scenario's ``respond:`` block, else
    the defaults; None: the scenario's block if it has one; False: never."""
    respond_credentials: Path | None = None
    """The directory whose ``secrets.csv`` holds the workers' passwords (default: ``credentials``,
    else ``./credentials``)."""
    respond_humans: frozenset[str] = frozenset()
    """Workers played by people (the demo's invited users): not simulated, and the events of their
    grids are left to them."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    sent: int
    seconds: float
    rate: float
    """Requested rate."""
    achieved_rate: float
    per_kind: dict[str, int]
    errors: int
    time_scale: float
    sim_start_ms: int
    sim_end_ms: int
    unacked: int = 0
    truth_events: int = 0
    truth_rejects: int = 0
    truth_path: Path | None = None
    warnings: tuple[str, ...] = ()
    refused: int = 0
    """Messages the broker refused (PUBACK ≥ 0x80, e.g. 0x87 not authorised); not in ``sent``."""
    refused_unexpected: int = 0
    """Of ``refused``, those on their sender's own topic (a broker ACL that does not fit)."""
    truth_refused: int = 0
    """Messages of the ground truth listed as refused by the broker (per-device runs)."""
    per_device: bool = False
    devices_connected: int = 0
    """Per-device runs: the connections up when the traffic started."""
    connect_seconds: float = 0.0
    device_failures: dict[str, str] = field(default_factory=dict)
    """Per-device runs: device → why it could not publish (a refused login, a lost connection)."""
    respond: RespondSummary | None = None
    """What the simulated workers did (``RunOptions.respond``)."""


@dataclass(slots=True)
class _Bucket:
    kind: str
    order: np.ndarray[Any, np.dtype[np.int64]]
    share: float
    pos: int = 0
    credit: float = 0.0


class Background:
    """Weighted round robin over all reporting devices: each device's share is ∝ 1/heartbeat."""

    def __init__(self, fleet: Fleet, seed: int) -> None:
        rng = np.random.default_rng([seed, 0xB6])
        self.buckets: list[_Bucket] = []
        weights: list[float] = []
        self.natural_rate = 0.0
        """Messages per simulated second if every device reported once per heartbeat."""
        self.interval_factor: dict[str, float] = {}
        for kind, bank in fleet.banks.items():
            if bank.size == 0 or kind == "patrol":
                continue
            heartbeat = fleet.heartbeat_s(kind)
            for value in np.unique(heartbeat).tolist():
                members = np.flatnonzero(heartbeat == value).astype(np.int64)
                self.buckets.append(_Bucket(kind, rng.permutation(members), 0.0))
                weights.append(members.size / value)
                self.natural_rate += members.size / value
        total = sum(weights)
        for bucket, weight in zip(self.buckets, weights, strict=True):
            bucket.share = weight / total if total else 0.0
        self.max_heartbeat = {b.kind: 0.0 for b in self.buckets}
        for kind in self.max_heartbeat:
            self.max_heartbeat[kind] = float(fleet.heartbeat_s(kind).max())

    def wall_interval_s(self, rate: float) -> dict[str, float]:
        """Longest wall time between two background reports of one device, per kind."""
        if rate <= 0 or not self.natural_rate:
            return {}
        return {kind: hb * self.natural_rate / rate for kind, hb in self.max_heartbeat.items()}

    def take(self, n: int) -> list[tuple[str, np.ndarray[Any, np.dtype[np.int64]]]]:
        """The next ``n`` devices to report, as (kind, bank indices) groups."""
        out = []
        counts = []
        for bucket in self.buckets:
            bucket.credit += n * bucket.share
            c = int(bucket.credit)
            counts.append(c)
        short = n - sum(counts)
        if short > 0:  # largest remainders first, deterministic
            ranked = sorted(range(len(self.buckets)), key=lambda i: -(self.buckets[i].credit - counts[i]))
            for i in ranked[:short]:
                counts[i] += 1
        for bucket, c in zip(self.buckets, counts, strict=True):
            bucket.credit -= c
            if c <= 0:
                continue
            size = bucket.order.size
            idx = bucket.order[(bucket.pos + np.arange(c)) % size]
            bucket.pos = (bucket.pos + c) % size
            out.append((bucket.kind, idx))
        return out


class _Sink(Protocol):
    def publish(self, topic: str, payload: bytes, kind: str = "") -> bool: ...
    def service(self, timeout: float = 0.0) -> None: ...
    def idle(self, seconds: float) -> None: ...
    def drain(self, timeout: float) -> int: ...
    def close(self) -> None: ...


def parse_mqtt_url(url: str) -> tuple[str, int, str | None, str | None]:
    """(host, port, user, password) of a broker the simulator may publish to (no TLS)."""
    try:
        broker = MqttUrl.parse(url)
    except ValueError as exc:
        raise ValueError(f"MQTT URL {exc}") from None
    if broker.tls:
        raise ValueError(f"the simulator publishes without TLS: use mqtt://host:port, not {broker}")
    return broker.host, broker.port, broker.user, broker.password


class _Publisher:
    """A paho client driven from the caller's thread (no network thread)."""

    def __init__(self, url: str, qos: int, client_id: str | None, timeout: float) -> None:
        host, port, user, password = parse_mqtt_url(url)
        self.qos = qos
        self.acked = 0
        self.connected = False
        self.refused: str | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or "", protocol=mqtt.MQTTv311
        )
        if user is not None:
            self.client.username_pw_set(user, password)
        # paho's own in-flight window scans every queued message on each ack (quadratic);
        # with the limit off (0) it is skipped, and :meth:`publish` keeps its own window.
        self.client.max_inflight_messages_set(0)
        self.client.max_queued_messages_set(0)
        self.published = 0
        self._last: mqtt.MQTTMessageInfo | None = None
        self.client.on_connect = self._on_connect
        # no on_publish callback: paho builds a ReasonCode and a Properties object for every
        # call (about 20 µs a message); QoS 1 progress is read from MQTTMessageInfo instead.
        self.marks: collections.deque[tuple[int, mqtt.MQTTMessageInfo]] = collections.deque()
        try:
            self.client.connect(host, port, keepalive=30)
        except OSError as exc:
            raise ConnectionError(f"cannot connect to the MQTT broker at {host}:{port}: {exc}") from exc
        deadline = time.monotonic() + timeout
        while not self.connected:
            if self.refused:
                raise ConnectionError(
                    f"the MQTT broker at {host}:{port} refused the connection: {self.refused}"
                )
            if time.monotonic() > deadline:
                raise ConnectionError(f"no answer from the MQTT broker at {host}:{port} within {timeout:g} s")
            self.client.loop(timeout=0.05)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if getattr(reason, "is_failure", False):
            self.refused = str(reason)
        else:
            self.connected = True

    def _update_acked(self) -> None:
        """Every ``MARK_EVERY``-th QoS 1 message is watched; the broker acks in order."""
        marks = self.marks
        while marks and marks[0][1].is_published():
            self.acked = marks.popleft()[0]

    def publish(self, topic: str, payload: bytes, kind: str = "") -> bool:
        if self.qos > 0 and self.published - self.acked >= INFLIGHT:
            deadline = time.monotonic() + 10.0
            while self.published - self.acked >= INFLIGHT // 2 and time.monotonic() < deadline:
                self.service(0.005)
                self._update_acked()
        info = self.client.publish(topic, payload, self.qos)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self._last = info
            self.published += 1
            if self.qos > 0 and self.published % MARK_EVERY == 0:
                self.marks.append((self.published, info))
            return True
        if info.rc == mqtt.MQTT_ERR_NO_CONN:
            with contextlib.suppress(OSError):
                self.client.reconnect()
        return False

    def idle(self, seconds: float) -> None:
        time.sleep(seconds)

    def service(self, timeout: float = 0.0) -> None:
        rc = self.client.loop(timeout=timeout)
        if rc in (mqtt.MQTT_ERR_CONN_LOST, mqtt.MQTT_ERR_NO_CONN):
            with contextlib.suppress(OSError):
                self.client.reconnect()

    def drain(self, timeout: float) -> int:
        """Flush the socket and, at QoS 1, wait for the acks; returns the messages left unacked."""
        if self.qos > 0 and self.published % MARK_EVERY and self._last is not None:
            self.marks.append((self.published, self._last))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._update_acked()
            pending = self.client.want_write() or (self.qos > 0 and self.acked < self.published)
            if not pending:
                break
            self.client.loop(timeout=0.01)
        self._update_acked()
        return max(0, self.published - self.acked) if self.qos > 0 else (1 if self.client.want_write() else 0)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
            self.client.loop(timeout=0.05)


class _Traffic:
    """Builds each block of messages: timed ones (scenario, patrol scans) then background."""

    def __init__(self, fleet: Fleet, plan: Plan | None, background: Background, prefix: str) -> None:
        self.fleet = fleet
        self.background = background
        self.timed = plan.timed if plan is not None else []
        self.next_timed = 0
        self.topics = {kind: bank.topics(prefix) for kind, bank in fleet.banks.items()}
        self.patrol = fleet.patrol
        self.scan_from = fleet.start_ms

    def due(self, sim_ms: int, wall_ms: int) -> list[Out]:
        out: list[Out] = []
        timed = self.timed
        while self.next_timed < len(timed) and timed[self.next_timed].t_ms <= sim_ms:
            out.extend(timed[self.next_timed].emit(wall_ms))
            self.next_timed += 1
        if self.patrol.size and sim_ms >= self.scan_from:
            topics = self.topics["patrol"]
            for scan in self.patrol.scans(self.scan_from, sim_ms + 1):
                made = self.patrol.scan_message(scan)
                if made is not None:
                    out.append((topics[made[0]], orjson.dumps(made[1]), "patrol"))
            self.scan_from = sim_ms + 1
        return out

    def fill(self, n: int, sim_ms: int) -> list[Out]:
        out: list[Out] = []
        for _attempt in range(3):
            missing = n - len(out)
            if missing <= 0 or not self.background.buckets:
                break
            for kind, idx in self.background.take(missing):
                bank: _Bank = self.fleet.banks[kind]
                topics = self.topics[kind]
                out.extend((topics[i], orjson.dumps(m), kind) for i, m in bank.messages(idx, sim_ms))
        return out


def _size_run(
    scenario: Scenario,
    path: Path | None,
    *,
    registry: Registry,
    seed: int,
    time_scale: float,
    window: Callable[[float], tuple[int, RunWindow]],
    rules: RulesConfig | None = None,
    max_sim_s: float = MAX_AGE_S,
) -> float:
    """The shortest wall duration that covers every step of ``scenario`` (planned on scratch fleets),
    which must lie within ``max_sim_s`` of simulated time."""
    guess = max_sim_s / time_scale
    for _attempt in range(5):
        start, run = window(guess)
        scratch = Fleet(registry, seed=seed, start_ms=start)
        try:
            needs = plan_scenario(scenario, scratch, run, path, rules)
        except ScenarioError:
            if _attempt == 0:
                raise
            guess *= 1.25
            continue
        wanted = max(needs.needs_sim_s / time_scale, needs.needs_wall_s) * 1.02 + 2.0
        if _attempt > 0 and wanted <= guess:
            return guess
        guess = wanted
    return guess


def _clock_start(wall_start_ms: int | None, stop: threading.Event | None) -> float:
    """The ``perf_counter`` reading at which simulated time starts: now, or the wall time
    ``wall_start_ms`` (waited for; in the past when the start-up overran it, and then the run
    catches up)."""
    if wall_start_ms is None:
        return time.perf_counter()
    waiting = stop if stop is not None else threading.Event()
    while (ahead := wall_start_ms / 1000 - time.time()) > 0 and not waiting.wait(min(ahead, 0.5)):
        pass  # a stop ends the wait; the run then stops at once
    return time.perf_counter() - (time.time() - wall_start_ms / 1000)


def respond_policy(option: RespondPolicy | bool | None, scenario: Scenario | None) -> RespondPolicy | None:
    """The workers' policy of a run: ``RunOptions.respond`` and the scenario's ``respond:`` block."""
    if isinstance(option, RespondPolicy):
        return option
    block = scenario.respond if scenario is not None else None
    if option is None or option is True:
        return block or (RespondPolicy() if option else None)
    return None


def _responders(
    options: RunOptions, registry: Registry, policy: RespondPolicy, time_scale: float
) -> Responders:
    """The simulated workers of a run, with their passwords (not yet started)."""
    credentials = options.respond_credentials or options.credentials or Path("credentials")
    passwords = read_passwords(credentials)
    missing = sorted(w for w in registry.workers if w not in passwords and w not in options.respond_humans)
    if missing:
        raise missing_passwords(
            missing, registry=options.registry, credentials=credentials, prefix=options.prefix, what="worker"
        )
    host, port, _user, _password = parse_mqtt_url(options.url)
    return Responders(
        registry,
        host=host,
        port=port,
        passwords=passwords,
        policy=policy,
        prefix=options.prefix,
        time_scale=time_scale,
        client_prefix=f"{options.client_id}-" if options.client_id else "",
        connect_rate=options.connect_rate,
        connect_timeout=options.connect_timeout,
        humans=options.respond_humans,
    )


def run_traffic(
    options: RunOptions,
    *,
    console: Console | None = None,
    stop: threading.Event | None = None,
    on_block: Callable[[int], None] | None = None,
) -> RunSummary:
    """Publish the registry's traffic (and the scenario's) to the broker; see :class:`RunOptions`.

    Raises ``ConnectionError`` when the broker cannot be reached, :class:`ScenarioError` for a
    bad scenario and ``devices.RegistryError`` for a bad registry.
    """
    if not (options.rate > 0 and math.isfinite(options.rate)):
        raise ValueError(f"rate must be a positive number of messages per second, not {options.rate}")
    if options.qos not in (0, 1):
        raise ValueError(f"qos must be 0 or 1, not {options.qos}")
    scenario = None
    scenario_path: Path | None = None
    if options.scenario is not None:
        scenario_path = resolve_scenario(options.scenario)
        scenario = load_scenario(scenario_path)
    time_scale = options.time_scale or (scenario.time_scale if scenario else 1.0)
    if not (time_scale > 0 and math.isfinite(time_scale)):
        raise ValueError(f"time scale must be positive, not {time_scale}")
    registry = Registry.load(options.registry)
    warnings: list[str] = []
    now_ms = int(time.time() * 1000)

    def window(duration: float) -> tuple[int, RunWindow]:
        start = (
            options.start_ms
            if options.start_ms is not None
            else now_ms - round((time_scale - 1) * duration * 1000)
        )
        return start, RunWindow(start, duration * time_scale, time_scale, {}, options.prefix)

    duration = options.duration or (scenario.duration if scenario and scenario.duration else None)
    plan: Plan | None = None
    if duration is None and scenario is not None:
        duration = _size_run(
            scenario,
            scenario_path,
            registry=registry,
            seed=options.seed,
            time_scale=time_scale,
            window=window,
            rules=options.rules,
            max_sim_s=MAX_AGE_S if options.wall_start_ms is None else MAX_CLOCK_RUN_S,
        )
    duration = duration or DEFAULT_DURATION_S
    if options.wall_start_ms is not None and options.start_ms is None:
        raise ValueError("a wall start needs the simulated start (start_ms) it maps to")
    if options.wall_start_ms is None and (time_scale - 1) * duration > MAX_AGE_S:
        raise ValueError(
            f"duration × time scale reaches {(time_scale - 1) * duration / 86400:.0f} days into the past; "
            "the service refuses readings older than 30 days"
        )
    start_ms, run = window(duration)
    seq_start = options.seq_start if options.seq_start is not None else now_ms
    fleet = Fleet(registry, seed=options.seed, start_ms=start_ms, seq_start=seq_start)
    background = Background(fleet, options.seed)
    run.wall_interval_s = background.wall_interval_s(options.rate)
    if scenario is not None:
        plan = plan_scenario(scenario, fleet, run, scenario_path, options.rules)
    natural = background.natural_rate * time_scale
    if options.rate < natural:
        warnings.append(
            f"rate {options.rate:g}/s is below the natural traffic of {natural:.0f}/s "
            f"(every device once per heartbeat at time scale {time_scale:g}): devices report less "
            "often than their heartbeat"
        )
    if fleet.patrol.unpatrolled:
        warnings.append(
            f"{len(fleet.patrol.unpatrolled)} checkpoints lie in grids without workers and are never scanned"
        )
    for message in warnings:
        log.warning("%s", message)
    policy = respond_policy(options.respond, scenario)
    responders = _responders(options, registry, policy, time_scale) if policy is not None else None

    senders: Senders | None = None
    connections: DeviceConnections | None = None
    publisher: _Sink
    if options.credentials is not None:
        senders = Senders(fleet, options.prefix)
        connections = _device_connections(options, senders)
        publisher = DevicePublisher(connections, senders)
    else:
        publisher = _Publisher(options.url, options.qos, options.client_id, options.connect_timeout)
    traffic = _Traffic(fleet, plan, background, options.prefix)
    total = round(options.rate * duration)
    per_kind: dict[str, int] = {}
    sent = errors = 0
    rate = options.rate
    progress = Progress(
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:,}/{task.total:,} {task.fields[unit]}"),
        TextColumn("{task.fields[speed]}"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        disable=not options.progress,
        transient=False,
    )
    t0 = time.perf_counter()
    t_end = t0
    next_ui = 0.0
    interrupted = False
    respond: RespondSummary | None = None
    try:
        if responders is not None:
            responders.start()
        with progress:
            if connections is not None:
                opening = progress.add_task("connect", total=len(connections.names), unit="devices", speed="")
                connections.open(
                    stop=lambda: stop is not None and stop.is_set(),
                    on_progress=lambda done, _n: progress.update(opening, completed=done),
                )
                interrupted = stop is not None and stop.is_set()
            task = progress.add_task("simulate", total=total, unit="msgs", speed="")
            t0 = t_end = _clock_start(options.wall_start_ms, stop)
            while sent < total and not interrupted:
                if stop is not None and stop.is_set():
                    interrupted = True
                    break
                elapsed = time.perf_counter() - t0
                if (
                    elapsed >= duration * 1.02 + 0.25
                ):  # could not keep up: the run still ends (nearly) on time
                    break
                due = min(total, int(rate * elapsed) + 1) - sent
                if due <= 0:
                    publisher.service()
                    wait = (sent + 1) / rate - (time.perf_counter() - t0)
                    if wait > 0.0005:
                        publisher.idle(min(wait, 0.01))
                    continue
                due = min(due, MAX_BLOCK)
                sim_ms = start_ms + int(elapsed * time_scale * 1000)
                block = traffic.due(min(sim_ms, run.end_ms), now_ms + int(elapsed * 1000))
                if len(block) < due:
                    block.extend(traffic.fill(due - len(block), sim_ms))
                for topic, payload, kind in block:
                    if publisher.publish(topic, payload, kind):
                        per_kind[kind] = per_kind.get(kind, 0) + 1
                        sent += 1
                    else:
                        errors += 1
                        sent += 1
                t_end = time.perf_counter()
                publisher.service()
                if on_block is not None:
                    on_block(sent)
                if elapsed >= next_ui:
                    next_ui = elapsed + 0.25
                    progress.update(task, completed=sent, speed=f"{sent / max(elapsed, 1e-9):,.0f} msg/s")
            # scenario messages still due by the end of simulated time
            if not interrupted:
                for topic, payload, kind in traffic.due(
                    run.end_ms, now_ms + int((time.perf_counter() - t0) * 1000)
                ):
                    if publisher.publish(topic, payload, kind):
                        per_kind[kind] = per_kind.get(kind, 0) + 1
                    else:
                        errors += 1
                    sent += 1
                t_end = time.perf_counter()
            progress.update(
                task, completed=min(sent, total), speed=f"{sent / max(t_end - t0, 1e-9):,.0f} msg/s"
            )
        unacked = publisher.drain(timeout=30.0)
        if responders is not None and policy is not None and not interrupted:
            responders.wait_settled(policy.linger, stop=lambda: stop is not None and stop.is_set())
    except KeyboardInterrupt:
        interrupted = True
        unacked = publisher.drain(timeout=5.0)
    finally:
        publisher.close()
        if responders is not None:
            respond = responders.stop()
    seconds = max(t_end - t0, 1e-9)
    if interrupted:
        warnings.append("interrupted: the ground truth may list events the run did not cause")
    truth_events = truth_rejects = truth_refused = 0
    if plan is not None:
        truth_events = len({e.key() for e in plan.events})
        truth_rejects = len(plan.rejects)
    if options.truth is not None:
        if plan is not None and senders is not None:
            truth_rejects, truth_refused = write_truth(plan, options.truth, senders)
        elif plan is not None:
            plan.write_truth(options.truth)
        else:
            options.truth.parent.mkdir(parents=True, exist_ok=True)
            options.truth.write_bytes(b"")
    elif plan is not None and senders is not None:
        truth_refused = sum(1 for r in plan.rejects if not senders.is_own(r.topic))
        truth_rejects -= truth_refused
    if options.truth is not None and responders is not None:
        with options.truth.open("ab") as handle:
            handle.writelines(record.line() + b"\n" for record in responders.records)
    if respond is not None:
        warnings.extend(_respond_warnings(respond))
    refused = refused_unexpected = 0
    failures: dict[str, str] = {}
    if connections is not None:
        refused = len(connections.refusals)
        for refusal in connections.refusals:
            per_kind[refusal.kind] = per_kind.get(refusal.kind, 0) - 1
        per_kind = {kind: n for kind, n in per_kind.items() if n > 0}
        refused_unexpected = sum(1 for r in connections.refusals if not r.watched)
        failures = {**connections.lost, **connections.failures}
        warnings.extend(_connection_warnings(connections, options))
    return RunSummary(
        sent=sent - refused,
        seconds=seconds,
        rate=rate,
        achieved_rate=sent / seconds,
        per_kind=dict(sorted(per_kind.items())),
        errors=errors,
        time_scale=time_scale,
        sim_start_ms=start_ms,
        sim_end_ms=run.end_ms,
        unacked=unacked,
        truth_events=truth_events,
        truth_rejects=truth_rejects,
        truth_path=options.truth,
        warnings=tuple(warnings),
        refused=refused,
        refused_unexpected=refused_unexpected,
        truth_refused=truth_refused,
        per_device=connections is not None,
        devices_connected=connections.connected_at_start if connections is not None else 0,
        connect_seconds=connections.connect_seconds if connections is not None else 0.0,
        device_failures=dict(sorted(failures.items())),
        respond=respond,
    )


def _respond_warnings(respond: RespondSummary) -> list[str]:
    """What kept simulated workers from acting."""
    out: list[str] = []
    by_reason: dict[str, list[str]] = {}
    for worker, reason in respond.failures.items():
        by_reason.setdefault(reason, []).append(worker)
    for reason, workers in by_reason.items():
        out.append(f"{len(workers):,} simulated worker(s) could not act ({named(workers)}): {reason}")
    if respond.unanswered:
        out.append(f"{respond.unanswered:,} actions of the simulated workers got no result")
    return out


def _device_connections(options: RunOptions, senders: Senders) -> DeviceConnections:
    """One connection per device of the fleet, with its password from ``secrets.csv`` (not yet open)."""
    assert options.credentials is not None
    if not senders.names:
        raise ValueError(f"the registry {options.registry} has no devices to connect")
    host, port, _user, _password = parse_mqtt_url(options.url)
    passwords = read_passwords(options.credentials)
    missing = [name for name in senders.names if name not in passwords]
    if missing:
        raise missing_passwords(
            missing, registry=options.registry, credentials=options.credentials, prefix=options.prefix
        )
    return DeviceConnections(
        host,
        port,
        [(name, passwords[name]) for name in senders.names],
        qos=options.qos,
        client_prefix=f"{options.client_id}-" if options.client_id else "",
        connect_rate=options.connect_rate,
        connect_timeout=options.connect_timeout,
    )


def _connection_warnings(connections: DeviceConnections, options: RunOptions) -> list[str]:
    """What went wrong with per-device connections, grouped, each with its fix."""
    assert options.credentials is not None
    out: list[str] = []
    by_reason: dict[str, list[str]] = {}
    for device, reason in sorted(connections.failures.items()):
        by_reason.setdefault(reason, []).append(device)
    for reason, devices in by_reason.items():
        unsent = sum(connections.unsent.get(d, 0) for d in devices)
        text = f"{len(devices):,} device(s) could not publish ({named(devices)}): {reason}"
        text += f"; {unsent:,} messages not sent"
        if "refused its login" in reason:
            command = rotate_command(devices[:5], options.registry, options.credentials, options.prefix)
            text += (
                f". The broker does not take their password from {options.credentials}: re-run "
                f"'{command}' ({keep_note(options.credentials)}) and reload the broker (SIGHUP)"
            )
        out.append(text)
    for device, reason in sorted(connections.lost.items()):
        unsent = connections.unsent.get(device, 0)
        out.append(f"device {device}: {reason} at the end of the run; {unsent:,} messages not sent")
    own = [r for r in connections.refusals if not r.watched]
    if own:
        first = own[0]
        out.append(
            f"the broker refused {len(own):,} messages on their device's own topic (first: {first.device} on "
            f"{first.topic}: {first.reason}): do --prefix ({options.prefix!r}) and the topic prefix "
            f"of the credentials in {options.credentials} agree?"
        )
    if connections.accepted_watched:
        device, topic = connections.accepted_watched[0]
        out.append(
            f"the broker accepted {len(connections.accepted_watched):,} messages on topics not their "
            f"sender's own (first: {device} on {topic}): its ACL is not per device (CONTRACT §10), "
            "yet the ground truth lists them as refused"
        )
    return out
