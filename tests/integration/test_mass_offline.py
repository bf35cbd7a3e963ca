"""Mass silence over the real broker (issue 17): 2,500 electrical monitors go offline in one tick
of the offline timer (never heard from, they all count from the service start), more than one
``Hazards.on_idle`` hands the event store (``firegrid._hazards.TIMER_BUDGET``). Every event is
published once, raised at the time the timer fired, and a smoke alarm sent while they go out
is alerted within CONTRACT §8's second."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from access import SIMULATOR_ACCOUNT
from firegrid._hazards import TIMER_BUDGET
from firegrid._services import Mosquitto
from tests.helpers import eventually, write_registry
from tests.integration.conftest import IngestProcess
from tests.integration.test_alerts_e2e import Listener

MONITORS = 2_500
assert MONITORS > 2 * TIMER_BUDGET  # the silence takes several calls


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    return write_registry(tmp_path / "registry", devices_per_kind=MONITORS)


@pytest.fixture
def listen(broker: Mosquitto, topic_prefix: str) -> Iterator[Listener]:
    listener = Listener(broker.url_as(SIMULATOR_ACCOUNT), topic_prefix)
    yield listener
    listener.close()


def offline_alerts(listen: Listener) -> list[tuple[str, int, int]]:
    """(device_id, raised_at, rev) of every DEVICE_OFFLINE alert received (on the four grids)."""
    return [
        (body["device_id"], body["raised_at"], body["rev"])
        for grid in range(4)
        for body in listen.on(f"alerts/D01/D01-G{grid:02d}", type="DEVICE_OFFLINE")
    ]


def test_a_mass_silence_is_raised_whole_and_an_alarm_does_not_wait_for_it(
    ingest_env: dict[str, str], tmp_path: Path, listen: Listener
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[DEVICE_OFFLINE]\ngrace_s = 1\nheartbeat_s = { electrical = 1 }\n")  # 3 s
    ingest = IngestProcess({**ingest_env, "FIREGRID_RULES": str(rules)}, tmp_path / "ingest.log")
    ingest.start()
    try:
        eventually(lambda: offline_alerts(listen), timeout=30, what="the silence's first DEVICE_OFFLINE")
        sent = listen.publish("fire/D01/smoke/S0001", {"alarm": True})
        listen.wait("alerts/D01/D01-G00", type="FIRE_ALARM", device_id="S0001")
        arrived = next(t for _, body, t in listen.received if body.get("type") == "FIRE_ALARM")
        assert arrived - sent < 1.0

        eventually(lambda: len(offline_alerts(listen)) >= MONITORS, timeout=60, what="every DEVICE_OFFLINE")
        alerts = offline_alerts(listen)
        devices = Counter(device for device, _, _ in alerts)
        assert set(devices) == {f"E{i:04d}" for i in range(MONITORS)}
        assert set(devices.values()) == {1} and {rev for _, _, rev in alerts} == {1}
        assert len({raised_at for _, raised_at, _ in alerts}) == 1  # one tick, whichever call sent it
        stored = ingest.events(type="DEVICE_OFFLINE", limit=str(2 * MONITORS))
        assert len(stored) == MONITORS
    finally:
        assert ingest.stop() == 0
