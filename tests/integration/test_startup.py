"""Bad settings and a broken registry stop `firegrid ingest` with one readable line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firegrid", "ingest"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"FIREGRID_MQTT_URL": "ftp://broker"}, "invalid setting FIREGRID_MQTT_URL"),
        ({"FIREGRID_INFLUX_URL": "localhost:8086"}, "invalid setting FIREGRID_INFLUX_URL"),
        ({"FIREGRID_HTTP": "nowhere"}, "invalid setting FIREGRID_HTTP"),
        ({"FIREGRID_BATCH_MAX": "-5"}, "invalid setting FIREGRID_BATCH_MAX"),
        (
            {"FIREGRID_REGISTRY": "/does/not/exist"},
            "registry refused: /does/not/exist: registry directory not found",
        ),
    ],
)
def test_bad_settings_stop_startup_with_one_line(
    ingest_env: dict[str, str], override: dict[str, str], expected: str
) -> None:
    result = _run({**ingest_env, **override})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_broken_registry_stops_startup_naming_file_and_line(
    ingest_env: dict[str, str], registry_dir: Path
) -> None:
    with (registry_dir / "devices.csv").open("a") as handle:
        handle.write("S0000,smoke,D01,S0,34.3,108.7,\n")
    result = _run(ingest_env)
    assert result.returncode == 2
    assert result.stderr.strip() == "firegrid: registry refused: devices.csv:14: duplicate device_id S0000"


def test_config_file_is_read_and_environment_wins(ingest_env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "firegrid.toml"
    config.write_text('http = "not-a-port"\nmqtt_url = "mqtt://127.0.0.1:1"\n')
    env = {k: v for k, v in ingest_env.items() if k != "FIREGRID_HTTP"}
    result = subprocess.run(
        [sys.executable, "-m", "firegrid", "ingest", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid setting FIREGRID_HTTP (in" in result.stderr
