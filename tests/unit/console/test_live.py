"""The console's cache of open events: newer wins, closed stays gone, syncs, visibility, order."""

from __future__ import annotations

import asyncio
from typing import Any

from access import Role, Visibility
from console import EventCache


def event(event_id: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": event_id,
        "type": "FIRE_ALARM",
        "severity": "critical",
        "state": "open",
        "grid_id": "D01-G00",
        "station_id": "D01-ST1",
        "raised_at": 1000,
        "updated_at": 1000,
        "count": 1,
    }
    base.update(fields)
    return base


def test_a_newer_change_replaces_an_older_one_never_the_reverse() -> None:
    cache = EventCache()
    assert cache.apply(event("E1"))
    assert not cache.apply(event("E1"))  # a repeat (grid and station topic): no change
    assert cache.apply(event("E1", state="acknowledged", updated_at=2000))
    assert not cache.apply(event("E1", state="open", updated_at=1000))  # late copy
    assert cache.get("E1") == event("E1", state="acknowledged", updated_at=2000)
    # same millisecond: the lifecycle order decides; rev first when there is one
    assert cache.apply(event("E1", state="resolved", updated_at=2000))
    assert cache.apply(event("E1", state="acknowledged", updated_at=1, rev=9))


def test_a_closed_event_leaves_and_does_not_come_back() -> None:
    cache = EventCache()
    cache.apply(event("E1"))
    assert cache.apply(event("E1", state="closed", updated_at=3000))
    assert cache.get("E1") is None and len(cache) == 0
    assert not cache.apply(event("E1", state="resolved", updated_at=4000))
    cache.sync([event("E1")], cache.mark())
    assert cache.get("E1") is None


def test_sync_drops_what_closed_unseen_and_keeps_what_arrived_meanwhile() -> None:
    cache = EventCache()
    cache.apply(event("OLD"))
    mark = cache.mark()
    cache.apply(event("NEW"))  # arrived live while the sync was under way
    cache.sync([event("LISTED")], mark)
    assert cache.get("OLD") is None  # closed while the console was not listening
    assert cache.get("NEW") is not None and cache.get("LISTED") is not None
    assert cache.synced


def test_visible_filters_by_the_users_rights_critical_first_then_newest() -> None:
    cache = EventCache()
    cache.apply(event("A", severity="minor", raised_at=9000))
    cache.apply(event("B", severity="critical", raised_at=1000))
    cache.apply(event("C", severity="critical", raised_at=5000))
    cache.apply(event("D", severity="major", raised_at=7000, grid_id="D01-G01"))
    everyone = Visibility("SUP1", Role.SUPERVISOR)
    assert [e["event_id"] for e in cache.visible(everyone)] == ["C", "B", "D", "A"]
    g01 = Visibility("W1", Role.WORKER, grids=frozenset({"D01-G01"}))
    assert [e["event_id"] for e in cache.visible(g01)] == ["D"]
    station = Visibility("D01-ST1", Role.STATION, station="D01-ST1")
    assert [e["event_id"] for e in cache.visible(station)] == ["C", "B"]
    device = Visibility("S0000", Role.DEVICE, grids=frozenset())
    assert cache.visible(device) == []


def test_hub_tells_only_those_who_may_see_and_a_slow_one_gets_one_reload() -> None:
    from console import Hub
    from console._live import QUEUE_SIZE

    async def scenario() -> None:
        hub = Hub()
        g00 = hub.join(Visibility("W0", Role.WORKER, grids=frozenset({"D01-G00"})))
        g01 = hub.join(Visibility("W1", Role.WORKER, grids=frozenset({"D01-G01"})))
        hub.change(event("E1", message="<b>x</b>"))
        kind, message = g00.queue.get_nowait()
        assert kind == "change" and message["event_id"] == "E1" and message["message"] == "<b>x</b>"
        assert g01.queue.empty()
        for i in range(QUEUE_SIZE + 5):  # W0's page does not read: it falls behind
            hub.change(event(f"F{i}"))
        queued = [g00.queue.get_nowait() for _ in range(g00.queue.qsize())]
        assert queued[0] == ("resync", {}) and len(queued) == 5  # one reload, then what came after
        hub.close()  # shutting down: every stream ends
        assert g00.queue.get_nowait() == ("bye", {}) and g01.queue.get_nowait() == ("bye", {})
        hub.leave(g00)
        hub.leave(g01)
        assert len(hub) == 0

    asyncio.run(scenario())
