"""Alerts are never lost (CONTRACT §13), on the real broker and real `firegrid ingest` processes.

One broker outage serves both cases (an escalation needs the contract's 2 minutes to fall due; the
ingests run on a service clock ``CLOCK_SCALE`` times as fast, ``FIREGRID_CLOCK_SCALE``, so that
takes 5 s of wall time):
two ingest instances, each with its own topic prefix and data directory, raise critical events;
the broker stops; their escalations fall due while it is down. Instance ``killed`` is then killed
with SIGKILL, the broker starts again, and so does ``killed``; instance ``kept`` only reconnects.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from access import SIMULATOR_ACCOUNT
from firegrid._services import Influxd, Mosquitto
from tests.conftest import running
from tests.helpers import API_AUTH, HTTP, eventually, write_registry
from tests.integration.conftest import IngestProcess, service_env
from tests.mqtt import SessionSubscriber, TestClient

pytestmark = pytest.mark.slow  # waits for the contract's 2-minute escalation (in service time)

ESCALATION_S = 120
CLOCK_SCALE = 24
"""Service seconds per wall second: the 2-minute deadline falls due 5 s after the raise."""
_names = itertools.count()


@dataclass
class Instance:
    name: str
    prefix: str
    ingest: IngestProcess
    subscriber: SessionSubscriber
    raised: list[dict[str, Any]] = field(default_factory=list)
    escalated: list[dict[str, Any]] = field(default_factory=list)
    depth_while_down: float = -1.0

    def events(self) -> list[dict[str, Any]]:
        response = HTTP.get(f"{self.ingest.http}/events", auth=API_AUTH, timeout=5)
        response.raise_for_status()
        return list(response.json())

    def disconnected(self) -> bool:
        health = self.ingest.health()
        return health is not None and health["mqtt"] == "disconnected"

    def outbox_depth(self) -> float:
        found = re.search(r"^firegrid_alert_outbox_depth (\S+)$", self.ingest.metrics(), re.MULTILINE)
        assert found, "firegrid_alert_outbox_depth missing from /metrics"
        return float(found.group(1))


def _events_when(
    instance: Instance, condition: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]] | None:
    events = instance.events()
    return events if condition(events) else None


def _counted(count: int, events: list[dict[str, Any]]) -> bool:
    return len(events) == count


def _alarm(prefix: str, device: str) -> tuple[str, bytes]:
    ts = time.time_ns() // 1_000_000
    return f"{prefix}fire/D01/smoke/{device}", orjson.dumps({"ts": ts, "alarm": True})


@pytest.fixture(scope="module")
def outage(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Instance]]:
    broker, influx = running(mosquitto), running(influxd)
    root = tmp_path_factory.mktemp("outbox")
    registry = write_registry(root / "registry")
    instances: dict[str, Instance] = {}
    databases = []
    try:
        for name, topic in (("killed", "alerts/D01/escalations"), ("kept", "alerts/#")):
            prefix = f"o{os.getpid()}-{next(_names)}/"
            databases.append(f"outbox{os.getpid()}_{name}")
            env = service_env(broker, influx, databases[-1], prefix, registry, root / name / "data")
            now = time.time_ns() // 1_000_000
            env.update(FIREGRID_CLOCK_SCALE=str(CLOCK_SCALE), FIREGRID_CLOCK_ANCHOR=f"{now}={now}")
            (root / name / "data").mkdir(parents=True)
            ingest = IngestProcess(env, root / name / "ingest.log")
            ingest.start()
            subscriber = SessionSubscriber(
                broker.url_as(SIMULATOR_ACCOUNT), f"{prefix.rstrip('/')}-sub", prefix + topic
            )
            subscriber.connect(subscribe=True)
            instances[name] = Instance(name, prefix, ingest, subscriber)
        killed, kept = instances["killed"], instances["kept"]
        killed.subscriber.disconnect()  # away until the end: its session queues the escalation

        devices = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
        alarms = [(killed.prefix, "S0000")]
        alarms += [(kept.prefix, d) for d in ("S0000", "S0001", "S0002")]  # S0000, S0002: site S0
        devices.publish_many(_alarm(prefix, device) for prefix, device in alarms)  # FIRE_CONFIRMED too
        devices.close()
        for instance, count in ((killed, 1), (kept, 4)):
            instance.raised = eventually(
                functools.partial(_events_when, instance, functools.partial(_counted, count)),
                timeout=20,
                what=f"{instance.name}: events raised",
            )
        # the kept instance's alerts (rev 1, grid and station topics) reached its subscriber
        eventually(lambda: len(kept.subscriber.messages()) == 8, timeout=20, what="alerts before the outage")

        broker.stop()  # SIGTERM: mosquitto saves its sessions
        for instance in instances.values():
            eventually(instance.disconnected, timeout=10, what="ingest sees the outage")
        for instance in instances.values():
            instance.escalated = eventually(
                functools.partial(_events_when, instance, lambda events: all(e["escalated"] for e in events)),
                timeout=ESCALATION_S / CLOCK_SCALE + 30,
                interval=1,
                what=f"{instance.name}: escalations fall due while the broker is down",
            )
            instance.depth_while_down = instance.outbox_depth()

        assert killed.ingest.stop(signal.SIGKILL) == -signal.SIGKILL
        broker.start()  # the same port, the same persistence
        killed.ingest.start()  # restarted after kill -9; waits until connected
        eventually(kept.ingest.healthy, timeout=30, what="the kept instance reconnected")
        yield instances
    finally:
        for instance in instances.values():
            instance.subscriber.disconnect()
            proc = instance.ingest.proc
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(30)
        if influx.running:
            for name in databases:
                HTTP.post(f"{influx.url}/query", data={"q": f'DROP DATABASE "{name}"'}, timeout=10)


def test_an_escalation_due_in_a_broker_outage_survives_kill_9(outage: dict[str, Instance]) -> None:
    """Issue 16's acceptance: the broker goes down, an escalation falls due, firegrid is killed
    with -9, both come back; a persistent subscriber of the escalations topic receives it."""
    killed = outage["killed"]
    [event] = killed.escalated
    assert event["rev"] == 2 and killed.depth_while_down == 3  # grid, station, escalations
    eventually(lambda: killed.outbox_depth() == 0, timeout=30, what="the outbox acknowledged by the broker")
    killed.subscriber.connect(subscribe=False)  # the same session: what was queued arrives now
    (topic, body), *repeats = eventually(
        killed.subscriber.messages, timeout=20, what="the escalation on the persistent session"
    )
    assert all(repeat == (topic, body) for repeat in repeats)  # a repeat is allowed, nothing else
    assert topic == f"{killed.prefix}alerts/D01/escalations"
    assert body["event_id"] == event["event_id"] and body["escalated"] is True and body["rev"] == 2
    assert body == {k: v for k, v in event.items() if k != "history"}


def test_changes_made_while_the_broker_is_down_arrive_after_a_reconnect_in_order(
    outage: dict[str, Instance],
) -> None:
    kept = outage["kept"]
    ids = {e["event_id"] for e in kept.raised}
    assert len(ids) == 4 and kept.depth_while_down > 0
    escalations = f"{kept.prefix}alerts/D01/escalations"

    def arrived() -> list[tuple[str, dict[str, Any]]] | None:
        got = kept.subscriber.messages()
        escalated = {b["event_id"] for t, b in got if t == escalations}
        return got if escalated >= ids else None

    got = eventually(arrived, timeout=30, what="every escalation after the reconnect")
    eventually(lambda: kept.outbox_depth() == 0, timeout=30, what="the outbox acknowledged by the broker")
    first: dict[tuple[str, str, int], int] = {}
    for position, (topic, body) in enumerate(got):
        first.setdefault((topic, body["event_id"], body["rev"]), position)
    for (topic, event_id, rev), position in first.items():
        if event_id in ids and rev > 1:  # each change arrives after the one before it, on each topic
            assert first.get((topic, event_id, rev - 1), -1) < position
    revs = {(b["event_id"], b["rev"]) for t, b in got if t == escalations}
    assert revs == {(event_id, 2) for event_id in ids}
    # the escalations leave the outbox in the order they were committed: the event store escalates
    # in (deadline, event_id) order, every deadline is 2 min after the raise, and an event_id (a
    # ULID) begins with the service time of its raise: the order is the event ids' order
    order = list(dict.fromkeys(b["event_id"] for t, b in got if t == escalations))
    assert order == sorted(order)
