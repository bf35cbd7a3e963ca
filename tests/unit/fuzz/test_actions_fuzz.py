"""Worker actions under fuzzing, against a real EventStore (SQLite in tmp_path): every message on
``actions/{worker}`` gets an answer ``{event_id, action, ok, error}`` (a refusal with a reason,
or ok for a legal transition), never an exception; states only move forward, only supervisors
close (CONTRACT §8)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts import STATES, EventStore, State
from devices import Registry
from rules import SEVERITIES, Severity
from tests.unit.fuzz._actions import (
    T0,
    EventModel,
    Recorder,
    Step,
    act_and_check,
    check_store,
    drive,
    fresh_events,
    raise_event,
    random_action,
    steps,
)
from tests.unit.fuzz._budget import (
    BOUNDED,
    BOUNDED_BYTES,
    BOUNDED_SEED,
    SOAK,
    SOAK_INPUTS,
    SOAK_TIMEOUT_S,
    Tally,
    soak,
    soak_seed,
)

EVENTS_PER_EXAMPLE = 4
MIN_ACTIONS_PER_EXAMPLE = 4
MAX_ACTIONS_PER_EXAMPLE = 16


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def store(tmp_path: Path, fuzz_registry: Registry, recorder: Recorder) -> Iterator[EventStore]:
    with EventStore(tmp_path / "events.sqlite", fuzz_registry, recorder) as store:
        yield store


def _example(store: EventStore, recorder: Recorder, registry: Registry, setup: Setup, run: list[Step]) -> int:
    """Fresh events in drawn states, then a run of drawn actions on them; how many actions."""
    events: dict[str, EventModel] = {}
    for device_id, severity, state in setup:
        event = raise_event(store, registry, device_id, severity, T0)
        drive(store, registry, event, state, T0)
        events[event.event_id] = event
    order = list(events.values())
    for i, step in enumerate(run):
        topic, payload = step.resolve(registry, order)
        act_and_check(store, recorder, registry, events, topic, payload, T0 + 1000 * (i + 1))
    check_store(store, registry, events)
    return len(run)


Setup = list[tuple[str, Severity, State]]


def _setups(registry: Registry) -> st.SearchStrategy[Setup]:
    event = st.tuples(
        st.sampled_from(sorted(registry.slot_of)),
        st.sampled_from(SEVERITIES),
        st.sampled_from(STATES),
    )
    return st.lists(event, min_size=EVENTS_PER_EXAMPLE, max_size=EVENTS_PER_EXAMPLE)


def _runs(registry: Registry) -> st.SearchStrategy[list[Step]]:
    return st.lists(steps(registry), min_size=MIN_ACTIONS_PER_EXAMPLE, max_size=MAX_ACTIONS_PER_EXAMPLE)


def _random_bytes(store: EventStore, recorder: Recorder, registry: Registry, seed: int, count: int) -> Tally:
    rng, tally = random.Random(seed), Tally()
    events = {e.event_id: e for e in fresh_events(store, registry, rng, 6, T0)}
    for i in range(count):
        live = [e for e in events.values() if e.state != "closed"]
        if len(live) < 3:  # keep legal moves possible
            events.update((e.event_id, e) for e in fresh_events(store, registry, rng, 3, T0 + i))
        recent = list(events.values())[-12:]  # closed ones among them
        topic, payload = random_action(rng, registry, recent)
        try:
            act_and_check(store, recorder, registry, events, topic, payload, T0 + i)
        except BaseException as exc:
            exc.add_note(f"seed {seed}, input {i}: topic {topic!r}, payload {payload[:500]!r}")
            raise
        tally.add()
    check_store(store, registry, events)
    return tally


def test_structured_actions(store: EventStore, recorder: Recorder, fuzz_registry: Registry) -> None:
    @BOUNDED
    @given(_setups(fuzz_registry), _runs(fuzz_registry))
    def run(setup: Setup, steps: list[Step]) -> None:
        _example(store, recorder, fuzz_registry, setup, steps)

    run()


def test_random_bytes(store: EventStore, recorder: Recorder, fuzz_registry: Registry) -> None:
    tally = _random_bytes(store, recorder, fuzz_registry, BOUNDED_SEED, BOUNDED_BYTES)
    assert tally.inputs == BOUNDED_BYTES


@pytest.mark.soak
@pytest.mark.timeout(SOAK_TIMEOUT_S)
def test_soak_structured_actions(store: EventStore, recorder: Recorder, fuzz_registry: Registry) -> None:
    tally = Tally()

    @SOAK
    @given(_setups(fuzz_registry), _runs(fuzz_registry))
    def run(setup: Setup, steps: list[Step]) -> None:
        tally.add(_example(store, recorder, fuzz_registry, setup, steps))

    soak(run, tally, "actions, structured")


@pytest.mark.soak
@pytest.mark.timeout(SOAK_TIMEOUT_S)
def test_soak_random_bytes(store: EventStore, recorder: Recorder, fuzz_registry: Registry) -> None:
    seed = soak_seed()
    print(f"actions random bytes: seed {seed} (FIREGRID_FUZZ_SEED={seed} to replay)")
    print(_random_bytes(store, recorder, fuzz_registry, seed, SOAK_INPUTS).report("actions, random bytes"))
