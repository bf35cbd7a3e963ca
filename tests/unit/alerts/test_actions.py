"""Worker actions: who may do what, in which order; results on actions/{worker}/result; history."""

from __future__ import annotations

import pytest

from alerts import REPEAT_WINDOW_MS, EventStore, Outcome
from tests.unit.alerts.conftest import T0, FakePublisher, HitFactory, action, parse_line

# grids: D01-G00 (W0, SUP1), D01-G01 (W1), D01-G02 (W2, SUP1), D01-G03 (W3); SUP1 is the supervisor


@pytest.fixture
def event_id(store: EventStore, hit: HitFactory, publisher: FakePublisher) -> str:
    """A major TAMPER event of S0000, in grid D01-G00."""
    out = store.process([hit("S0000", "TAMPER", "major")], T0)
    publisher.clear()
    return str(out.events[0]["event_id"])


def _do(
    store: EventStore, worker: str, event_id: str, name: str, note: str | None = None, at: int = T0
) -> Outcome:
    return store.handle_action(worker, action(event_id, name, note), at)


def _result(publisher: FakePublisher, worker: str) -> dict[str, object]:
    return publisher.on(f"actions/{worker}/result")[-1]


def test_ack_resolve_close_by_the_right_people(
    store: EventStore, publisher: FakePublisher, event_id: str
) -> None:
    ack = _do(store, "W0", event_id, "ack", "on my way", T0 + 1000)
    assert ack.result is not None and ack.result.ok
    assert _result(publisher, "W0") == {
        "event_id": event_id,
        "action": "ack",
        "ok": True,
        "error": None,
        "at": T0 + 1000,  # the transition's time, as the history shows it
    }
    [published] = publisher.on("alerts/D01/D01-G00")
    assert published["state"] == "acknowledged" and published["updated_at"] == T0 + 1000
    assert parse_line(ack.lines[0])[2]["state"] == "acknowledged"

    resolve = _do(store, "W0", event_id, "resolve", "cover closed", T0 + 2000)
    assert resolve.result is not None and resolve.result.ok
    close = _do(store, "SUP1", event_id, "close", "verified", T0 + 3000)
    assert close.result is not None and close.result.ok
    assert _result(publisher, "SUP1") == {
        "event_id": event_id,
        "action": "close",
        "ok": True,
        "error": None,
        "at": T0 + 3000,
    }
    states = [e["state"] for e in publisher.on("alerts/D01/D01-G00")]
    assert states == ["acknowledged", "resolved", "closed"]
    assert [parse_line(line)[2]["state"] for line in (*resolve.lines, *close.lines)] == ["resolved", "closed"]
    assert store.counts()["open"] == 0


def test_a_worker_of_another_grid_is_refused(
    store: EventStore, publisher: FakePublisher, event_id: str
) -> None:
    out = _do(store, "W1", event_id, "ack")
    assert out.result is not None and not out.result.ok
    assert out.published[-1].topic == "actions/W1/result"
    result = _result(publisher, "W1")
    assert result["ok"] is False and result["event_id"] == event_id and result["action"] == "ack"
    assert "not assigned to grid D01-G00" in str(result["error"])
    assert publisher.on("alerts/D01/D01-G00") == [] and out.lines == []
    assert store.get_event(event_id)["state"] == "open"  # type: ignore[index]


def test_only_a_supervisor_may_close(store: EventStore, publisher: FakePublisher, event_id: str) -> None:
    _do(store, "W0", event_id, "ack")
    _do(store, "W0", event_id, "resolve")
    out = _do(store, "W0", event_id, "close")
    assert out.result is not None and not out.result.ok
    assert "only a supervisor may close" in str(_result(publisher, "W0")["error"])
    assert store.get_event(event_id)["state"] == "resolved"  # type: ignore[index]


def test_any_supervisor_may_close_even_outside_their_grids(
    store: EventStore, publisher: FakePublisher, hit: HitFactory
) -> None:
    event = store.process([hit("P0000", "PATROL_HAZARD", "major")], T0).events[0]
    assert event["grid_id"] == "D01-G01"  # W1 only; SUP1 is not assigned to it
    ack = _do(store, "SUP1", event["event_id"], "ack")
    assert ack.result is not None and not ack.result.ok  # not a worker of the grid
    _do(store, "W1", event["event_id"], "ack")
    _do(store, "W1", event["event_id"], "resolve")
    out = _do(store, "SUP1", event["event_id"], "close")
    assert out.result is not None and out.result.ok


def test_a_supervisor_assigned_to_the_grid_may_work_the_event(store: EventStore, event_id: str) -> None:
    for name in ("ack", "resolve", "close"):
        out = _do(store, "SUP1", event_id, name)
        assert out.result is not None and out.result.ok, out.result


@pytest.mark.parametrize(
    ("steps", "name", "reason"),
    [
        ((), "resolve", "cannot resolve an event that is open: acknowledge it first"),
        ((), "close", "cannot close an event that is open: resolve it first"),
        (("ack",), "ack", "cannot ack an event that is acknowledged"),
        (("ack",), "close", "cannot close an event that is acknowledged: resolve it first"),
        (("ack", "resolve"), "ack", "cannot ack an event that is resolved"),
        (("ack", "resolve"), "resolve", "cannot resolve an event that is resolved"),
        (("ack", "resolve", "close"), "ack", "cannot ack an event that is closed"),
        (("ack", "resolve", "close"), "close", "cannot close an event that is closed"),
        (("ack", "resolve", "close"), "comment", "event is closed"),
    ],
)
def test_out_of_order_actions_are_refused(
    store: EventStore, publisher: FakePublisher, event_id: str, steps: tuple[str, ...], name: str, reason: str
) -> None:
    for step in steps:
        out = _do(store, "SUP1" if step == "close" else "W0", event_id, step)
        assert out.result is not None and out.result.ok
    before = store.get_event(event_id)
    worker = "SUP1" if name == "close" else "W0"
    out = _do(store, worker, event_id, name)
    assert out.result is not None and not out.result.ok
    assert reason in str(_result(publisher, worker)["error"])
    assert store.get_event(event_id) == before


@pytest.mark.parametrize(
    ("worker", "payload", "reason", "echo"),
    [
        ("W0", b"{not json", "not valid JSON", (None, None)),
        ("W0", b"[1, 2]", "payload must be a JSON object", (None, None)),
        ("W0", b'{"action": "ack"}', "event_id missing", (None, "ack")),
        ("W0", b'{"event_id": "E1"}', "action missing", ("E1", None)),
        ("W0", b'{"event_id": "E1", "action": "delete"}', "unknown action 'delete'", ("E1", "delete")),
        ("W0", b'{"event_id": "E1", "action": "ack", "note": 5}', "note must be a string", ("E1", "ack")),
        (
            "W0",
            b'{"event_id": "01JF0000000000000000000000", "action": "ack"}',
            "unknown event",
            (None, "ack"),
        ),
        ("W9", b'{"event_id": "E1", "action": "ack"}', "unknown worker W9", ("E1", "ack")),
        ("bad id!", b'{"event_id": "E1", "action": "ack"}', "invalid worker_id", ("E1", "ack")),
    ],
)
def test_bad_requests_are_refused_with_a_reason(
    store: EventStore,
    publisher: FakePublisher,
    event_id: str,
    worker: str,
    payload: bytes,
    reason: str,
    echo: tuple[str | None, str | None],
) -> None:
    out = store.handle_action(worker, payload, T0)
    assert out.result is not None and not out.result.ok
    result = _result(publisher, worker)
    assert reason in str(result["error"])
    if echo[0] is not None:
        assert result["event_id"] == echo[0]
    assert result["action"] == echo[1]
    assert publisher.topics() == [f"actions/{worker}/result"]
    assert out.lines == []


def test_oversized_payload_and_unsafe_worker_topic(store: EventStore, publisher: FakePublisher) -> None:
    out = store.handle_action("W0", b" " * (65 * 1024), T0)
    assert out.result is not None and "larger than" in str(out.result.error)
    out = store.handle_action("a/b", b"{}", T0)
    assert out.result is not None and not out.result.ok
    assert publisher.topics() == ["actions/W0/result"]  # nowhere safe to answer "a/b"


def test_comments_are_kept_in_the_history_and_change_nothing(
    store: EventStore, publisher: FakePublisher, event_id: str
) -> None:
    before = store.get_event(event_id)
    out = _do(store, "W0", event_id, "comment", "smells of smoke", T0 + 500)
    assert out.result is not None and out.result.ok and out.lines == []
    assert publisher.topics() == ["actions/W0/result"]
    after = store.get_event(event_id)
    assert after is not None and before is not None
    assert after["history"][-1] == {
        "at_ms": T0 + 500,
        "from_state": "open",
        "to_state": "open",
        "action": "comment",
        "worker_id": "W0",
        "note": "smells of smoke",
    }
    refused = _do(store, "W3", event_id, "comment", "not mine")
    assert refused.result is not None and not refused.result.ok


def test_history_keeps_every_transition_with_time_worker_and_note(
    store: EventStore, hit: HitFactory, event_id: str
) -> None:
    store.process([hit("S0000", "TAMPER", "major", ts=T0 + 100)], T0 + 100)
    store.process([hit("S0000", "TAMPER", "major", state="clear", ts=T0 + 200)], T0 + 200)
    _do(store, "W0", event_id, "ack", "coming", T0 + 300)
    _do(store, "W0", event_id, "resolve", "fixed", T0 + 400)
    _do(store, "W1", event_id, "comment", "refused: not recorded", T0 + 450)
    _do(store, "SUP1", event_id, "close", "checked", T0 + 500)
    event = store.get_event(event_id)
    assert event is not None
    rows = [
        (h["at_ms"], h["from_state"], h["to_state"], h["action"], h["worker_id"], h["note"])
        for h in event["history"]
    ]
    assert rows == [
        (T0, None, "open", "raise", None, "TAMPER raise on S0000"),
        (T0 + 100, "open", "open", "repeat", None, "TAMPER raise on S0000"),
        (T0 + 200, "open", "open", "clear", None, "TAMPER clear on S0000"),
        (T0 + 300, "open", "acknowledged", "ack", "W0", "coming"),
        (T0 + 400, "acknowledged", "resolved", "resolve", "W0", "fixed"),
        (T0 + 500, "resolved", "closed", "close", "SUP1", "checked"),
    ]
    assert event["state"] == "closed" and event["cleared"] is True and event["count"] == 2


def test_a_repeat_of_an_acknowledged_event_counts_and_keeps_its_state(
    store: EventStore, hit: HitFactory, event_id: str
) -> None:
    _do(store, "W0", event_id, "ack")
    # within REPEAT_WINDOW_MS of the ack's publication: counted at once, published when it passes
    assert store.process([hit("S0000", "TAMPER", "major", ts=T0 + 1)], T0 + 1).events == []
    assert store.list_events()[0]["count"] == 2
    assert store.next_deadline() == T0 + REPEAT_WINDOW_MS
    out = store.tick(T0 + REPEAT_WINDOW_MS)
    assert out.events[0]["state"] == "acknowledged" and out.events[0]["count"] == 2
