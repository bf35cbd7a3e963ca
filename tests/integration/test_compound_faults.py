"""The compound fault run (issue 16, docs/RELIABILITY.md): one QoS 1 stream with a seq per device
and alarms among it, while InfluxDB is down, the broker restarts twice and ingest is killed with
-9 three times. Every seq is written exactly once (or is a named reject), every change of every
event reaches a persistent subscriber, and no detector's alarm is raised as two events.

The short plan runs in ``make test``; the full one (InfluxDB down 2 minutes) under ``make soak``.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from access import CONSOLE_ACCOUNT, SIMULATOR_ACCOUNT
from firegrid._services import Influxd, Mosquitto
from tests.faults import (
    FaultLog,
    FaultPlan,
    ReliablePublisher,
    Stream,
    account_alerts,
    account_readings,
    all_written,
    fault_actions,
    proc_status,
    publish_stream,
    run_faults,
    write_fault_registry,
)
from tests.helpers import eventually
from tests.integration.conftest import IngestProcess, service_env
from tests.mqtt import SessionSubscriber

SHORT = FaultPlan("short", stream_s=25, rate=400, influx_down_s=5)
FULL = FaultPlan("full", stream_s=420, rate=1000, influx_down_s=120, devices=50)


@pytest.mark.parametrize(
    "plan",
    [
        pytest.param(SHORT, id="short"),
        pytest.param(FULL, id="full", marks=[pytest.mark.soak, pytest.mark.timeout(1800)]),
    ],
)
def test_compound_faults_lose_nothing(
    plan: FaultPlan,
    broker: Mosquitto,
    influx: Influxd,
    influx_db: str,
    topic_prefix: str,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    registry = write_fault_registry(tmp_path / "registry", plan.devices)
    env = service_env(broker, influx, influx_db, topic_prefix, registry, data_dir)
    ingest = IngestProcess(env, tmp_path / "ingest.log")
    ingest.start()
    name = topic_prefix.rstrip("/")
    subscriber = SessionSubscriber(
        broker.url_as(CONSOLE_ACCOUNT), f"alerts-{name}", f"{topic_prefix}alerts/#"
    )
    subscriber.connect(subscribe=True)  # once: a persistent session, never subscribed again
    publisher = ReliablePublisher(broker.url_as(SIMULATOR_ACCOUNT), f"stream-{name}")
    stream = Stream(topic_prefix, plan.devices, plan.seqs, base_ms=int(time.time() * 1000) - 3_600_000)
    assert ingest.proc is not None
    rss_start = proc_status(ingest.proc.pid, "VmRSS")
    faults = FaultLog()
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(1) as pool:
            done = pool.submit(run_faults, plan, fault_actions(ingest, broker, influx), started, faults)
            publish_stream(stream, plan, publisher, started)
            done.result()
        streamed = time.monotonic() - started

        eventually(
            lambda: all_written(influx, influx_db, stream),
            timeout=60 + plan.stream_s / 2,
            what="every seq in InfluxDB",
        )
        readings = account_readings(influx, influx_db, stream)
        assert not readings.missing, f"lost: {readings.missing}"
        assert not readings.duplicated, f"written twice: {readings.duplicated}"

        alerts = eventually(
            lambda: (a := account_alerts(ingest.http, subscriber)) and not a.unpublished and a,
            timeout=60,
            what="every change of every event at the persistent subscriber",
        )
        assert {d: len(ids) for d, ids in alerts.fire_alarms.items()} == dict.fromkeys(stream.detectors, 1)
        assert [faults.count(f) for f in ("kill -9", "broker restart", "influxdb stop")] == [3, 2, 1]
        stopped, started_again = (
            next(t for t, n in faults.done if n == f) for f in ("influxdb stop", "influxdb start")
        )
        assert started_again - stopped >= plan.influx_down_s - 0.1, faults.done  # down its full time
        assert "Traceback" not in ingest.log()
        assert ingest.proc is not None
        rss_end = proc_status(ingest.proc.pid, "VmRSS")
        print(
            f"\ncompound fault run [{plan.name}]: {readings.sent:,} messages ({2 * plan.devices} devices × "
            f"{stream.seqs} seqs, {plan.rate:g} msg/s), {publisher.published:,} published "
            f"({publisher.republished_chunks} chunks again); faults at s: {faults.done}; InfluxDB down "
            f"{plan.influx_down_s:g} s; written {readings.written:,}, rejected {readings.rejected}, lost 0, "
            f"duplicated 0; {alerts.events} events, {len(alerts.fire_alarms)} FIRE_ALARM (one each), "
            f"{alerts.received} alerts received ({alerts.repeats} repeats), none missing; stream "
            f"{streamed:.0f} s, total {time.monotonic() - started:.0f} s; ingest RSS "
            f"{rss_start / 1024:.0f} MiB at start, {rss_end / 1024:.0f} MiB at the end"
        )
    finally:
        publisher.close()
        subscriber.disconnect()
        if ingest.proc is not None and ingest.proc.poll() is None:
            ingest.stop()
