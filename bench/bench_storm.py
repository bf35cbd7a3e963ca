"""Alarm storm (issue 17): a district (the simulator's world at scale 1) whose normal traffic mix
carries a storm: 5 % of its smoke detectors alarm within one minute (two per building, so each
building is a FIRE_CONFIRMED) and the electrical monitors of those buildings overheat.

The simulator plays it once (QoS 1, time scale 1, ``--rate`` msg/s of background) while

- a live firegrid consumes it: latency of every FIRE_ALARM and FIRE_CONFIRMED alert from the
  triggering message's arrival at a tap subscriber (target: all within 1 s, p99 ≤ 50 ms); the
  broker's own round trip under the same load (``Probe``) is the baseline; CPU per process;
- three persistent sessions queue it, then each is drained alone: a bare paho consumer that
  parses JSON, a minimal durable consumer (parse, line protocol, InfluxDB write, ack after the
  write) and firegrid (full pipeline, durable acks). Ratios against the first two.

    .venv/bin/python bench/bench_storm.py [--rate 1000] [--share 0.05] [--minute 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from access import INGEST_ACCOUNT, SIMULATOR_ACCOUNT
from bench._field import (
    IngestProcess,
    bare_drain,
    durable_drain,
    firegrid_drain,
    ingest_env,
    load_average,
    open_session,
    subscriber,
)
from bench.bench_alert_latency import Probe, cpu_seconds, percentile
from devices import Registry
from firegrid._services import Influxd, Mosquitto, wait_for
from simulators import load_scenario, write_world

LEAD_S = 10
"""Seconds of normal traffic before the storm's first alarm."""


def storm_scenario(
    registry: Registry, out: Path, share: float, minute: float
) -> tuple[set[str], dict[str, set[str]]]:
    """Writes the storm's scenario to ``out``; returns its detectors and their sites' detectors."""
    smoke_by_site: dict[str, list[str]] = defaultdict(list)
    electrical_by_site: dict[str, list[str]] = defaultdict(list)
    for device in registry.devices():
        if device.kind == "smoke":
            smoke_by_site[device.site_id].append(device.device_id)
        elif device.kind == "electrical":
            electrical_by_site[device.site_id].append(device.device_id)
    wanted = round(share * sum(len(v) for v in smoke_by_site.values()))
    sites: dict[str, set[str]] = {}
    detectors: list[str] = []
    for site in sorted(s for s, d in smoke_by_site.items() if len(d) >= 2):  # the world's order is seeded
        if len(detectors) >= wanted:
            break
        sites[site] = set(smoke_by_site[site][:2])
        detectors.extend(sorted(sites[site]))
    groups = 12  # a group of buildings every minute / 12 (5 s in the default minute)
    steps: list[dict[str, object]] = []
    site_list = list(sites)
    for g in range(groups):
        chunk = site_list[g::groups]
        if not chunk:
            continue
        at = LEAD_S + g * minute / groups
        steps.append(
            {
                "action": "alarm",
                "at": at,
                "target": {"devices": [d for s in chunk for d in sorted(sites[s])]},
                "duration": 120,
            }
        )
        monitors = [e for s in chunk for e in electrical_by_site.get(s, [])]
        if monitors:
            steps.append(
                {  # heating from the start, so it passes 70 °C about two minutes later
                    "action": "overload",
                    "at": 1 + 2 * g,
                    "target": {"devices": monitors},
                    "current_factor": 2.0,
                    "rise_c_per_min": 20,
                    "peak_c": 95,
                    "hold": 30,
                }
            )
    out.write_text(
        yaml.safe_dump(
            {
                "name": "storm",
                "description": f"{len(detectors)} detectors of {len(sites)} buildings alarm within "
                f"{minute:g} s; their buildings' electrical monitors overheat",
                "time_scale": 1,
                "cadence": "5s",
                "seed": 1,
                "steps": steps,
            },
            sort_keys=False,
        )
    )
    load_scenario(out)  # refuses an invalid file now, not in the simulator
    return set(detectors), sites


class Tap:
    """Subscribes to the district's smoke telemetry and to every alert: when each storm detector
    first reported an alarm, and when each event's first alert arrived."""

    def __init__(self, telemetry_url: str, alerts_url: str, detectors: set[str]) -> None:
        self.detectors = detectors
        self.alarm_at: dict[str, float] = {}
        self.alert_at: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()
        # two accounts: ingest's may read the devices' topics, the simulator's the alerts (as Probe)
        self.clients = [
            subscriber(url, topic, self._on_message, "tap")
            for url, topic in ((telemetry_url, "fire/+/smoke/#"), (alerts_url, "alerts/#"))
        ]

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        body = orjson.loads(message.payload)
        with self.lock:
            if message.topic.startswith("fire/"):
                device = message.topic.rsplit("/", 1)[1]
                if device in self.detectors and body.get("alarm") and device not in self.alarm_at:
                    self.alarm_at[device] = now
            elif isinstance(body, dict) and "type" in body:
                by_site = body["type"] == "FIRE_CONFIRMED"  # one per building
                key = (body.get("site_id") if by_site else body.get("device_id")) or ""
                self.alert_at.setdefault((body["type"], key), now)

    def close(self) -> None:
        for client in self.clients:
            client.disconnect()
            client.loop_stop()


def latencies(tap: Tap, sites: dict[str, set[str]]) -> dict[str, object]:
    """ms from the triggering message's arrival at the tap to the alert's, per alert type."""
    alarm: list[float] = []
    confirmed: list[float] = []
    with tap.lock:
        for device, at in tap.alarm_at.items():
            alert = tap.alert_at.get(("FIRE_ALARM", device))
            if alert is not None:
                alarm.append((alert - at) * 1000)
        for site, members in sites.items():
            alert = tap.alert_at.get(("FIRE_CONFIRMED", site))
            firsts = [tap.alarm_at[d] for d in members if d in tap.alarm_at]
            if alert is not None and len(firsts) == len(members):
                confirmed.append((alert - max(firsts)) * 1000)
        overheats = sum(1 for t, _ in tap.alert_at if t == "CABLE_OVERHEAT")
        rises = sum(1 for t, _ in tap.alert_at if t == "TEMP_RISE_FAST")
    result: dict[str, object] = {
        "detectors_alarmed": len(tap.alarm_at),
        "cable_overheat_alerts": overheats,
        "temp_rise_fast_alerts": rises,
    }
    for name, values in (("fire_alarm", alarm), ("fire_confirmed", confirmed)):
        result[f"{name}_alerts"] = len(values)
        if values:
            result[f"{name}_p50_ms"] = round(statistics.median(values), 1)
            result[f"{name}_p99_ms"] = round(percentile(values, 0.99), 1)
            result[f"{name}_max_ms"] = round(max(values), 1)
            result[f"{name}_over_1s"] = sum(1 for v in values if v > 1000)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000, help="background msg/s (the storm rides on it)")
    parser.add_argument("--share", type=float, default=0.05, help="share of detectors alarming")
    parser.add_argument("--minute", type=float, default=60, help="s over which the alarms start")
    parser.add_argument("--scale", type=float, default=1.0, help="world scale (1: one reference district)")
    parser.add_argument("--samples", type=int, default=200, help="broker round-trip samples (baseline)")
    args = parser.parse_args()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="firegrid-storm-") as tmp:
        work = Path(tmp)
        broker, influx = Mosquitto(work / "mosquitto"), Influxd(work / "influxd")
        broker.start()
        influx.start()
        registry_dir = work / "registry"
        write_world(registry_dir, scale=args.scale, seed=1)
        registry = Registry.load(registry_dir)
        scenario = work / "storm.yaml"
        detectors, sites = storm_scenario(registry, scenario, args.share, args.minute)
        log = (work / "ingest.log").open("ab")
        live = IngestProcess(ingest_env(broker, influx, registry_dir, work / "live", "storm-live"), log)
        queued = IngestProcess(ingest_env(broker, influx, registry_dir, work / "queued", "storm-queued"), log)
        tap = probe = None
        try:
            queued.start()  # its persistent session, subscribed as firegrid subscribes, then gone
            wait_for(queued.healthy, 60, "queued firegrid healthy")
            queued.stop()
            open_session(broker, "storm-bare")
            open_session(broker, "storm-durable")
            live.start()
            wait_for(live.healthy, 60, "live firegrid healthy")
            tap = Tap(broker.url_as(INGEST_ACCOUNT), broker.url_as(SIMULATOR_ACCOUNT), detectors)
            probe = Probe(
                broker.url_as(SIMULATOR_ACCOUNT), [("-", "-", "-")], echo_url=broker.url_as(INGEST_ACCOUNT)
            )
            command = [sys.executable, "-m", "firegrid", "simulate", "run", "--registry", str(registry_dir)]
            command += ["--url", broker.url_as(SIMULATOR_ACCOUNT), "--rate", str(args.rate), "--qos", "1"]
            command += ["--scenario", str(scenario), "--time-scale", "1", "--no-progress"]
            simulator = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            pids = {"firegrid": live.pid, "simulator": simulator.pid, "mosquitto": broker.pid or 0}
            pids["influxd"] = influx.pid or 0
            cpu_before, wall_before = {n: cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
            time.sleep(3)
            broker_rtt = probe.measure(args.samples, alerts=False)  # before the storm (LEAD_S)
            wall = cpu = None
            while simulator.poll() is None:
                wall = time.monotonic() - wall_before
                cpu = {n: round((cpu_seconds(p) - cpu_before[n]) / wall, 2) for n, p in pids.items()}
                time.sleep(1)
            _, stderr = simulator.communicate()
            if simulator.returncode not in (0, 1):
                raise RuntimeError(f"simulator failed: {stderr.decode()[-2000:]}")
            time.sleep(3)  # the last alerts
            live_result = latencies(tap, sites)
            live_received = live.metric("firegrid_messages_received_total")
            live.stop()
            total, bare_rate = bare_drain(broker, "storm-bare")
            durable_total, durable_rate = durable_drain(broker, influx, "storm-durable")
            firegrid_rate, startup_s = firegrid_drain(queued, total)
        finally:
            for closing in (tap, probe):
                if closing is not None:
                    closing.close()
            live.stop()
            queued.stop()
            broker.stop()
            influx.stop()
            log.close()
    result = {
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "district_scale": args.scale,
        "background_msg_s": args.rate,
        "storm_detectors": len(detectors),
        "storm_buildings": len(sites),
        "live": {
            **live_result,
            "received": live_received,
            "wall_s": round(wall or 0, 1),
            "cpu_cores_used": cpu,
            "broker_p50_ms": round(statistics.median(broker_rtt), 2),
            "broker_p99_ms": round(percentile(broker_rtt, 0.99), 2),
        },
        "queued": {
            "messages": total,
            "durable_messages": durable_total,
            "bare_paho_msg_s": round(bare_rate),
            "durable_baseline_msg_s": round(durable_rate),
            "firegrid_msg_s": round(firegrid_rate),
            "firegrid_to_bare": round(firegrid_rate / bare_rate, 3),
            "firegrid_to_durable": round(firegrid_rate / durable_rate, 3),
            "durable_to_bare": round(durable_rate / bare_rate, 3),
            "firegrid_startup_s": round(startup_s, 2),
        },
    }
    print(json.dumps(result, indent=2))
    q = result["queued"]
    assert isinstance(q, dict)
    print(
        f"storm, queued session drained: firegrid {q['firegrid_msg_s']:,} msg/s = "
        f"{q['firegrid_to_bare']} × bare paho ({q['bare_paho_msg_s']:,}), "
        f"{q['firegrid_to_durable']} × minimal durable ({q['durable_baseline_msg_s']:,}); "
        "targets ≥ 0.75 × and ≥ 1.0 ×"
    )
    print(
        f"storm, live at {args.rate:,.0f} msg/s: FIRE_ALARM p99 {live_result.get('fire_alarm_p99_ms')} ms "
        f"(max {live_result.get('fire_alarm_max_ms')}), FIRE_CONFIRMED p99 "
        f"{live_result.get('fire_confirmed_p99_ms')} ms (max {live_result.get('fire_confirmed_max_ms')}); "
        f"broker p99 {result['live']['broker_p99_ms']} ms; targets: all ≤ 1 s, p99 ≤ 50 ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
