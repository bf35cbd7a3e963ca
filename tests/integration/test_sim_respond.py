"""Simulated workers (``simulate run --respond``) against a real mosquitto running the files of
`firegrid credentials` and a real `firegrid ingest`: each worker signs in as itself, acts on the
alerts of its grids, and the event histories in ingest's `/events/{id}` are exactly the ground
truth's action records; the events left alone end escalated.

Escalation runs on ingest's clock (CONTRACT §8: critical 2 min, major 30 min); to keep this
test at seconds, its ingest runs with every deadline at ``DEADLINE_S`` (``alerts``' defaults
replaced before the service starts), and the scenario's delays, in scenario seconds at time
scale ``TIME_SCALE``, come well inside it.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from access import SECRETS, make_credentials
from firegrid import cli_simulate
from firegrid._services import Influxd, Mosquitto
from simulators import write_world
from tests.helpers import HTTP, eventually
from tests.integration.conftest import IngestProcess, service_env

PREFIX = "sr/"
TIME_SCALE = 20.0
DEADLINE_S = 8.0
SCENARIO = """
name: respond_test
description: a few events; the workers take most of them, some are left to escalate
time_scale: 20
duration: 2
seed: 3
steps:
  - action: tamper
    at: 0s
    target: {count: 3, kind: smoke}
    duration: 30s
  - action: fault
    at: 0s
    target: {count: 3, kind: water}
    duration: 30s
respond:
  ack: {median: 20s, sigma: 0.3}
  resolve: {median: 20s, sigma: 0.3}
  close: {median: 20s, sigma: 0.3}
  ignore: 0.3
  silent: 0
  slow: {share: 0}
  seed: 3
  linger: 30
"""
INGEST_WITH_SHORT_DEADLINES = f"""
import sys
import alerts._store
alerts._store.DEFAULT_DEADLINES_MS = dict.fromkeys(("critical", "major", "minor"), {int(DEADLINE_S * 1000)})
from firegrid.cli import main
sys.exit(main(["ingest"]))
"""


class ShortDeadlineIngest(IngestProcess):
    """`firegrid ingest` whose escalation deadlines are all ``DEADLINE_S``."""

    def start(self, wait: bool = True) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", INGEST_WITH_SHORT_DEADLINES],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        if wait:
            eventually(self.healthy, timeout=30, what=f"firegrid ingest healthy (log {self.log_path})")


def read_secrets(credentials: Path) -> dict[str, str]:
    with (credentials / SECRETS).open(newline="") as handle:
        return {row["principal"]: row["password"] for row in csv.DictReader(handle)}


@pytest.fixture
def world(tmp_path: Path) -> Path:
    out = tmp_path / "world"
    write_world(out, scale=0.02, seed=7)  # 22 grids, 17 workers (1 supervisor), 189 devices
    return out


@pytest.fixture
def deployment(
    world: Path, influx: Influxd, influx_db: str, data_dir: Path, tmp_path: Path
) -> Iterator[tuple[Mosquitto, ShortDeadlineIngest, Path]]:
    credentials = tmp_path / "credentials"
    make_credentials(world, credentials, topic_prefix=PREFIX)
    broker = Mosquitto(tmp_path / "broker", credentials=credentials, passwords=read_secrets(credentials))
    broker.start()
    env = service_env(broker, influx, influx_db, PREFIX, world, data_dir)
    ingest = ShortDeadlineIngest({**env, "FIREGRID_CREDENTIALS": str(credentials)}, tmp_path / "ingest.log")
    try:
        ingest.start()
        yield broker, ingest, credentials
        assert ingest.stop() == 0
    finally:
        if ingest.proc is not None and ingest.proc.poll() is None:
            ingest.proc.kill()
            ingest.proc.wait(30)
        broker.stop()


def truth_lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_simulated_workers_handle_their_events_as_the_ground_truth_says(
    deployment: tuple[Mosquitto, ShortDeadlineIngest, Path], world: Path, tmp_path: Path
) -> None:
    broker, ingest, credentials = deployment
    scenario = tmp_path / "respond.yaml"
    scenario.write_text(SCENARIO)
    truth = tmp_path / "truth.jsonl"
    code = cli_simulate.main(
        [
            "simulate", "run", "--registry", str(world), "--scenario", str(scenario),
            "--url", broker.url_as("firegrid-sim"), "--prefix", PREFIX, "--rate", "300", "--qos", "1",
            "--credentials", str(credentials), "--truth", str(truth), "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0, ingest.log()[-3000:]
    lines = truth_lines(truth)
    expected = [line for line in lines if "type" in line and "truth" not in line]
    actions = [line for line in lines if line.get("truth") == "action"]
    ignored = [line for line in lines if line.get("truth") == "ignored"]
    assert len(expected) == 6  # the scenario's TAMPER and DEVICE_FAULT events
    assert ignored and len(ignored) < len(expected), ignored
    assert {line["reason"] for line in ignored} == {"ignored"}

    supervisor = "D01-SV01"
    auth = (supervisor, read_secrets(credentials)[supervisor])

    def event(event_id: str) -> dict[str, Any]:
        response = HTTP.get(f"{ingest.http}/events/{event_id}", auth=auth, timeout=10)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    listed = HTTP.get(f"{ingest.http}/events", params={"limit": "1000"}, auth=auth, timeout=10).json()
    handled = {line["event_id"] for line in actions}
    left = {line["event_id"] for line in ignored}
    assert handled | left == {e["event_id"] for e in listed}
    assert not handled & left
    assert all(line["ok"] is True and line["error"] is None for line in actions), actions

    for event_id in sorted(handled):
        history = event(event_id)["history"]
        done = [(h["worker_id"], h["action"]) for h in history if h["action"] in ("ack", "resolve", "close")]
        mine = sorted((line for line in actions if line["event_id"] == event_id), key=lambda a: a["sent_at"])
        assert done == [(line["worker_id"], line["action"]) for line in mine], (event_id, history, mine)
        assert [line["action"] for line in mine] == ["ack", "resolve", "close"]
        assert mine[-1]["worker_id"] == supervisor
        for line, step in zip(
            mine, [h for h in history if h["action"] in ("ack", "resolve", "close")], strict=True
        ):
            assert line["sent_at"] <= step["at_ms"] <= line["result_at"], (line, step)
            assert line["took_effect_at"] == step["at_ms"], (line, step)  # the result's at
        final = event(event_id)
        assert final["state"] == "closed" and not final["escalated"]
        assert mine[0]["sent_at"] - mine[0]["seen_at"] < DEADLINE_S * 1000

    for event_id in sorted(left):
        final = eventually(
            lambda event_id=event_id: (found := event(event_id))["escalated"] and found,  # type: ignore[misc]
            timeout=DEADLINE_S + 10,
            what=f"event {event_id} left alone escalates",
        )
        assert final["state"] == "open"
        steps = [h["action"] for h in final["history"]]
        assert "escalate" in steps and not {"ack", "resolve", "close"} & set(steps), steps
