"""Restarts: a store reopened on the same file (the first never closed, as after kill -9)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alerts import EventStore
from devices import Registry
from tests.helpers import eventually
from tests.unit.alerts.conftest import T0, FakePublisher, HitFactory, action, parse_line


def test_open_events_survive_and_a_repeat_updates_the_same_event(
    db_path: Path, registry: Registry, store: EventStore, publisher: FakePublisher, hit: HitFactory
) -> None:
    fire = store.process([hit("S0000", "FIRE_ALARM", "critical")], T0).events[0]
    tamper = store.process([hit("S0001", "TAMPER")], T0).events[0]
    store.handle_action("W0", action(tamper["event_id"], "ack", "seen"), T0 + 10)
    before = store.list_events()

    reopened = EventStore(db_path, registry, publisher)  # the first store is never closed
    assert reopened.list_events() == before
    assert reopened.counts() == {"open": 1, "acknowledged": 1, "resolved": 0, "escalated": 0, "cleared": 0}
    out = reopened.process([hit("S0000", "FIRE_ALARM", "critical", ts=T0 + 5000)], T0 + 5000)
    assert out.events[0]["event_id"] == fire["event_id"] and out.events[0]["count"] == 2
    out = reopened.handle_action("W0", action(tamper["event_id"], "resolve"), T0 + 6000)
    assert out.result is not None and out.result.ok
    assert len(reopened.list_events()) == 2


def test_a_replayed_raise_after_a_restart_is_not_a_second_event(
    db_path: Path, registry: Registry, store: EventStore, hit: HitFactory
) -> None:
    store.process([hit("S0000", "FIRE_ALARM", "critical", ts=T0)], T0)
    reopened = EventStore(db_path, registry)
    out = reopened.process([hit("S0000", "FIRE_ALARM", "critical", ts=T0)], T0 + 3000)
    assert out.events == []
    [event] = reopened.list_events()
    assert event["count"] == 1


def test_a_closed_event_stays_closed_and_a_new_raise_is_a_new_event(
    db_path: Path, registry: Registry, store: EventStore, hit: HitFactory
) -> None:
    event_id = store.process([hit("S0000", "TAMPER")], T0).events[0]["event_id"]
    for worker, name in (("W0", "ack"), ("W0", "resolve"), ("SUP1", "close")):
        store.handle_action(worker, action(event_id, name), T0 + 1)
    reopened = EventStore(db_path, registry)
    assert reopened.counts()["open"] == 0
    refused = reopened.handle_action("W0", action(event_id, "ack"), T0 + 2)
    assert refused.result is not None and "closed" in str(refused.result.error)
    new = reopened.process([hit("S0000", "TAMPER", ts=T0 + 3)], T0 + 3).events[0]
    assert new["event_id"] != event_id
    history = reopened.get_event(event_id)["history"]  # type: ignore[index]
    assert [h["action"] for h in history] == ["raise", "ack", "resolve", "close"]


def test_every_call_is_committed(db_path: Path, store: EventStore, hit: HitFactory) -> None:
    """Another connection sees each change as soon as the call returns."""
    store.process([hit("S0000", "TAMPER")], T0)
    with sqlite3.connect(db_path) as other:
        assert other.execute("SELECT count(*) FROM events").fetchone()[0] == 1
        assert other.execute("SELECT count(*) FROM transitions").fetchone()[0] == 1
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_point_times_stay_unique_across_a_restart(
    db_path: Path, registry: Registry, store: EventStore, hit: HitFactory
) -> None:
    """Same series, same millisecond, before and after a restart: still distinct times."""
    first = store.process([hit("S0000", "TAMPER"), hit("S0001", "TAMPER")], T0)  # one series (G00)
    reopened = EventStore(db_path, registry)
    second = reopened.process([hit("S0000", "TAMPER", ts=T0 + 1)], T0)  # a repeat, same series
    other = reopened.process([hit("S0000", "DEVICE_FAULT")], T0)  # another series: after the floor too
    times = [parse_line(line)[3] for line in (*first.lines, *second.lines, *other.lines)]
    assert times == [T0, T0 + 1, T0 + 2, T0 + 2]
    assert reopened.process([hit("S0001", "DEVICE_FAULT")], T0 + 60_000).lines[0].endswith(f" {T0 + 60_000}")


def test_the_store_lives_in_the_data_dir(tmp_path: Path, registry: Registry) -> None:
    store = EventStore.open(tmp_path / "data", registry)
    assert store.path == tmp_path / "data" / "events.sqlite" and store.path.exists()
    store.close()
    with EventStore.open(tmp_path / "data", registry) as again:
        assert again.list_events() == []


def test_the_wal_is_checkpointed_off_the_commit_path(
    db_path: Path, store: EventStore, hit: HitFactory
) -> None:
    """Commits never checkpoint (they are on the alert path); the store's own thread does, so
    the events reach the database file itself while the store runs."""
    assert store._db._write.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    main_file = db_path.stat().st_size
    for i in range(300):
        store.process([hit(f"S000{i % 3}", "FIRE_ALARM", "critical", ts=T0 + i * 1000)], T0 + i * 1000)
    eventually(lambda: db_path.stat().st_size > main_file, timeout=10, what="a checkpoint by the thread")
