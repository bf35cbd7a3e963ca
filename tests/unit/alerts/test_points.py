"""The ``events`` measurement: tags, fields, one 'open' per event, unique times per series."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from alerts import REPEAT_POINT_MS, EventStore, _points
from alerts._db import EventDb
from devices import quote_string
from tests.unit.alerts.conftest import MINUTE, T0, HitFactory, action, parse_line


def test_tags_and_fields_of_a_raise(store: EventStore, hit: HitFactory) -> None:
    out = store.process(
        [hit("E0001", "CABLE_OVERHEAT", "major", value=74.5, threshold=70.0, message='Cable "hot", 74.5 °C')],
        T0,
    )
    event = out.events[0]
    [line] = out.lines
    measurement, tags, fields, ts = parse_line(line)
    assert measurement == "events"
    assert tags == {
        "district": "D01",
        "grid": "D01-G00",
        "type": "CABLE_OVERHEAT",
        "severity": "major",
        "kind": "electrical",
    }
    assert fields == {
        "event_id": event["event_id"],
        "device": "E0001",
        "site": "S1",
        "state": "open",
        "value": 74.5,
        "threshold": 70.0,
        "count": 1.0,
        "lat": event["lat"],
        "lon": event["lon"],
        "message": 'Cable "hot", 74.5 °C',
        "change": "raised",
        "cleared": False,
        "escalated": False,
    }
    assert ts == T0
    assert line.startswith(
        "events,district=D01,grid=D01-G00,kind=electrical,severity=major,type=CABLE_OVERHEAT "
    )
    assert "count=1.0" in line and "value=74.5" in line


def test_absent_value_is_not_written(store: EventStore, hit: HitFactory) -> None:
    [line] = store.process([hit("P0000", "PATROL_MISSED", "minor", value=None, threshold=None)], T0).lines
    fields = parse_line(line)[2]
    assert "value" not in fields and "threshold" not in fields


def test_state_open_is_written_once_per_event_and_every_state_once(
    store: EventStore, hit: HitFactory
) -> None:
    lines: list[str] = []
    event_id = store.process([hit("S0000", "TAMPER")], T0).events[0]["event_id"]
    lines += store.process([hit("S0000", "TAMPER")], T0).lines  # replay: nothing
    w = REPEAT_POINT_MS  # within it of the event's last point, a repeat's point waits
    lines = [*store.process([hit("S0000", "TAMPER", ts=T0 + 1)], T0 + w).lines]
    lines += store.process([hit("S0000", "TAMPER", state="clear", ts=T0 + 2)], T0 + w).lines
    lines += store.process([hit("S0000", "TAMPER", ts=T0 + 3)], T0 + 2 * w).lines
    lines += store.tick(T0 + 30 * MINUTE).lines
    for worker, name in (("W0", "ack"), ("W0", "comment"), ("W0", "resolve"), ("SUP1", "close")):
        lines += store.handle_action(worker, action(event_id, name), T0 + 31 * MINUTE).lines
    parsed = [parse_line(line) for line in lines]
    changes = [fields["change"] for _, _, fields, _ in parsed]
    assert changes == ["repeat", "cleared", "repeat", "escalated", "acknowledged", "resolved", "closed"]
    states = Counter(fields.get("state") for _, _, fields, _ in parsed)
    assert states == {None: 4, "acknowledged": 1, "resolved": 1, "closed": 1}
    assert [fields["count"] for _, _, fields, _ in parsed][-1] == 3.0


def test_times_are_unique_per_series(store: EventStore, hit: HitFactory) -> None:
    """Many changes in one ms: every series' points get distinct, increasing times."""
    hits = [hit(d, "TAMPER") for d in ("S0000", "S0001", "S0002")]
    hits += [hit(d, "TAMPER", state="clear", ts=T0 + 1) for d in ("S0000", "S0001", "S0002")]
    hits += [hit("E0000", "CABLE_OVERHEAT", "major"), hit("E0000", "CABLE_OVERHEAT", "critical", ts=T0 + 1)]
    lines = store.process(hits, T0).lines
    assert len(lines) == 8
    seen: dict[str, list[int]] = {}
    for line in lines:
        series = line.split(" ", 1)[0]
        seen.setdefault(series, []).append(parse_line(line)[3])
    for times in seen.values():
        assert times == sorted(set(times))
        assert times[0] == T0
    g00 = seen["events,district=D01,grid=D01-G00,kind=smoke,severity=major,type=TAMPER"]
    assert g00 == [T0, T0 + 1, T0 + 2, T0 + 3]
    # a later call at the same ms continues after the last point
    more = store.process([hit("S0000", "TAMPER", ts=T0 + 5)], T0)
    assert parse_line(more.lines[0])[3] == T0 + 4
    # time moving on: points return to the clock
    later = store.process([hit("S0001", "TAMPER", ts=T0 + 9000)], T0 + 9000)
    assert parse_line(later.lines[0])[3] == T0 + 9000


def test_numbers_and_messages_written_exactly_whatever_was_cached(
    store: EventStore, hit: HitFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line's numbers are ``repr(float(x))`` and its message quoted and escaped, also for
    messages met before (each quoted once, kept up to _MAX_QUOTED) and after the cache emptied."""
    monkeypatch.setattr(_points, "_MAX_QUOTED", 2)
    clock = _points.PointClock()
    event_id = store.process([hit("E0001", "CABLE_OVERHEAT", "major")], T0).events[0]["event_id"]
    db = EventDb(store.path)
    raised = db.get(event_id)
    db.close()
    assert raised is not None
    messages = ['Cable "hot"\\ 74.5 °C', "two\nlines", "plain", 'Cable "hot"\\ 74.5 °C', "two\nlines"]
    numbers = [(-0.0, 0.0, 1), (1e300, 3, 2**53), (None, 0.1, 7), (0.1, None, 12)]
    for i, message in enumerate(messages):
        value, threshold, count = numbers[i % len(numbers)]
        event = replace(raised, message=message, value=value, threshold=threshold, count=count, rev=2)
        fields = _points.event_line(event, "repeat", clock, T0 + i, with_state=False)
        assert f"message={quote_string(message)}," in fields
        for name, number in (("value", value), ("threshold", threshold)):
            if number is None:
                assert f",{name}=" not in fields
            else:
                assert f",{name}={float(number)!r}," in fields
        assert f",count={float(count)!r}," in fields
