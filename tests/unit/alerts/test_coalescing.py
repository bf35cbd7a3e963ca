"""Coalesced repeats (issue 17): a repeat within REPEAT_WINDOW_MS of the event's last publication
is counted in memory and published (and written) once, when the window has passed, with the
event's next change, or at a clean stop; a crash loses at most those counts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alerts import REPEAT_POINT_MS, REPEAT_WINDOW_MS, EventStore
from devices import Registry
from tests.unit.alerts.conftest import T0, FakePublisher, HitFactory, action, parse_line

W = REPEAT_WINDOW_MS
GRID = "alerts/D01/D01-G00"


def _stored(db_path: Path) -> tuple[int, float, int]:
    """(count, value, rev) of the one event, as written in the database."""
    with sqlite3.connect(db_path) as db:
        row = db.execute("SELECT count, value, rev FROM events").fetchone()
    return int(row[0]), float(row[1]), int(row[2])


def _repeats(store: EventStore, hit: HitFactory, times: list[int], device: str = "S0000") -> None:
    for i, at in enumerate(times):
        out = store.process([hit(device, "TAMPER", ts=at, value=float(i + 2))], at)
        assert out.published == [] and out.lines == [] and out.events == []


def test_repeats_within_the_window_are_one_write_with_the_latest_count_and_value(
    store: EventStore, publisher: FakePublisher, hit: HitFactory, db_path: Path
) -> None:
    store.process([hit("S0000", "TAMPER", ts=T0)], T0)
    _repeats(store, hit, [T0 + 10, T0 + 20, T0 + 30])
    assert _stored(db_path) == (1, 1.0, 1)  # nothing written yet
    listed = store.list_events()[0]  # the API shows the count as it stands
    assert (listed["count"], listed["value"], listed["rev"]) == (4, 4.0, 1)
    assert store.get_event(listed["event_id"])["count"] == 4  # type: ignore[index]
    assert store.next_deadline() == T0 + W
    assert store.tick(T0 + W - 1).published == []
    out = store.tick(T0 + W)
    [document] = out.events
    assert (document["count"], document["value"], document["rev"]) == (4, 4.0, 2)
    assert document["updated_at"] == T0 + 30
    assert [p.topic for p in out.published] == [GRID]
    assert _stored(db_path) == (4, 4.0, 2)
    history = store.get_event(document["event_id"])["history"]  # type: ignore[index]
    assert [(h["action"], h["at_ms"]) for h in history] == [("raise", T0), ("repeat", T0 + 30)]
    assert store.tick(T0 + 10 * W).published == []  # published once


def test_a_batch_of_repeats_is_published_at_once_when_the_window_has_passed(
    store: EventStore, publisher: FakePublisher, hit: HitFactory
) -> None:
    store.process([hit("S0000", "TAMPER", ts=T0)], T0)
    hits = [hit("S0000", "TAMPER", ts=T0 + W + k, value=float(k)) for k in range(1, 6)]
    out = store.process(hits, T0 + W)  # the first publishes at once, the others wait
    assert [e["count"] for e in out.events] == [2]
    out = store.process([], T0 + 2 * W)  # the next batch after the window publishes them
    assert [(e["count"], e["value"]) for e in out.events] == [(6, 5.0)]


def test_a_clear_severity_rise_or_action_publishes_at_once_with_the_count(
    store: EventStore, publisher: FakePublisher, hit: HitFactory, db_path: Path
) -> None:
    event_id = store.process([hit("S0000", "TAMPER", ts=T0)], T0).events[0]["event_id"]
    _repeats(store, hit, [T0 + 1, T0 + 2])
    cleared = store.process([hit("S0000", "TAMPER", state="clear", ts=T0 + 3)], T0 + 3)
    [document] = cleared.events
    assert (document["cleared"], document["count"], document["rev"]) == (True, 3, 2)
    assert _stored(db_path) == (3, 3.0, 2)
    # a raise after a clear changes `cleared`: at once
    again = store.process([hit("S0000", "TAMPER", ts=T0 + 4)], T0 + 4).events
    assert [(e["cleared"], e["count"]) for e in again] == [(False, 4)]
    _repeats(store, hit, [T0 + 5])
    rise = store.process([hit("S0000", "TAMPER", "critical", ts=T0 + 6)], T0 + 6).events
    assert [(e["severity"], e["count"]) for e in rise] == [("critical", 6)]
    _repeats(store, hit, [T0 + 7, T0 + 8])
    acked = store.handle_action("W0", action(event_id, "ack"), T0 + 9).events
    assert [(e["state"], e["count"]) for e in acked] == [("acknowledged", 8)]
    assert store.next_deadline() is None  # nothing waits any more
    history = [h["action"] for h in store.get_event(event_id)["history"]]  # type: ignore[index]
    assert history == ["raise", "repeat", "clear", "repeat", "repeat", "severity", "repeat", "ack"]
    assert len(publisher.on("alerts/station/D01-ST1")) == 2  # critical from the rise on


def test_a_clean_stop_writes_and_publishes_the_counted_repeats(
    db_path: Path, registry: Registry, publisher: FakePublisher, hit: HitFactory
) -> None:
    with EventStore(db_path, registry, publisher) as store:
        store.process([hit("S0000", "TAMPER", ts=T0)], T0)
        _repeats(store, hit, [T0 + 1, T0 + 2])
    assert _stored(db_path) == (3, 3.0, 2)
    assert [e["count"] for e in publisher.on(GRID)] == [1, 3]
    with EventStore(db_path, registry) as again:
        assert again.list_events()[0]["count"] == 3


def test_a_crash_loses_only_the_counts_of_the_window(
    db_path: Path, registry: Registry, publisher: FakePublisher, hit: HitFactory
) -> None:
    store = EventStore(db_path, registry, publisher)
    first = store.process([hit("S0000", "TAMPER", ts=T0)], T0).events[0]["event_id"]
    store.process([hit("S0001", "TAMPER", ts=T0)], T0)
    store.process([hit("S0001", "TAMPER", state="clear", ts=T0 + 1)], T0 + 1)
    _repeats(store, hit, [T0 + 2, T0 + 3])
    # no close: the process dies (its memory is gone, the database stays as committed)
    reopened = EventStore(db_path, registry)
    try:
        events = {e["device_id"]: e for e in reopened.list_events()}
        assert set(events) == {"S0000", "S0001"}
        assert events["S0000"]["event_id"] == first
        assert (events["S0000"]["count"], events["S0000"]["rev"]) == (1, 1)  # the 2 repeats lost
        assert events["S0001"]["cleared"] is True  # a change of `cleared` is never lost
        # the next change continues the revisions subscribers have seen
        out = reopened.process([hit("S0000", "TAMPER", ts=T0 + 10)], T0 + W)
        assert [(e["count"], e["rev"]) for e in out.events] == [(2, 2)]
    finally:
        reopened.close()
        store.close()


def test_repeat_points_are_written_at_most_once_per_interval(store: EventStore, hit: HitFactory) -> None:
    lines = store.process([hit("S0000", "TAMPER", ts=T0)], T0).lines
    for k in range(1, 8):  # a repeat each window: each published, points waiting
        out = store.process([hit("S0000", "TAMPER", ts=T0 + k * W, value=float(k))], T0 + k * W)
        assert len(out.events) == 1
        lines += out.lines
    assert len(lines) == 1
    assert store.next_deadline() == T0 + REPEAT_POINT_MS
    owed = store.tick(T0 + REPEAT_POINT_MS).lines
    [(_, _, fields, at)] = [parse_line(line) for line in owed]
    assert (fields["change"], fields["count"], fields["value"], at) == (
        "repeat",
        8.0,
        7.0,
        T0 + REPEAT_POINT_MS,
    )
    assert store.next_deadline() == T0 + 30 * 60_000  # only the escalation is left
    # a change of the event writes its point at once and settles what was owed
    later = T0 + REPEAT_POINT_MS + W
    store.process([hit("S0000", "TAMPER", ts=later)], later)
    cleared = store.process([hit("S0000", "TAMPER", state="clear", ts=later + 1)], later + 1).lines
    assert [parse_line(line)[2]["change"] for line in cleared] == ["cleared"]
    assert store.next_deadline() == T0 + 30 * 60_000
