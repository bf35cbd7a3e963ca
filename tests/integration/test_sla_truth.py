"""`/sla` against the ground truth of simulated workers (issue 15's acceptance, CONTRACT §12).

A real mosquitto running the district's generated credentials, a real `firegrid ingest`, and the
registry's workers played by the simulator (`simulators.Responders`, each signed in as itself):
alarms in two waves, some events taken (ack, resolve, a supervisor closes), some left alone. The
expected figures are computed here from the ground truth alone — what each worker did and when
it took effect (the action result's ``at``), each event's ``raised_at`` and severity from its
alert — by a straightforward reading of §12, independent of ``safety``; they must equal `/sla`
for several windows and several values of ``at`` (past, now, 9 h ahead).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from access import make_credentials
from devices import Registry
from firegrid._services import Influxd, Mosquitto
from simulators import (
    Lognormal,
    Responders,
    RespondPolicy,
    ResponseRecord,
    SlowWorkers,
    WorkerAction,
    read_passwords,
)
from tests.helpers import HTTP, eventually, write_registry
from tests.integration.conftest import IngestProcess, service_env
from tests.mqtt import TestClient

DEADLINE_MS = {"critical": 120_000, "major": 1_800_000, "minor": 8 * 3_600_000}
"""§12: acknowledged on time means before raised_at + these."""
EIGHT_HOURS_MS = 8 * 3_600_000
POLICY = RespondPolicy(
    ack=Lognormal(median=1.5, sigma=0.5),
    resolve=Lognormal(median=1.5, sigma=0.5),
    close=Lognormal(median=1.5, sigma=0.5),
    ignore=0.3,
    silent=0.0,
    slow=SlowWorkers(share=0.0),
    seed=11,
)


@dataclass
class Truth:
    """Every event the workers saw, and every action they took, from the simulator's records."""

    raised: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    """event_id → (raised_at, severity, grid_id)."""
    done: dict[str, dict[str, int]] = field(default_factory=dict)
    """event_id → action → when it took effect (first time, ok only)."""

    def add(self, record: ResponseRecord) -> None:
        self.raised.setdefault(record.event_id, (record.raised_at, record.severity, record.grid_id))
        if isinstance(record, WorkerAction) and record.ok and record.took_effect_at is not None:
            self.done.setdefault(record.event_id, {}).setdefault(record.action, record.took_effect_at)


def nearest_rank(values: list[float], p: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def share(part: int, whole: int) -> float | None:
    if whole == 0:
        return None
    return math.floor(1000 * part / whole + 0.5) / 10


def expected(truth: Truth, since: int, until: int | None, at: int, grid: str | None = None) -> dict[str, Any]:
    """§12, read literally, over the ground truth."""
    chosen = [
        (event_id, raised_at, severity)
        for event_id, (raised_at, severity, grid_id) in truth.raised.items()
        if since <= raised_at
        and (until is None or raised_at < until)
        and raised_at <= at
        and (grid is None or grid_id == grid)
    ]
    acked_on_time = handled = old_enough = closed = 0
    acks: list[float] = []
    resolves: list[float] = []
    for event_id, raised_at, severity in chosen:
        done = {action: t for action, t in truth.done.get(event_id, {}).items() if t <= at}
        if "ack" in done:
            acks.append((done["ack"] - raised_at) / 1000)
            acked_on_time += done["ack"] < raised_at + DEADLINE_MS[severity]
        if "resolve" in done:
            resolves.append((done["resolve"] - raised_at) / 1000)
        if raised_at <= at - EIGHT_HOURS_MS:
            old_enough += 1
            handled += "resolve" in done and done["resolve"] - raised_at <= EIGHT_HOURS_MS
        closed += "close" in done
    return {
        "raised": len(chosen),
        "acked_on_time": acked_on_time,
        "handled_8h": handled,
        "closed": closed,
        "ack_p50_s": nearest_rank(acks, 50),
        "ack_p90_s": nearest_rank(acks, 90),
        "resolve_p50_s": nearest_rank(resolves, 50),
        "resolve_p90_s": nearest_rank(resolves, 90),
        "handled_8h_pct": share(handled, old_enough),
        "closure_pct": share(closed, len(chosen)),
    }


@pytest.fixture
def district(
    influx: Influxd, influx_db: str, topic_prefix: str, tmp_path: Path
) -> Iterator[tuple[Mosquitto, IngestProcess, Registry, Path]]:
    registry_dir = write_registry(tmp_path / "registry", devices_per_kind=8)
    credentials = tmp_path / "credentials"
    make_credentials(registry_dir, credentials, topic_prefix=topic_prefix)
    passwords = read_passwords(credentials)
    broker = Mosquitto(tmp_path / "broker", credentials=credentials, passwords=passwords)
    broker.start()
    data = tmp_path / "data"
    data.mkdir()
    env = {
        **service_env(broker, influx, influx_db, topic_prefix, registry_dir, data),
        "FIREGRID_CREDENTIALS": str(credentials),  # SUP1 reads /sla and /events with its own password
    }
    ingest = IngestProcess(env, tmp_path / "ingest.log")
    try:
        ingest.start()
        yield broker, ingest, Registry.load(registry_dir), credentials
        assert ingest.stop() == 0
    finally:
        if ingest.proc is not None and ingest.proc.poll() is None:
            ingest.proc.kill()
        broker.stop()


def test_sla_equals_the_figures_of_the_workers_ground_truth(
    district: tuple[Mosquitto, IngestProcess, Registry, Path], topic_prefix: str
) -> None:
    broker, ingest, registry, credentials = district
    passwords = read_passwords(credentials)
    truth = Truth()
    responders = Responders(
        registry,
        host="127.0.0.1",
        port=broker.port,
        passwords=passwords,
        policy=POLICY,
        prefix=topic_prefix,
        sink=truth.add,
    )
    sim = TestClient(broker.url_as("firegrid-sim"))
    try:
        responders.start()

        def wave(first: int) -> None:
            """Four smoke alarms (FIRE_ALARM, and FIRE_CONFIRMED per site) and four pressure losses."""
            now = int(time.time() * 1000)
            alarm, loss = (
                orjson.dumps({"ts": now, "alarm": True}),
                orjson.dumps({"ts": now, "pressure_mpa": 0.01}),
            )
            devices = range(first, first + 4)
            sim.publish_many(
                [(f"{topic_prefix}fire/D01/smoke/S{i:04d}", alarm) for i in devices]
                + [(f"{topic_prefix}fire/D01/water/W{i:04d}", loss) for i in devices]
            )

        wave(0)
        eventually(lambda: len(truth.raised) >= 8, timeout=20, what="the first wave's events seen")
        eventually(lambda: len(truth.done) >= 2, timeout=20, what="some of them acted on")
        middle = int(time.time() * 1000)
        wave(4)
        assert responders.wait_settled(60), responders.scheduled()
    finally:
        summary = responders.stop()
        sim.close()
    assert not summary.failures, summary

    def supervisor(**params: int | str) -> dict[str, Any]:
        response = HTTP.get(
            f"{ingest.http}/sla",
            params={k: str(v) for k, v in params.items()},
            auth=("SUP1", passwords["SUP1"]),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    # the truth saw every event ingest raised, and the run has all kinds of handling
    every = {
        e["event_id"]
        for e in HTTP.get(f"{ingest.http}/events", auth=("SUP1", passwords["SUP1"]), timeout=10).json()
    }
    closed = HTTP.get(
        f"{ingest.http}/events", params={"state": "closed"}, auth=("SUP1", passwords["SUP1"]), timeout=10
    ).json()
    assert every | {e["event_id"] for e in closed} == set(truth.raised)
    handled = [done for done in truth.done.values() if "close" in done]
    assert handled and len(truth.done) < len(truth.raised), "some events taken, some left alone"

    start = min(raised_at for raised_at, _, _ in truth.raised.values())
    end = int(time.time() * 1000) + 1
    windows = [(start, None), (start, middle), (middle, end)]
    moments = [middle + 500, end, end + 9 * 3_600_000]
    checked = 0
    for since, until in windows:
        for at in moments:
            params: dict[str, int | str] = {"since": since, "at": at}
            if until is not None:
                params["until"] = until
            answer = supervisor(**params)
            want = expected(truth, since, until, at)
            assert answer["total"] == want, (since, until, at)
            for grid_id in registry.grids:
                assert answer["grids"][grid_id] == expected(truth, since, until, at, grid_id), grid_id
            checked += 1
            if at == moments[-1]:  # 9 h later: every event is old enough for handled_8h
                assert answer["total"]["handled_8h_pct"] is not None
    assert checked == 9
    # one grid alone, as a filter
    one = supervisor(since=start, at=end, grid="D01-G00")
    assert one["total"] == expected(truth, start, None, end, "D01-G00")
