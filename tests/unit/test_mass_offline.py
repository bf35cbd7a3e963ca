"""Mass silence (issue 17): the rules engine fires at most a budget of timers per
``Hazards.on_idle`` call, and their hits reach the event store raised at the service time their
timer fired, in order with the hits of later batches; a restart loses none of them. No clock but
the ints passed in."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts import Outcome
from devices import ElectricalPayload, Reading, Registry
from firegrid._hazards import Hazards
from rules import Hit, RulesConfig
from tests.helpers import write_registry

BUDGET = 7
PER_KIND = 40
"""Electrical monitors (and of each other kind): all silent since the service started."""
HOUR = 3_600_000


class Recorder:
    """A publisher without PUBACKs (the outbox forgets a row once handed over)."""

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        pass


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry.load(write_registry(tmp_path / "registry", devices_per_kind=PER_KIND))


def open_hazards(registry: Registry, data_dir: Path) -> Hazards:
    return Hazards(registry, RulesConfig(), data_dir, Recorder(), timer_budget=BUDGET)


@pytest.fixture
def hazards(registry: Registry, tmp_path: Path) -> Iterator[Hazards]:
    hazards = open_hazards(registry, tmp_path / "data")
    yield hazards
    hazards.close()


Calls = list[tuple[int, int]]


@pytest.fixture
def calls(hazards: Hazards, monkeypatch: pytest.MonkeyPatch) -> Calls:
    """(hits, now_ms) of every ``events.process`` call."""
    process: Callable[[Iterable[Hit], int], Outcome] = hazards.events.process
    seen: Calls = []

    def spy(hits: Iterable[Hit], now_ms: int) -> Outcome:
        batch = list(hits)
        seen.append((len(batch), now_ms))
        return process(batch, now_ms)

    monkeypatch.setattr(hazards.events, "process", spy)
    return seen


def catch_up(hazards: Hazards, now: int, rounds: int = 100) -> list[list[str]]:
    """``on_idle`` a ms apart (the pipeline's next rounds) until nothing waits; its lines, by call."""
    out = [hazards.on_idle(now)]
    while hazards.behind:
        assert len(out) < rounds, "the timers' backlog does not shrink"
        out.append(hazards.on_idle(now + len(out)))
    return out


def offline(hazards: Hazards) -> dict[str, dict[str, Any]]:
    events = hazards.events.list_events(type="DEVICE_OFFLINE")
    by_device = {e["device_id"]: e for e in events}
    assert len(by_device) == len(events), "a device with two DEVICE_OFFLINE events"
    return by_device


def electrical_timers_fire(hazards: Hazards) -> int:
    """When the electrical monitors, never heard from, go offline (all at once: the same start)."""
    fire = hazards.engine.next_deadline()
    assert fire is not None
    return fire


ELECTRICAL = {f"E{i:04d}" for i in range(PER_KIND)}


def test_a_mass_silence_reaches_the_store_a_budget_per_call(hazards: Hazards, calls: Calls) -> None:
    fire = electrical_timers_fire(hazards)
    hazards.on_idle(fire)
    assert calls == [(BUDGET, fire)] and hazards.behind
    catch_up(hazards, fire + 1)
    assert max(n for n, _ in calls) <= BUDGET
    assert len(calls) == -(-PER_KIND // BUDGET)
    assert {at for _, at in calls} == {fire}  # raised at the time the timer fired, not later
    events = offline(hazards)
    assert set(events) == ELECTRICAL
    assert {e["raised_at"] for e in events.values()} == {fire}
    assert {e["updated_at"] for e in events.values()} == {fire}


def test_a_device_back_while_its_raise_waits_is_raised_then_cleared(
    hazards: Hazards, registry: Registry, calls: Calls
) -> None:
    fire = electrical_timers_fire(hazards)
    hazards.on_idle(fire)
    back = "E0039"  # the last in slot order: still waiting
    assert back not in offline(hazards)
    reading = Reading(registry.slot_of[back], back, fire + 200, ElectricalPayload(residual_ma=10.0))
    hazards.on_readings([reading], fire + 300, {})
    event = offline(hazards)[back]
    assert (event["raised_at"], event["cleared"]) == (fire, True)
    history = hazards.events.get_event(event["event_id"])
    assert history is not None
    assert [(h["action"], h["at_ms"]) for h in history["history"]] == [("raise", fire), ("clear", fire + 300)]

    catch_up(hazards, fire + 400)
    assert set(offline(hazards)) == ELECTRICAL
    assert sum(n for n, _ in calls) == PER_KIND + 1  # each raise once, and the clear


def test_a_mass_of_escalations_goes_out_a_budget_per_call(hazards: Hazards) -> None:
    fire = electrical_timers_fire(hazards)
    catch_up(hazards, fire)
    due = fire + 8 * HOUR  # minor: the DEVICE_OFFLINE escalate (and smoke, water go offline)
    changes = [sum(line.startswith("events,") for line in lines) for lines in catch_up(hazards, due)]
    assert max(changes) <= BUDGET, changes
    events = offline(hazards)
    assert {d for d, e in events.items() if e["escalated"]} == ELECTRICAL
    assert len(events) == 3 * PER_KIND  # smoke and water too, raised, not yet due


def test_the_engine_fires_a_budget_per_call(hazards: Hazards, monkeypatch: pytest.MonkeyPatch) -> None:
    fired: list[int] = []
    tick = hazards.engine.tick

    def spy(now_ms: int, limit: int | None = None) -> list[Hit]:
        hits = tick(now_ms, limit)
        fired.append(len(hits))
        return hits

    monkeypatch.setattr(hazards.engine, "tick", spy)
    catch_up(hazards, electrical_timers_fire(hazards))
    assert [n for n in fired if n] == [BUDGET] * (PER_KIND // BUDGET) + [PER_KIND % BUDGET]


def test_a_snapshot_while_timers_wait_loses_and_repeats_nothing_after_a_kill(
    registry: Registry, tmp_path: Path
) -> None:
    hazards = open_hazards(registry, tmp_path / "data")
    fire = electrical_timers_fire(hazards)
    hazards.on_idle(fire)
    hazards.on_idle(fire + 1)
    assert hazards.behind and len(offline(hazards)) == 2 * BUDGET
    hazards.save(fire + 2)  # the rule state says which raises still wait, as the store does
    hazards._snapshots.flush()
    hazards.events.close()  # a kill -9: no flush, no close of the rule state

    again = open_hazards(registry, tmp_path / "data")
    try:
        assert again.behind
        catch_up(again, fire + 60_000)
        events = offline(again)
        assert set(events) == ELECTRICAL
        assert {e["raised_at"] for e in events.values()} == {fire}  # not the restart's tick
        assert {e["count"] for e in events.values()} == {1}
    finally:
        again.close()


def test_a_clean_stop_stores_what_waits_and_a_restart_raises_nothing_again(
    registry: Registry, tmp_path: Path
) -> None:
    hazards = open_hazards(registry, tmp_path / "data")
    fire = electrical_timers_fire(hazards)
    hazards.on_idle(fire)
    assert hazards.behind
    hazards.close()  # the service calls flush() first; close() alone must not lose them either

    again = open_hazards(registry, tmp_path / "data")
    try:
        assert set(offline(again)) == ELECTRICAL
        catch_up(again, fire + 1)
        assert set(offline(again)) == ELECTRICAL
        assert {e["count"] for e in offline(again).values()} == {1}
    finally:
        again.close()
