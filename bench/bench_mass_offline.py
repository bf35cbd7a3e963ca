"""Mass silence (issue 17): many devices going offline at once, in process.

The service as ``bench_hotpath`` builds it (a ``Pipeline`` with a ``Hazards`` sink over a real
``RuleEngine`` and ``EventStore`` in a temporary data dir, a publisher that only records) on a
simulator world of N devices (``bench_scaling.world_for``). One round of readings makes every
device that has an offline timer seen (each once, within a minute); then the service clock jumps to
1 s past the electrical offline limit (2 × 60 s + 60 s) after the round's last message, so every
electrical monitor is silent at once: the worst case (a pipeline that fell behind, a scaled
clock); a real power cut spreads the deadlines as the monitors' last messages were spread, over a
heartbeat (60 s): ``--spread`` plays that, the service clock going on by the timer period (500 ms)
at each call from the first deadline, the calls back to back. Water and smoke stay within their
limits.

The pipeline thread is then played as ``firegrid/_service.py`` runs it: ``Hazards.on_idle`` (the
timers), then a batch with one smoke alarm received at the start of the silence, then
``on_idle`` again (the service clock following the wall clock) until every DEVICE_OFFLINE event
is published. Reported per run:

- ``events``: DEVICE_OFFLINE events published (checked against the electrical monitors);
- ``stall``: the longest single ``on_idle`` call (the pipeline takes no batch meanwhile), and
  how many calls the silence took; ``later``: the longest call but the first (the first finds
  every monitor's timer expired: before the engine's tick had a limit, it built all their hits);
- ``alarm``: from the start of the silence's first call to the smoke alarm's publication (its
  batch is the next the pipeline takes, so this is the pipeline's busy time before the alarm
  plus the alarm's own batch);
- ``drain``: from that start to the last DEVICE_OFFLINE publication (at once: the latest event's
  delay beyond its deadline, the 0.5 s timer period aside; ``--spread``: the work of all calls);
- memory per event: RSS (``/proc/self/status``) after the drain minus before the silence, both
  after a full GC, divided by the events (what the open events keep, with the allocator's
  leftovers: what a user sees), and the peak RSS during the silence over the same baseline
  (VmHWM, reset through ``/proc/self/clear_refs``); each run is a forked child, so the
  allocator starts fresh. ``--trace`` measures with tracemalloc instead (Python allocations only,
  not SQLite's; its times are inflated): kept and peak bytes per event, and the top allocation
  sites of what is kept.

    .venv/bin/python bench/bench_mass_offline.py [--devices 10000,100000] [--runs 3] [--million]
        [--trace] [--spread] [--json]
"""

from __future__ import annotations

import argparse
import gc
import logging
import multiprocessing
import re
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_hotpath import DELAY_MS, T0, Message, Service, batches_of, build
from bench.bench_scaling import world_for
from devices import Registry
from firegrid._hazards import TIMER_INTERVAL_MS
from ingest import InMessage
from rules import RulesConfig
from simulators import Fleet

OFFLINE = b'"DEVICE_OFFLINE"'
ALARM = b'"FIRE_ALARM"'
TIMEOUT_S = 600.0
"""A silence not drained by then is reported as a failure."""


@dataclass
class Recorder:
    """A publisher that records when the alarm and the offline events went out (no PUBACKs: the
    outbox forgets a row once handed over, as with ``bench_hotpath.Silent``)."""

    offline: int = 0
    last_offline_s: float = 0.0
    alarm_s: float | None = None

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        if OFFLINE in payload:
            self.offline += 1
            self.last_offline_s = time.perf_counter()
        elif ALARM in payload and self.alarm_s is None:
            self.alarm_s = time.perf_counter()


@dataclass
class Run:
    events: int = 0
    calls: int = 0
    stall_s: float = 0.0
    later_s: float = 0.0
    """The longest call but the first."""
    alarm_s: float = 0.0
    drain_s: float = 0.0
    kept_b: float = 0.0
    """RSS (or traced bytes) kept per event."""
    peak_b: float = 0.0
    sites: list[str] = field(default_factory=list)


def rss_kib(field_name: str = "VmRSS") -> int:
    status = Path("/proc/self/status").read_text()
    found = re.search(rf"^{field_name}:\s+(\d+) kB", status, re.M)
    assert found is not None
    return int(found[1])


def reset_peak() -> None:
    """Let VmHWM start again from the current RSS (Linux ≥ 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def offline_limit_ms(kind: str) -> int:
    rule = RulesConfig().device_offline
    return round((rule.factor * rule.heartbeat_s[kind] + rule.grace_s) * 1000)


def alarm_batch(fleet: Fleet, at_ms: int) -> list[InMessage]:
    """One smoke detector in alarm, received at ``at_ms``."""
    smoke = fleet.smoke
    [(i, message)] = smoke.messages(np.array([0], dtype=np.int64), at_ms - DELAY_MS)
    message["alarm"] = True
    return [InMessage(0, 1, smoke.topics()[i], orjson.dumps(message), at_ms, 0)]


def round_of(fleet: Fleet, steps: int = 600, step_ms: int = 100) -> list[Message]:
    """Every smoke detector, electrical and water monitor once, in slot order, within a minute
    (``steps`` × ``step_ms``), in receipt order. Patrol checkpoints have no offline timer."""
    out: list[Message] = []
    for kind in ("smoke", "electrical", "water"):
        bank = fleet.banks[kind]
        topics = bank.topics()
        for step, idx in enumerate(np.array_split(np.arange(bank.size, dtype=np.int64), steps)):
            for i, message in bank.messages(idx, T0 + step * step_ms):
                out.append((topics[i], orjson.dumps(message), message["ts"]))
    out.sort(key=lambda m: m[2])
    return out


def feed(service: Service, round_: list[list[InMessage]]) -> None:
    """The round of readings, each batch followed by the timers (as the pipeline thread does)."""
    for batch in round_:
        service.now[0] = batch[-1].received_ms
        service.pipeline.process(batch)
        service.hazards.on_idle(service.now[0])


@dataclass(frozen=True)
class Options:
    trace: bool = False
    """Memory by tracemalloc instead of RSS."""
    spread: bool = False
    """The deadlines spread as the round's messages were (see the module doc), a timer round
    every 500 ms of service time; otherwise all at once."""


def silence(
    service: Service, recorder: Recorder, alarm: list[InMessage], start_ms: int, expected: int, spread: bool
) -> Run:
    """The pipeline thread from the silence on: timers, the alarm's batch, timers until drained;
    the service clock follows the wall clock, or (``spread``) goes on by a timer period a call."""
    hazards, run = service.hazards, Run()
    began = time.perf_counter()

    def now() -> int:
        if spread:
            return start_ms + run.calls * TIMER_INTERVAL_MS
        return start_ms + round((time.perf_counter() - began) * 1000)

    def timers() -> None:
        at = time.perf_counter()
        hazards.on_idle(now())
        took = time.perf_counter() - at
        run.stall_s = max(run.stall_s, took)
        if run.calls:
            run.later_s = max(run.later_s, took)
        run.calls += 1

    timers()
    service.now[0] = now()
    service.pipeline.process(alarm)
    while recorder.offline < expected and time.perf_counter() - began < TIMEOUT_S:
        timers()
    assert recorder.alarm_s is not None, "the alarm was not published"
    run.events = recorder.offline
    run.alarm_s = recorder.alarm_s - began
    run.drain_s = recorder.last_offline_s - began
    return run


def one_run(registry: Registry, root: Path, messages: list[Message], expected: int, options: Options) -> Run:
    """A run in a forked child: a fresh allocator, so RSS growth is this run's alone."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child() -> None:
        try:
            sender.send(child_run(registry, root, messages, expected, options))
        except BaseException as exc:
            sender.send(f"{type(exc).__name__}: {exc}")
            raise

    process = context.Process(target=child)
    process.start()
    run: Run | str = receiver.recv()
    process.join()
    if isinstance(run, str):
        raise RuntimeError(f"the run failed: {run}")
    return run


def child_run(
    registry: Registry, root: Path, messages: list[Message], expected: int, options: Options
) -> Run:
    fleet = Fleet(registry, seed=2, start_ms=T0, seq_start=1_000_000)  # seqs after the round's
    with tempfile.TemporaryDirectory(dir=root) as data:
        service = build(registry, Path(data))
        try:
            return measured(service, fleet, messages, expected, options)
        finally:
            service.hazards.close()


def measured(service: Service, fleet: Fleet, messages: list[Message], expected: int, options: Options) -> Run:
    """Feed the round, then the silence, measuring its memory (RSS, or tracemalloc)."""
    recorder = Recorder()
    service.publisher.publish = recorder.publish  # type: ignore[method-assign]
    feed(service, batches_of(messages, 500))
    if options.spread:
        first = service.hazards.engine.next_deadline()  # the first monitor's limit
        assert first is not None
        start = first
    else:
        start = messages[-1][2] + DELAY_MS + offline_limit_ms("electrical") + 1000
    alarm = alarm_batch(fleet, start)
    gc.collect()
    trace = options.trace
    if trace:
        tracemalloc.start()
    before = rss_kib()
    reset_peak()
    run = silence(service, recorder, alarm, start, expected, options.spread)
    peak = rss_kib("VmHWM")
    gc.collect()
    if trace:
        run.kept_b, run.peak_b = tracemalloc.get_traced_memory()
        stats = tracemalloc.take_snapshot().statistics("lineno")[:12]
        tracemalloc.stop()
        run.sites = [f"{s.size / max(run.events, 1):7.0f} B/event  {s.traceback}" for s in stats]
    else:
        run.kept_b = (rss_kib() - before) * 1024
        run.peak_b = (peak - before) * 1024
    run.kept_b /= max(run.events, 1)
    run.peak_b /= max(run.events, 1)
    return run


def electrical_monitors(registry: Registry) -> int:
    return sum(1 for slot in registry.slot_of.values() if registry.kind_of(slot) == "electrical")


def spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    scaled = [v * scale for v in values]
    return f"{statistics.median(scaled):.0f} {unit} ({min(scaled):.0f}–{max(scaled):.0f})"


def report(devices: int, runs: list[Run], options: Options) -> dict[str, float]:
    what = "traced" if options.trace else "RSS"
    when = "spread over the round (a timer round every 500 ms)" if options.spread else "at once"
    print(
        f"{devices:>9,d} devices, {runs[0].events:,d} DEVICE_OFFLINE {when}, {len(runs)} runs, "
        "median (range):\n"
        f"  stall (longest on_idle) {spread([r.stall_s for r in runs], 'ms', 1000)} "
        f"in {spread([float(r.calls) for r in runs], 'calls')}, "
        f"later calls {spread([r.later_s for r in runs], 'ms', 1000)}; "
        f"alarm published after {spread([r.alarm_s for r in runs], 'ms', 1000)}; "
        f"drained after {spread([r.drain_s for r in runs], 'ms', 1000)}\n"
        f"  {what} kept {spread([r.kept_b for r in runs], 'B/event')}, "
        f"peak {spread([r.peak_b for r in runs], 'B/event')}",
        flush=True,
    )
    for line in runs[-1].sites:
        print(f"    {line}")
    return {
        "devices": devices,
        "events": runs[0].events,
        "stall_ms": round(statistics.median(r.stall_s for r in runs) * 1000, 1),
        "later_ms": round(statistics.median(r.later_s for r in runs) * 1000, 1),
        "alarm_ms": round(statistics.median(r.alarm_s for r in runs) * 1000, 1),
        "drain_ms": round(statistics.median(r.drain_s for r in runs) * 1000, 1),
        "kept_b_per_event": round(statistics.median(r.kept_b for r in runs)),
        "peak_b_per_event": round(statistics.median(r.peak_b for r in runs)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", default="10000,100000", help="comma-separated world sizes")
    parser.add_argument("--million", action="store_true", help="also 1,000,000 devices (minutes, ~GiB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trace", action="store_true", help="memory by tracemalloc instead of RSS")
    parser.add_argument("--spread", action="store_true", help="deadlines spread over the round, not at once")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sizes = [int(n) for n in args.devices.split(",") if n] + ([1_000_000] if args.million else [])
    results = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-mass-offline-") as tmp:
            root = Path(tmp)
            world_for(size, root / "registry")
            registry = Registry.load(root / "registry")
            messages = round_of(Fleet(registry, seed=1, start_ms=T0))
            expected = electrical_monitors(registry)
            gc.collect()
            gc.freeze()  # as the service does (firegrid/_service.py, _tune_gc)
            gc.set_threshold(50_000, 20, 100)
            options = Options(trace=args.trace, spread=args.spread)
            runs = [one_run(registry, root, messages, expected, options) for _ in range(args.runs)]
            failed = [r.events for r in runs if r.events != expected]
            if failed:
                print(f"FAILED: {expected} electrical monitors, events published {failed}", file=sys.stderr)
                return 1
            results.append(report(len(registry), runs, options))
            del messages, registry
            gc.unfreeze()
    if args.json:
        print(orjson.dumps(results).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
