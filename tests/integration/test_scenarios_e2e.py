"""Simulator scenarios end to end: a generated world, the real broker, InfluxDB and
`firegrid ingest`; the events raised equal the scenario's ground truth, nothing missing and
nothing extra, and every hostile message ends in ``rejects``.

Scenarios whose steps span many simulated minutes run at a larger time scale than their file's
default, so each takes 10-20 wall seconds. The rules run on reading ``ts`` (data time), so a
time scale changes nothing they see; the simulator refuses a time scale that would put an
expectation on a knife's edge.

``silent`` is not run here: DEVICE_OFFLINE runs on the service clock (2 × heartbeat + 60 s of
wall time for the defaults, ≥ 200 s for the scenario), and the ground truth is computed from the
§7 defaults and the registry, never from a rules file, so a rules file shrinking the heartbeat
and grace would leave the truth unable to account for the events it causes.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from access import SIMULATOR_ACCOUNT
from firegrid._services import Influxd, Mosquitto
from ingest import expected_string
from simulators import write_world
from tests.helpers import eventually, influx_query
from tests.integration.conftest import IngestProcess
from tests.scenario_run import (
    ScenarioRun,
    event_key,
    list_events,
    local_start_ms,
    raised_keys,
    run_scenario,
)

DAY_MS = 86_400_000

# scenario → (time scale (None: the file's own), start (None: so that the run ends now, the
# runner's default; else (lead, hour): the latest `hour` o'clock local time at least `lead` before
# now, see tests.scenario_run.local_start_ms)); each run takes 5-17 wall s at scale 0.02.
# `patrol` and `hostile` start at a fixed time of day, so that they pick the same workers and
# checkpoints from run to run: 08:00 and 10:30, when this small world's workers are on their
# rounds and the planner must fit the scenario's scans between theirs (the unit tests plan them
# at every time of day). `patrol` lasts under 3.5 simulated days: its ts all lie in the past.
SCENARIOS: dict[str, tuple[float | None, tuple[int, float] | None]] = {
    "fire": (30, None),
    "electrical": (80, None),
    "water": (15, None),
    "patrol": (15_000, (4 * DAY_MS, 8.0)),
    "smoke": (None, None),
    "hostile": (None, (60_000, 10.5)),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(out, scale=0.02, seed=7)  # 22 grids, 189 devices
    return out


@pytest.fixture
def registry_dir(world: Path) -> Path:
    """The generated world is the registry `firegrid ingest` loads (overrides conftest's)."""
    return world


@dataclass
class Service:
    process: IngestProcess
    started: float
    """time.monotonic() when the process was started."""


@pytest.fixture
def service(ingest_env: dict[str, str], tmp_path: Path) -> Iterator[Service]:
    process = IngestProcess(ingest_env, tmp_path / "ingest.log")
    started = time.monotonic()
    process.start()
    yield Service(process, started)
    if process.proc is not None and process.proc.poll() is None:
        process.proc.send_signal(signal.SIGKILL)
        process.proc.wait(30)


def _run(
    name: str, world: Path, broker: Mosquitto, influx: Influxd, influx_db: str, prefix: str, tmp_path: Path
) -> ScenarioRun:
    scale, start = SCENARIOS[name]
    return run_scenario(
        registry=world,
        url=broker.url_as(SIMULATOR_ACCOUNT),
        prefix=prefix,
        scenario=name,
        truth_path=tmp_path / f"{name}.truth.jsonl",
        influx_url=influx.url,
        influx_db=influx_db,
        time_scale=scale,
        start_ms=None if start is None else local_start_ms(int(time.time() * 1000) - start[0], start[1]),
    )


def _assert_events_equal_truth(name: str, run: ScenarioRun, service: Service) -> None:
    truth = run.truth.events
    http = service.process.http
    # Every reading of the run has been through the rules (run_scenario waits for that); only
    # timers on the service clock (PATROL_MISSED, DEVICE_OFFLINE; checked every 0.5 s) may still
    # be due: give them a few seconds, then compare whatever is there.
    with contextlib.suppress(AssertionError):
        eventually(lambda: truth <= raised_keys(http), timeout=10, what=f"{name}: every expected event")
    # Devices falling silent at the end of the run cannot have caused a DEVICE_OFFLINE yet: the
    # shortest offline threshold is 2 × 60 s + 60 s of service clock (electrical), and the
    # service started less than that ago. So every event here is one the truth must list.
    assert time.monotonic() - service.started < 170
    events = list_events(http)
    raised = {event_key(e) for e in events}
    missing, extra = truth - raised, raised - truth
    assert not missing and not extra, (
        f"{name}: missing {sorted(missing)}, extra {sorted(extra)}; "
        f"extra events: {[e for e in events if event_key(e) in extra]}"
    )


@pytest.mark.parametrize("name", sorted(set(SCENARIOS) - {"hostile"}))
def test_scenario_raises_exactly_its_ground_truth(
    name: str,
    world: Path,
    broker: Mosquitto,
    influx: Influxd,
    influx_db: str,
    topic_prefix: str,
    service: Service,
    tmp_path: Path,
) -> None:
    run = _run(name, world, broker, influx, influx_db, topic_prefix, tmp_path)
    assert run.truth.events, f"{name}: the ground truth lists no event"
    _assert_events_equal_truth(name, run, service)


def test_hostile_messages_end_in_rejects_and_valid_ones_are_stored(
    world: Path,
    broker: Mosquitto,
    influx: Influxd,
    influx_db: str,
    topic_prefix: str,
    service: Service,
    tmp_path: Path,
) -> None:
    run = _run("hostile", world, broker, influx, influx_db, topic_prefix, tmp_path)
    assert run.truth.rejects and run.truth.accepted
    _assert_events_equal_truth("hostile", run, service)  # the valid injections raise events
    rows = influx_query(influx.url, influx_db, 'SELECT "topic", "reason" FROM "rejects"')
    stored = Counter((row["reason"], row["topic"]) for row in rows if row["topic"] != run.sync_topic)
    assert stored == run.truth.rejects, (
        f"missing {sorted((run.truth.rejects - stored).elements())}, "
        f"extra {sorted((stored - run.truth.rejects).elements())}"
    )
    for line in run.truth.accepted:
        measurement, name = line["accepted"], line["field"]
        found = influx_query(
            influx.url,
            influx_db,
            f'SELECT "{name}" FROM "{measurement}" WHERE "device" = \'{line["device_id"]}\'',
        )
        values = [row[name] for row in found if row[name] is not None]
        if line["value"] is None:  # an unknown field: not stored
            assert values == [], (line, values)
        else:
            # Stored as sent, except newlines: line protocol carries them as the two characters
            # `\n` (docs/ARCHITECTURE.md, "Extensions of the contract"; `ingest.expected_string`).
            assert expected_string(line["value"]) in values, (line, values)
