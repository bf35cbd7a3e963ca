"""In-process hot path (issue 17): µs per message of the whole per-batch path as the service runs
it, ``Pipeline.process`` (decode + validate + dedup + rules engine + event store + line protocol)
with a ``Hazards`` sink over a real ``RuleEngine`` and ``EventStore`` in a temporary data dir, on
the simulator's reference district (``write_world`` at scale 1, its device physics for payloads).

Workloads (the pipeline is built fresh for each timed run; its first batches warm it, untimed):

- ``district``: the district's traffic mix at time scale 1 (every device once per heartbeat, at
  a random phase: ~94 % electrical, 4 % water, 2 % smoke) plus the day's patrol scans, batches
  of 500;
- ``district-ingest``: the same without the Hazards sink (ingest's own share: decode,
  validate, dedup, encode);
- ``every``: each device of the registry once, in slot order, batches of 500;
- ``storm``: every message changes an open event (smoke detectors flapping in alarm, two per
  building, and patrol checkpoints scanned with hazards; see :func:`storm`), batches of 500;
- ``single``: one-message batches of the district mix (a quiet hour); ``single-hit``: the same
  with each message a repeat of an open event (the storm's messages).

The baseline, measured in the same run (interleaved): what a minimal consumer does per message,
``orjson.loads`` of the payload and one f-string line of line protocol. Every figure is also
printed as a ratio to it: these machines are shared and noisy.

Targets (issue 17): ≤ 12 µs/msg district mix, ≤ 25 µs storm of repeats, ≤ 60 µs one-message batch.

    .venv/bin/python bench/bench_hotpath.py [--rounds 3] [--minutes 10] [--only district,storm]
    .venv/bin/python bench/bench_hotpath.py --profile district [--sort cumulative]   # cProfile top 25
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import logging
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devices import Registry, Topics
from firegrid._clock import Clock
from firegrid._hazards import Hazards
from firegrid._settings import Settings
from ingest import AlarmTopics, IngestMetrics, InMessage, LaneTwins, Pipeline
from rules import RulesConfig
from simulators import Fleet, Scan, write_world

T0 = 1_764_554_400_000
"""2025-12-01 10:00 local time (UTC+8): patrol rounds are under way."""
DELAY_MS = 20
"""Receipt time after the reading's ts."""
WARM_BATCHES = 4


class Silent:
    """An MQTT client that publishes nowhere (no PUBACKs: the outbox forgets a row once handed over)."""

    def __init__(self) -> None:
        self.count = 0

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        self.count += 1


Message = tuple[str, bytes, int]
"""(topic, payload, ts)."""


def district_mix(fleet: Fleet, minutes: float, seed: int = 7) -> list[Message]:
    """Every device once per heartbeat at a random phase, plus the patrol scans, in ts order."""
    rng = np.random.default_rng(seed)
    seconds = round(minutes * 60)
    out: list[Message] = []
    for kind in ("smoke", "electrical", "water"):
        bank = fleet.banks[kind]
        topics = bank.topics()
        heartbeat = fleet.heartbeat_s(kind).astype(np.int64)
        phase = (rng.random(bank.size) * heartbeat).astype(np.int64)
        due: dict[int, list[int]] = defaultdict(list)
        for i in range(bank.size):
            for s in range(int(phase[i]), seconds, int(heartbeat[i])):
                due[s].append(i)
        for s in sorted(due):
            t = T0 + s * 1000 + int(rng.integers(0, 1000))
            for i, message in bank.messages(np.array(due[s], dtype=np.int64), t):
                out.append((topics[i], orjson.dumps(message), message["ts"]))
    patrol = fleet.patrol
    topics = patrol.topics()
    for scan in patrol.scans(T0, T0 + seconds * 1000):
        made = patrol.scan_message(scan)
        if made is not None:
            out.append((topics[made[0]], orjson.dumps(made[1]), made[1]["ts"]))
    out.sort(key=lambda m: m[2])
    return out


def every_device(fleet: Fleet, registry: Registry) -> list[Message]:
    """Each device once, in slot order, spread over a minute."""
    topics = {kind: bank.topics() for kind, bank in fleet.banks.items()}
    out: list[Message] = []
    slots = sorted(registry.slot_of.values())
    step = max(1, 60_000 // max(len(slots), 1))
    for n, slot in enumerate(slots):
        located = fleet.locate(registry.device_ids[slot])
        assert located is not None
        kind, i = located
        t = T0 + n * step
        if kind == "patrol":
            made = fleet.patrol.scan_message(_scan(t, i, fleet))
            assert made is not None
            message = made[1]
        else:
            message = fleet.banks[kind].messages(np.array([i], dtype=np.int64), t)[0][1]
        out.append((topics[kind][i], orjson.dumps(message), message["ts"]))
    return out


def _scan(t: int, tag: int, fleet: Fleet) -> Scan:
    return Scan(t, tag, int(fleet.patrol.worker_of[tag]))


def storm(
    fleet: Fleet, registry: Registry, repeats: int, share: float = 0.05
) -> tuple[list[Message], list[Message]]:
    """(priming messages that open the events, then ``repeats`` rounds in which every message
    changes an open event): 5 % of the detectors, two per building, flapping (alarm on, off, on,
    ...: each onset a repeat of the open FIRE_ALARM and of the building's FIRE_CONFIRMED, each
    off a clear of FIRE_ALARM), and as many patrol checkpoints, one per worker, scanned once a
    round with result ``hazard`` (each scan a repeat of the tag's open PATROL_HAZARD).

    An overheating cable that stays hot is no repeat (a condition raises once), so it is not
    part of this workload."""
    smoke, patrol = fleet.smoke, fleet.patrol
    by_site: dict[str, list[int]] = defaultdict(list)
    for i, slot in enumerate(smoke.slots.tolist()):
        by_site[registry.site_of(slot)].append(i)
    wanted = round(share * smoke.size)
    detectors: list[int] = []
    for site in sorted(s for s, d in by_site.items() if len(d) >= 2):
        if len(detectors) >= wanted:
            break
        detectors.extend(by_site[site][:2])
    tags: dict[int, int] = {}  # worker -> its first tag
    for tag, worker in enumerate(patrol.worker_of.tolist()):
        if worker >= 0 and worker not in tags and len(tags) < len(detectors):
            tags[worker] = tag
    smoke_topics, patrol_topics = smoke.topics(), patrol.topics()

    def round_at(t: int, alarm: bool) -> list[Message]:
        out: list[Message] = []
        for i, m in smoke.messages(np.array(detectors, dtype=np.int64), t):
            m["alarm"] = alarm
            out.append((smoke_topics[i], orjson.dumps(m), m["ts"]))
        for worker, tag in tags.items():
            made = patrol.scan_message(Scan(t, tag, worker))
            assert made is not None
            m = {**made[1], "result": "hazard", "hazards": ["blocked exit"]}
            out.append((patrol_topics[tag], orjson.dumps(m), m["ts"]))
        out.sort(key=lambda x: x[2])
        return out

    prime = round_at(T0, True) + round_at(T0 + 1000, False)
    rounds: list[Message] = []
    for r in range(repeats):
        rounds.extend(round_at(T0 + 2000 + r * 1000, r % 2 == 0))
    return prime, rounds


def batches_of(messages: list[Message], size: int) -> list[list[InMessage]]:
    out = []
    for start in range(0, len(messages), size):
        out.append(
            [
                InMessage(start + k, 1, topic, payload, ts + DELAY_MS, 0)
                for k, (topic, payload, ts) in enumerate(messages[start : start + size])
            ]
        )
    return out


@dataclass
class Service:
    pipeline: Pipeline
    hazards: Hazards
    publisher: Silent
    now: list[int]


def build(registry: Registry, data_dir: Path, rules: bool = True) -> Service:
    """The objects ``firegrid._service`` builds (no MQTT, no InfluxDB): a Pipeline (with the
    default per-device rate limit and the alarm lane's twin check, as the service runs it) with a Hazards
    sink (RuleEngine + EventStore) on a service clock that follows the messages' receipt
    (``rules`` False: the Pipeline alone, ingest's own share)."""
    publisher = Silent()
    now = [T0]
    hazards = Hazards(
        registry,
        RulesConfig(),
        data_dir,
        publisher,
        clock=Clock(1.0, time.time_ns() // 1_000_000, T0),
    )
    hazards.on_connection_change(True)
    sinks = [hazards] if rules else []
    defaults = Settings.model_construct()  # the service's defaults: rate limit and alarm lane on
    pipeline = Pipeline(
        registry,
        IngestMetrics(),
        sinks=sinks,
        clock_ms=lambda: now[0],
        device_rate=defaults.device_rate_limit,
        twins=LaneTwins(AlarmTopics(Topics(""), defaults.alarm_kind_list, ())),
    )
    return Service(pipeline, hazards, publisher, now)


def run_firegrid(registry: Registry, root: Path, workload: Workload) -> tuple[float, int, int]:
    """Seconds for the timed batches (after the warm ones), lines produced, alerts published."""
    warm, timed = workload.warm, workload.timed
    with tempfile.TemporaryDirectory(dir=root) as data:
        service = build(registry, Path(data), workload.rules)
        process, now = service.pipeline.process, service.now
        for batch in warm:
            now[0] = batch[-1].received_ms
            process(batch)
        published = service.publisher.count
        lines = 0
        gc.collect()
        start = time.perf_counter()
        for batch in timed:
            now[0] = batch[-1].received_ms
            lines += len(process(batch))
        elapsed = time.perf_counter() - start
        published = service.publisher.count - published
        service.hazards.close()
    return elapsed, lines, published


def run_baseline(timed: list[list[InMessage]]) -> float:
    """The minimal consumer's work: orjson.loads and one f-string line per message."""
    loads = orjson.loads
    start = time.perf_counter()
    for batch in timed:
        lines = []
        for message in batch:
            body = loads(message.payload)
            _, district, kind, device = message.topic.split("/")
            seq = float(body.get("seq", 0))
            lines.append(f"{kind},district={district},device={device} seq={seq} {body.get('ts', 0)}")
    return time.perf_counter() - start


@dataclass
class Workload:
    name: str
    warm: list[list[InMessage]]
    timed: list[list[InMessage]]
    rules: bool = True
    """False: the pipeline without its Hazards sink (decode, validate, dedup, encode only)."""

    @property
    def messages(self) -> int:
        return sum(len(b) for b in self.timed)


def workloads(registry: Registry, minutes: float, only: set[str] | None) -> list[Workload]:
    out: list[Workload] = []

    def fleet() -> Fleet:
        return Fleet(registry, seed=1, start_ms=T0)

    def want(name: str) -> bool:
        return only is None or name in only

    if want("district") or want("district-ingest") or want("single"):
        mix = district_mix(fleet(), minutes)
        if want("district"):
            batches = batches_of(mix, 500)
            out.append(Workload("district", batches[:WARM_BATCHES], batches[WARM_BATCHES:]))
        if want("district-ingest"):
            batches = batches_of(mix, 500)
            out.append(
                Workload("district-ingest", batches[:WARM_BATCHES], batches[WARM_BATCHES:], rules=False)
            )
        if want("single"):
            head = WARM_BATCHES * 500
            ones = batches_of(mix[: head + 3000], 1)
            out.append(Workload("single", batches_of(mix[:head], 500), ones[head:]))
    if want("every"):
        batches = batches_of(every_device(fleet(), registry), 500)
        # warm on the district mix so the caches are as warm as in the service, then time all
        warm = batches_of(district_mix(fleet(), 2), 500)[:WARM_BATCHES]
        out.append(Workload("every", warm, batches))
    if want("storm") or want("single-hit"):
        prime, rounds = storm(fleet(), registry, repeats=40)
        if want("storm"):
            out.append(Workload("storm", batches_of(prime, 500), batches_of(rounds, 500)))
        if want("single-hit"):
            out.append(Workload("single-hit", batches_of(prime, 500), batches_of(rounds[:3000], 1)))
    return out


def profile(registry: Registry, root: Path, workload: Workload, top: int = 25, sort: str = "tottime") -> None:
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory(dir=root) as data:
        service = build(registry, Path(data), workload.rules)
        process, now = service.pipeline.process, service.now
        for batch in workload.warm:
            now[0] = batch[-1].received_ms
            process(batch)
        profiler.enable()
        for batch in workload.timed:
            now[0] = batch[-1].received_ms
            process(batch)
        profiler.disable()
        service.hazards.close()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats(sort).print_stats(top)
    print(f"cProfile of {workload.name} ({workload.messages} messages), top {top} by {sort}:")
    print(text.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed runs of each workload (median reported)")
    parser.add_argument("--minutes", type=float, default=10.0, help="simulated minutes of the district mix")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated workloads (district,district-ingest,every,storm,single,single-hit)",
    )
    parser.add_argument(
        "--profile", metavar="WORKLOAD", help="print a cProfile top 25 of one workload instead"
    )
    parser.add_argument("--sort", default="tottime", help="the profile's order (tottime, cumulative, ...)")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    only = {w for w in args.only.split(",") if w} or None
    if args.profile:
        only = {args.profile}
    with tempfile.TemporaryDirectory(prefix="bench-hotpath-") as tmp:
        root = Path(tmp)
        write_world(root / "registry", scale=1, seed=1)
        registry = Registry.load(root / "registry")
        loads = workloads(registry, args.minutes, only)
        gc.collect()
        gc.freeze()  # as the service does
        gc.set_threshold(50_000, 20, 100)
        if args.profile:
            profile(registry, root, loads[0], sort=args.sort)
            return 0
        print(f"registry: {registry.slots} devices; rounds {args.rounds}; µs per message, median of rounds")
        results = {}
        for workload in loads:
            n = workload.messages
            ours: list[float] = []
            base: list[float] = []
            lines = published = 0
            for _ in range(args.rounds):  # interleaved: baseline, firegrid, baseline, ...
                base.append(run_baseline(workload.timed) / n * 1e6)
                elapsed, lines, published = run_firegrid(registry, root, workload)
                ours.append(elapsed / n * 1e6)
            us, b = statistics.median(ours), statistics.median(base)
            ratio = us / b
            results[workload.name] = {
                "us": round(us, 2),
                "baseline_us": round(b, 3),
                "ratio": round(ratio, 1),
            }
            print(
                f"{workload.name:15s} {n:6d} msgs in batches of {len(workload.timed[0]):3d}: "
                f"{us:8.2f} µs/msg (runs {', '.join(f'{x:.1f}' for x in ours)}); baseline {b:.3f} µs/msg; "
                f"ratio {ratio:6.1f}x; lines/msg {lines / n:.2f}, alerts/msg {published / n:.2f}",
                flush=True,
            )
        if args.json:
            print(orjson.dumps(results).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
