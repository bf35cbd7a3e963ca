"""The alert outbox (CONTRACT §13): committed with the change, gone only on its PUBACK, published
again in order after a reconnect or a restart; ``rev`` on every published change. Fire alarms are
handed over before other events' publications (issue 17), each event's in order."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts import EventStore
from alerts._db import SCHEMA_VERSION, Writer
from alerts._outbox import RESERVED, WINDOW
from alerts._routing import URGENT_TYPES
from devices import Registry
from rules import RULE_TYPES, Hit
from rules._smoke import SmokeRules
from tests.helpers import eventually
from tests.unit.alerts.conftest import MINUTE, T0, HitFactory, action


class Info:
    def __init__(self, mid: int, rc: int = 0) -> None:
        self.mid = mid
        self.rc = rc


class Broker:
    """A publisher that hands out message ids, like paho, and acknowledges only when told."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str, dict[str, Any]]] = []
        self._mids = iter(range(1, 1_000_000))
        self._lock = threading.Lock()
        self.store: EventStore | None = None

    def publish(self, topic: str, payload: bytes, qos: int) -> Info:
        assert qos == 1
        with self._lock:
            mid = next(self._mids)
            self.sent.append((mid, topic, orjson.loads(payload)))
        return Info(mid)

    def unacked(self, topic_part: str = "alerts/") -> list[int]:
        """The message ids of every publication to topics containing ``topic_part``, in order."""
        with self._lock:
            return [mid for mid, topic, _ in self.sent if topic_part in topic]

    def ack(self, *mids: int, error: str | None = None) -> None:
        assert self.store is not None
        for mid in mids:
            self.store.on_published(mid, error)

    def alerts(self, topic_part: str = "alerts/") -> list[tuple[str, int]]:
        """(event_id, rev) of what went to topics containing ``topic_part``, in order."""
        with self._lock:
            return [(body["event_id"], body["rev"]) for _, t, body in self.sent if topic_part in t]


def _rows(db_path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(db_path) as db:
        return [(int(i), str(t)) for i, t in db.execute("SELECT id, topic FROM outbox ORDER BY id")]


@pytest.fixture
def broker() -> Broker:
    return Broker()


@pytest.fixture
def linked(db_path: Path, registry: Registry, broker: Broker) -> Iterator[EventStore]:
    """A store whose publisher reports its connection (down at first) and its PUBACKs."""
    store = EventStore(db_path, registry, broker, connected=False)
    broker.store = store
    yield store
    store.close()


def test_a_change_and_its_publications_are_one_transaction(
    db_path: Path, linked: EventStore, hit: HitFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = linked.process([hit("S0000", "FIRE_ALARM", "critical")], T0)
    topics = [p.topic for p in out.published]
    assert len(topics) == 2 and topics[0] == "alerts/D01/D01-G00" and topics[1].startswith("alerts/station/")
    assert [t for _, t in _rows(db_path)] == topics
    assert linked.outbox_depth == 2

    def fail(self: Writer, name: str, value: int) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Writer, "set_meta", fail)  # after the event and its outbox rows are written
    with pytest.raises(sqlite3.OperationalError):
        linked.process([hit("S0001", "TAMPER")], T0 + 1)
    assert len(_rows(db_path)) == 2  # neither the event nor its publication
    assert [e["type"] for e in linked.list_events()] == ["FIRE_ALARM"]


def test_rev_counts_published_changes_and_not_comments(store: EventStore, hit: HitFactory) -> None:
    raised = store.process([hit("S0001", "TAMPER")], T0).events[0]
    event_id = raised["event_id"]
    repeat = store.process([hit("S0001", "TAMPER", ts=T0 + 1000)], T0 + 1000).events[0]
    comment = store.handle_action("W0", action(event_id, "comment", "looking"), T0 + 2000)
    assert comment.result is not None and comment.result.ok and comment.events == []
    ack = store.handle_action("W0", action(event_id, "ack"), T0 + 3000).events[0]
    cleared = store.process([hit("S0001", "TAMPER", state="clear", ts=T0 + 4000)], T0 + 4000).events[0]
    assert [raised["rev"], repeat["rev"], ack["rev"], cleared["rev"]] == [1, 2, 3, 4]
    document = store.get_event(event_id)
    assert document is not None and document["rev"] == 4
    assert store.list_events()[0]["rev"] == 4


def test_an_escalation_bumps_rev_on_every_topic_it_goes_to(store: EventStore, hit: HitFactory) -> None:
    store.process([hit("S0000", "FIRE_ALARM", "critical")], T0)
    out = store.tick(T0 + 2 * MINUTE)
    assert [e["rev"] for e in out.events] == [2]
    assert {orjson.loads(p.payload)["rev"] for p in out.published} == {2}
    assert any(p.topic == "alerts/D01/escalations" for p in out.published)


def test_nothing_leaves_while_disconnected_then_all_fire_alarms_first_each_in_order(
    db_path: Path, linked: EventStore, broker: Broker, hit: HitFactory
) -> None:
    a = linked.process([hit("S0000", "FIRE_ALARM", "critical")], T0).events[0]
    b = linked.process([hit("S0001", "TAMPER")], T0 + 1).events[0]
    linked.process([hit("S0001", "TAMPER", ts=T0 + 2)], T0 + 2)
    linked.tick(T0 + 2 * MINUTE)  # a's escalation
    assert broker.sent == []
    expected = [(a["event_id"], 1), (a["event_id"], 1)]
    expected += [(a["event_id"], 2)] * 3  # grid, station, escalations: before b's older rows
    expected += [(b["event_id"], 1), (b["event_id"], 2)]
    linked.on_connection_change(True)
    eventually(lambda: len(broker.sent) == len(expected), timeout=5, what="the outbox published")
    assert broker.alerts() == expected
    assert len(_rows(db_path)) == len(expected)  # nothing acknowledged yet


def test_a_row_leaves_only_on_its_puback(
    db_path: Path, linked: EventStore, broker: Broker, hit: HitFactory
) -> None:
    linked.on_connection_change(True)
    linked.process([hit("S0000", "FIRE_ALARM", "critical")], T0)
    eventually(lambda: len(broker.sent) == 2, timeout=5, what="grid and station publications")
    first, second = broker.unacked()
    broker.ack(second)
    eventually(lambda: len(_rows(db_path)) == 1, timeout=5, what="the acknowledged row deleted")
    assert _rows(db_path)[0][1] == "alerts/D01/D01-G00" and linked.outbox_depth == 1
    broker.ack(999)  # not ours (an action result's PUBACK): nothing happens
    broker.ack(first, error="Not authorized")  # refused: publishing again cannot cure it
    eventually(lambda: _rows(db_path) == [], timeout=5, what="the refused row deleted")
    assert linked.outbox_depth == 0


def test_a_reconnect_publishes_the_unacknowledged_rows_again_in_order(
    linked: EventStore, broker: Broker, hit: HitFactory
) -> None:
    linked.on_connection_change(True)
    first = linked.process([hit("S0001", "TAMPER")], T0).events[0]
    second = linked.process([hit("S0002", "TAMPER")], T0 + 1).events[0]
    eventually(lambda: len(broker.sent) == 2, timeout=5)
    broker.ack(broker.unacked()[0])
    eventually(lambda: linked.outbox_depth == 1, timeout=5)
    linked.on_connection_change(False)
    third = linked.process([hit("E0000", "DEVICE_FAULT")], T0 + 2).events[0]
    linked.on_connection_change(True)
    eventually(lambda: len(broker.sent) == 4, timeout=5, what="republished after the reconnect")
    ids = [(e["event_id"], 1) for e in (first, second, second, third)]
    assert broker.alerts() == ids  # the first was acknowledged; the second goes again, then the third
    broker.ack(*broker.unacked()[1:])  # the old connection's PUBACK for the second counts as well
    eventually(lambda: linked.outbox_depth == 0, timeout=5)


def test_a_restart_publishes_what_was_never_acknowledged(
    db_path: Path, registry: Registry, linked: EventStore, broker: Broker, hit: HitFactory
) -> None:
    linked.on_connection_change(True)
    raised = linked.process([hit("S0001", "TAMPER")], T0).events[0]
    acked = linked.handle_action("W0", action(raised["event_id"], "ack"), T0 + 1).events[0]
    eventually(lambda: len(broker.alerts()) == 2, timeout=5)  # the action's result is no alert
    broker.ack(broker.unacked()[0])
    eventually(lambda: linked.outbox_depth == 1, timeout=5)

    again = Broker()
    reopened = EventStore(db_path, registry, again, connected=False)  # as after kill -9
    try:
        assert reopened.outbox_depth == 1
        reopened.on_connection_change(True)
        eventually(lambda: len(again.sent) == 1, timeout=5)
        assert again.alerts() == [(acked["event_id"], 2)]
    finally:
        reopened.close()


def test_a_long_outbox_is_sent_a_window_at_a_time(
    linked: EventStore, broker: Broker, hit: HitFactory, registry: Registry
) -> None:
    devices = [d.device_id for d in registry.devices()]
    share = WINDOW - RESERVED  # what rows of events other than fire alarms may take
    changes = 0
    ts = T0
    while changes <= share:  # raise, repeat, repeat ... until more rows than a window wait
        ts += 1
        changes += len(linked.process([hit(d, "DEVICE_FAULT", ts=ts) for d in devices], ts).events)
    assert linked.outbox_depth == changes
    linked.on_connection_change(True)
    eventually(lambda: len(broker.sent) == share, timeout=5, what="a window's worth published")
    assert linked.outbox_depth == changes
    broker.ack(*broker.unacked()[:10])
    eventually(lambda: len(broker.sent) == min(changes, share + 10), timeout=5, what="ten more")
    broker.ack(*broker.unacked()[10:])
    eventually(lambda: len(broker.sent) == changes, timeout=5, what="the rest")
    broker.ack(*broker.unacked())  # a second PUBACK of one message changes nothing
    eventually(lambda: linked.outbox_depth == 0, timeout=5, what="everything acknowledged")
    revs = [rev for _, rev in broker.alerts()]
    assert revs == sorted(revs)  # oldest first: every rev 1 before every rev 2, ...


def test_an_event_store_of_schema_1_gets_rev_and_an_outbox(
    tmp_path: Path, registry: Registry, hit: HitFactory
) -> None:
    path = tmp_path / "old.sqlite"
    with EventStore(path, registry) as store:
        event_id = store.process([hit("S0001", "TAMPER")], T0).events[0]["event_id"]
        store.process([hit("S0001", "TAMPER", "critical", ts=T0 + 1)], T0 + 1)  # repeat + severity note
        store.handle_action("W0", action(event_id, "comment", "hm"), T0 + 2)
        store.handle_action("W0", action(event_id, "ack"), T0 + 3)
    with sqlite3.connect(path) as db:  # back to the first schema: no rev, no outbox
        db.execute("ALTER TABLE events DROP COLUMN rev")
        db.execute("DROP TABLE outbox")
        db.execute("UPDATE meta SET value = 1 WHERE name = 'schema_version'")
    with EventStore(path, registry) as store:
        [event] = store.list_events()
        assert event["rev"] == 3  # raise, repeat (with severity), ack; the comment is no change
        assert store.outbox_depth == 0
        out = store.handle_action("W0", action(event_id, "resolve"), T0 + 4)
        assert out.events[0]["rev"] == 4
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() == (
            SCHEMA_VERSION,
        )
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)


# -- fire alarms first (issue 17) ----------------------------------------------------------------


def _offline(count: int, ts: int = T0) -> list[Hit]:
    """A mass silence: DEVICE_OFFLINE of ``count`` electrical monitors (not in the registry: the
    store needs no position for a major event)."""
    return [
        Hit(
            type="DEVICE_OFFLINE",
            severity="major",
            kind="electrical",
            slot=0,
            device_id=f"X{i:06d}",
            site_id=f"XS{i:06d}",
            grid_id="D01-G01",
            district="D01",
            key=("device", f"X{i:06d}", "DEVICE_OFFLINE"),
            state="raise",
            value=None,
            threshold=None,
            ts=ts,
            message="No message for 2 h",
        )
        for i in range(count)
    ]


def _ack_all(linked: EventStore, broker: Broker) -> None:
    """Acknowledge every publication, as the broker would, until the outbox is empty."""
    acked = 0

    def step() -> bool:
        nonlocal acked
        mids = broker.unacked()[acked:]
        broker.ack(*mids)
        acked += len(mids)
        return linked.outbox_depth == 0

    eventually(step, timeout=30, interval=0.005, what="the outbox emptied")


def _in_order_per_event(alerts: list[tuple[str, int]]) -> bool:
    """Every event's revs in ``alerts`` never go back (a repeat after a reconnect starts over)."""
    last: dict[str, int] = {}
    for event_id, rev in alerts:
        if rev < last.get(event_id, 0):
            return False
        last[event_id] = rev
    return True


def test_the_urgent_types_are_the_fire_alarms_of_the_rules() -> None:
    assert {"FIRE_ALARM", "FIRE_CONFIRMED"} == URGENT_TYPES
    assert set(SmokeRules.types) > URGENT_TYPES and set(RULE_TYPES) > URGENT_TYPES


def test_a_fire_alarm_is_handed_over_before_a_mass_silence_waiting(
    linked: EventStore, broker: Broker, hit: HitFactory
) -> None:
    linked.on_connection_change(True)
    silence = [e["event_id"] for e in linked.process(_offline(10_000), T0).events]
    eventually(lambda: len(broker.sent) == WINDOW - RESERVED, timeout=5, what="the silence's window")
    assert linked.outbox_depth == 10_000  # 9,808 wait for room

    alarm = linked.process([hit("S0000", "FIRE_ALARM", "critical")], T0 + 1).events[0]
    # handed over in the call that committed it: no thread hop, no PUBACK awaited
    assert broker.alerts()[-2:] == [(alarm["event_id"], 1)] * 2
    confirmed = linked.process([hit("S0002", "FIRE_CONFIRMED", "critical")], T0 + 2).events[0]
    assert broker.alerts()[-2:] == [(confirmed["event_id"], 1)] * 2
    assert len(broker.sent) == WINDOW - RESERVED + 4

    _ack_all(linked, broker)
    alerts = broker.alerts()
    assert len(alerts) == 10_004 and _in_order_per_event(alerts)
    bulk = set(silence)
    assert [event_id for event_id, _ in alerts if event_id in bulk] == silence  # oldest first


def test_the_window_bounds_both_classes_and_fire_alarms_go_first(
    linked: EventStore, broker: Broker, hit: HitFactory
) -> None:
    linked.process(_offline(300), T0)
    alarms = [hit("S0000", "FIRE_ALARM", "critical", ts=T0 + 1 + i * 1000) for i in range(100)]
    for i, alarm in enumerate(alarms):  # one event, 100 changes (one a second): 200 rows in order
        linked.process([alarm], T0 + 1 + i * 1000)
    linked.on_connection_change(True)
    eventually(lambda: len(broker.sent) == WINDOW, timeout=5, what="a full window")
    sent = broker.alerts()
    assert [rev for _, rev in sent[:200]] == [rev for rev in range(1, 101) for _ in range(2)]
    assert len({event_id for event_id, _ in sent[200:]}) == WINDOW - 200  # the oldest of the silence

    broker.ack(*broker.unacked()[:200])  # the alarm's: the silence may take its share, no more
    eventually(lambda: len(broker.sent) == 200 + WINDOW - RESERVED, timeout=5, what="the share")
    _ack_all(linked, broker)
    assert len(broker.alerts()) == 500


def test_a_reconnect_publishes_fire_alarms_first_then_the_rest_each_in_order(
    linked: EventStore, broker: Broker, hit: HitFactory
) -> None:
    linked.on_connection_change(True)
    silence = [e["event_id"] for e in linked.process(_offline(WINDOW), T0).events]
    alarm = linked.process([hit("S0000", "FIRE_ALARM", "critical")], T0 + 1).events[0]["event_id"]
    tamper = linked.process([hit("S0001", "TAMPER")], T0 + 2).events[0]["event_id"]
    linked.tick(T0 + 3 * MINUTE)  # the alarm's escalation
    eventually(lambda: len(broker.sent) == WINDOW - RESERVED + 5, timeout=5, what="sent before the outage")
    linked.on_connection_change(False)
    linked.on_connection_change(True)
    eventually(lambda: len(broker.sent) == 2 * (WINDOW - RESERVED + 5), timeout=5, what="sent again")
    again = broker.alerts()[WINDOW - RESERVED + 5 :]
    assert again[:5] == [(alarm, 1), (alarm, 1), (alarm, 2), (alarm, 2), (alarm, 2)]
    assert [event_id for event_id, _ in again[5:]] == silence[: WINDOW - RESERVED]
    _ack_all(linked, broker)
    tail = broker.alerts()[2 * (WINDOW - RESERVED + 5) :]
    assert [event_id for event_id, _ in tail] == [*silence[WINDOW - RESERVED :], tamper]


def test_a_restart_publishes_fire_alarms_first_then_the_rest_each_in_order(
    db_path: Path, registry: Registry, linked: EventStore, hit: HitFactory
) -> None:
    tamper = linked.process([hit("S0001", "TAMPER")], T0).events[0]["event_id"]
    silence = [e["event_id"] for e in linked.process(_offline(3), T0 + 1).events]
    alarm = linked.process([hit("S0000", "FIRE_ALARM", "critical")], T0 + 2).events[0]["event_id"]
    linked.process([hit("S0001", "TAMPER", ts=T0 + 1000)], T0 + 1000)  # rev 2
    linked.tick(T0 + 3 * MINUTE)  # the alarm's escalation
    linked.close()  # nothing was ever connected: everything waits in the table

    again = Broker()
    reopened = EventStore(db_path, registry, again, connected=False)
    again.store = reopened
    try:
        assert reopened.outbox_depth == 10
        reopened.on_connection_change(True)
        eventually(lambda: len(again.sent) == 10, timeout=5)
        assert again.alerts() == [
            *[(alarm, 1)] * 2,
            *[(alarm, 2)] * 3,
            (tamper, 1),
            *[(event_id, 1) for event_id in silence],
            (tamper, 2),
        ]
        # the fast path is back once nothing of the class waits
        later = reopened.process([hit("S0002", "FIRE_ALARM", "critical")], T0 + 3 * MINUTE).events[0]
        assert again.alerts()[-2:] == [(later["event_id"], 1)] * 2
    finally:
        reopened.close()


def test_an_outbox_of_schema_2_gets_its_classes_and_fire_alarms_go_first(
    db_path: Path, registry: Registry, linked: EventStore, hit: HitFactory
) -> None:
    tamper = linked.process([hit("S0001", "TAMPER")], T0).events[0]["event_id"]
    alarm = linked.process([hit("S0000", "FIRE_ALARM", "critical")], T0 + 1).events[0]["event_id"]
    linked.close()
    with sqlite3.connect(db_path) as db:  # back to schema 2: no class
        db.execute("DROP INDEX outbox_urgent")
        db.execute("ALTER TABLE outbox DROP COLUMN urgent")
        db.execute("UPDATE meta SET value = 2 WHERE name = 'schema_version'")

    again = Broker()
    reopened = EventStore(db_path, registry, again, connected=False)
    again.store = reopened
    try:
        reopened.on_connection_change(True)
        eventually(lambda: len(again.sent) == 3, timeout=5)
        assert again.alerts() == [(alarm, 1), (alarm, 1), (tamper, 1)]
        _ack_all(reopened, again)
    finally:
        reopened.close()
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone() == (3,)
