"""A full disk under ingest's data directory (spool, event store, rule snapshots) while InfluxDB is
down and a detector alarms: clear log lines, nothing acknowledged is lost (the broker keeps what
could not be made durable), everything reaches InfluxDB exactly once and the alarm's event is
raised once, when space and InfluxDB return.

The small disk is a tmpfs the test mounts (the suite runs as root, as `make setup` requires).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from access import SIMULATOR_ACCOUNT
from firegrid._services import Influxd, Mosquitto
from tests.faults import metric
from tests.helpers import eventually
from tests.integration.conftest import IngestProcess
from tests.integration.test_faults import _all_arrived, _assert_exactly_once, _stream
from tests.mqtt import TestClient

DISK_MB = 16


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"cannot mount a small tmpfs (run the suite as root): {done.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it (delete it to give the space back)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 10, 1):  # big steps, then the last bytes
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def test_full_disk_holds_acks_and_recovers_without_loss(
    ingest_env: dict[str, str],
    small_disk: Path,
    broker: Mosquitto,
    influx: Influxd,
    influx_db: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    ingest = IngestProcess({**ingest_env, "FIREGRID_DATA_DIR": str(small_disk / "data")}, tmp_path / "i.log")
    ingest.start()
    client = TestClient(broker.url_as(SIMULATOR_ACCOUNT))
    try:
        base = int(time.time() * 1000) - 600_000
        client.publish_many(_stream(topic_prefix, 0, 200, base))
        eventually(lambda: _all_arrived(influx, influx_db, 200), timeout=30, what="first part written")

        influx.stop()
        filler = fill(small_disk)
        assert shutil.disk_usage(small_disk).free < 65536
        client.publish_many(_stream(topic_prefix, 200, 3000, base))
        client.publish(f"{topic_prefix}fire/D01/smoke/S0000", {"ts": int(time.time() * 1000), "alarm": True})
        said = ("holding acknowledgements", "holding the pipeline")
        eventually(
            lambda: all(what in ingest.log() for what in said),
            timeout=60,
            what="ingest says it holds acknowledgements and the pipeline",
        )
        held = [line for line in ingest.log().splitlines() if "holding acknowledgements" in line]
        assert "no space left" in held[0] and "nothing is lost" in held[0], held
        pipeline = [line for line in ingest.log().splitlines() if "holding the pipeline" in line]
        assert len(pipeline) == 1 and "event store" in pipeline[0], pipeline
        assert "Traceback" not in ingest.log()
        assert ingest.proc is not None and ingest.proc.poll() is None  # still running
        assert metric(ingest, "firegrid_spool_held") == 1

        os.unlink(filler)  # space returns, then InfluxDB
        influx.start()
        eventually(lambda: _all_arrived(influx, influx_db, 3000), timeout=120, what="everything written")
        _assert_exactly_once(influx, influx_db, 3000)
        eventually(lambda: metric(ingest, "firegrid_spool_held") == 0, what="acks flow again")
        # the committer (spool) and the pipeline (event store) each retry on their own second
        resumed = ("acknowledging again", "the pipeline goes on")
        eventually(lambda: all(what in ingest.log() for what in resumed), what="ingest says both resumed")
        alarms = eventually(
            lambda: [e for e in ingest.events() if e["type"] == "FIRE_ALARM"], what="the alarm's event"
        )
        assert [e["device_id"] for e in alarms] == ["S0000"]
        assert ingest.stop() == 0
    finally:
        client.close()
        if not influx.running:
            influx.start()
        if ingest.proc is not None and ingest.proc.poll() is None:
            ingest.stop()
