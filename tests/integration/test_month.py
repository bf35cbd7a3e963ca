"""A month in minutes, shortened (issue 15, 6): ingest on a scaled service clock
(``FIREGRID_CLOCK_SCALE``, ``FIREGRID_CLOCK_ANCHOR``; firegrid/_clock.py) and ``simulate run``
started with the same settings, so it follows that clock: its readings' ``ts``, the simulated
workers' delays, the escalation deadlines, the events' transitions and ``/sla``, ``/index`` all
count in simulated time.

Real mosquitto with the world's generated credentials, a real `firegrid ingest`, the simulator's
workers each signed in as itself. Two and a half simulated days at a day every 10 wall seconds:
events raised across the days; the workers acknowledge after ~10 simulated minutes, so every
critical event escalates 2 simulated minutes after it was raised (14 wall ms) and every major one
is acknowledged on time (30 min); ``/sla`` measures the acknowledgements in simulated seconds
(on the wall clock they took 70 ms); ``/index`` differs between two simulated times.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from access import make_credentials
from firegrid._services import Influxd, Mosquitto
from simulators import read_passwords, write_world
from tests.helpers import HTTP
from tests.integration.conftest import IngestProcess, service_env

PREFIX = "month/"
SCALE = 8640
"""A simulated day every 10 wall seconds."""
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MONTH_RULES = Path(__file__).parents[2] / "simulators" / "scenarios" / "month.rules.toml"
SCENARIO = """
name: month_test
description: two and a half simulated days of trouble, handled by slowish workers
time_scale: 8640
seed: 5
respond:
  ack: {median: 10m, sigma: 0.2}
  resolve: {median: 2h, sigma: 0.3}
  close: {median: 3h, sigma: 0.3}
  ignore: 0.2
  silent: 0.1
  slow: {share: 0.2, factor: 2}
  seed: 5
  linger: 15
steps:
  - action: tamper
    at: 2h
    target: {count: 2}
    duration: 20m
  - action: alarm
    at: 20h
    target: {count: 2}
    duration: 5m
  - action: overload
    at: 30h
    target: {count: 1}
  - action: tamper
    at: 44h
    target: {count: 2}
    duration: 20m
  - action: alarm
    at: 52h
    target: {count: 1}
    duration: 5m
"""


@pytest.fixture
def month(
    influx: Influxd, influx_db: str, data_dir: Path, tmp_path: Path
) -> Iterator[tuple[Path, Path, dict[str, str], IngestProcess]]:
    world = tmp_path / "world"
    write_world(world, scale=0.02, seed=7)  # 22 grids, 17 workers (1 supervisor), 189 devices
    credentials = tmp_path / "credentials"
    make_credentials(world, credentials, topic_prefix=PREFIX)
    broker = Mosquitto(tmp_path / "broker", credentials=credentials, passwords=read_passwords(credentials))
    broker.start()
    wall = time.time_ns() // 1_000_000
    start = wall - wall % DAY_MS - 14 * DAY_MS  # simulated time starts two weeks ago, at midnight UTC
    env = {
        **service_env(broker, influx, influx_db, PREFIX, world, data_dir),
        "FIREGRID_CREDENTIALS": str(credentials),
        "FIREGRID_RULES": str(MONTH_RULES),
        "FIREGRID_CLOCK_SCALE": str(SCALE),
        # the service clock stands at `start` until the anchor, 6 s ahead: time for ingest to start
        "FIREGRID_CLOCK_ANCHOR": f"{wall + 6000}={start}",
        "FIREGRID_INDEX_INTERVAL_S": "21600",
    }
    ingest = IngestProcess(env, tmp_path / "ingest.log")
    try:
        ingest.start()
        yield world, credentials, {**env, "FIREGRID_MQTT_URL": broker.url_as("firegrid-sim")}, ingest
        assert ingest.stop() == 0
    finally:
        if ingest.proc is not None and ingest.proc.poll() is None:
            ingest.proc.kill()
            ingest.proc.wait(30)
        broker.stop()


def test_a_shortened_month_runs_on_the_service_clock(
    month: tuple[Path, Path, dict[str, str], IngestProcess], tmp_path: Path
) -> None:
    world, credentials, env, ingest = month
    start = int(env["FIREGRID_CLOCK_ANCHOR"].split("=")[1])
    scenario = tmp_path / "month.yaml"
    scenario.write_text(SCENARIO)
    truth = tmp_path / "truth.jsonl"
    began = time.monotonic()
    # the simulator reads ingest's settings: it takes the clock's scale and starts at its anchor
    run = subprocess.run(
        [
            sys.executable, "-m", "firegrid", "simulate", "run", "--registry", str(world),
            "--scenario", str(scenario), "--rate", "400", "--qos", "1", "--credentials", str(credentials),
            "--truth", str(truth), "--no-progress",
        ],
        env={**os.environ, **env},
        capture_output=True,
        check=False,
        timeout=120,
    )  # fmt: skip
    output = run.stdout.decode()[-3000:] + run.stderr.decode()[-3000:]
    assert run.returncode == 0, (output, ingest.log()[-3000:])
    assert time.monotonic() - began < 60
    lines = [orjson.loads(line) for line in truth.read_bytes().splitlines()]
    acted = [line for line in lines if line.get("truth") == "action"]
    assert acted, lines

    supervisor = "D01-SV01"
    auth = (supervisor, read_passwords(credentials)[supervisor])

    def get(path: str, **params: int | str) -> Any:
        response = HTTP.get(
            f"{ingest.http}{path}", params={k: str(v) for k, v in params.items()}, auth=auth, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()

    # once the run is over the world falls silent while the service clock runs on: its devices go
    # offline and its checkpoints are missed, simulated days after the scenario's last step
    events = [e for e in get("/events", limit=1000) if e["type"] not in ("DEVICE_OFFLINE", "PATROL_MISSED")]
    raised = sorted(e["raised_at"] for e in events)
    # raised on the service clock, over the simulated days, not within the run's wall seconds
    assert raised[0] >= start + HOUR_MS and raised[-1] <= start + 3 * DAY_MS, (start, raised)
    assert raised[-1] - raised[0] > 1.5 * DAY_MS, raised
    critical = [get(f"/events/{e['event_id']}") for e in events if e["severity"] == "critical"]
    assert critical
    for event in critical:  # nobody acknowledges within 2 simulated minutes (14 wall ms)
        history = {h["action"]: h["at_ms"] for h in reversed(event["history"])}
        assert event["escalated"], event
        late = history["escalate"] - event["raised_at"]
        assert 120_000 <= late < HOUR_MS, event  # on the service clock: 2 min after raised_at
        assert "ack" not in history or history["ack"] >= history["escalate"], event

    week = get("/sla", since=start, until=start + 7 * DAY_MS, at=start + 7 * DAY_MS)["total"]
    assert week["raised"] >= len(events) > 0, week
    assert week["acked_on_time"] > 0, week  # the major events, acknowledged after ~10 min
    assert week["acked_on_time"] < week["raised"], week  # not the critical ones
    # acknowledgements in simulated seconds: ~10 min (on the wall clock, ~70 ms)
    assert 300 <= week["ack_p50_s"] <= 3600, week
    assert week["resolve_p50_s"] is not None and week["resolve_p50_s"] >= 1800, week

    def index(at: int) -> dict[str, float]:
        return {grid: answer["index"] for grid, answer in get("/index", at=at)["grids"].items()}

    first, later = index(start + 21 * HOUR_MS), index(start + 2 * DAY_MS + 4 * HOUR_MS)
    assert first.keys() == later.keys() and first != later, (first, later)
