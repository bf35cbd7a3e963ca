"""Before/after of the in-process hot path (issue 17), in one process.

On a machine shared with other work, two benchmark processes run a minute apart see different
loads; here the same batches go through the pipeline of a git revision (``--rev``) and through
the working tree's (or a second revision's, ``--new``), alternately batch by batch, so that both
see the same load. Each side is its revision's whole tree (``git archive`` into a scratch dir):
every package of ours imported under its own modules beside today's (``devices``, ``ingest``,
``rules``, ``alerts``, ... of that revision, so a change to a payload model, the encoder or a
rule family counts as much as one to the pipeline), with its own registry loaded from the same
files. No sinks (decode, validate, dedup, encode and the pipeline's bookkeeping: ingest's share),
or with ``--rules`` each pipeline with its own revision's Hazards sink (rules engine and event
store, as in bench_hotpath: the whole per-batch path); the workloads are bench_hotpath's.

    .venv/bin/python bench/ab_ingest.py --rev 6812366 [--new HEAD] [--rounds 5] [--only district] [--rules]
    .venv/bin/python bench/ab_ingest.py --rev 6812366 --check [--rules]   # same outputs?

``--check`` times nothing: every batch (warm and timed, with a few bad messages added to each:
see :func:`with_bad`) goes through both sides, and the lines each returns and the messages each
Hazards sink publishes must be equal, event ids aside (ULIDs differ between runs: each is
replaced by its order of first appearance).

(Before 2026-12-03 ~19:00 UTC this loaded only the old ``ingest/_decode.py``, ``_encode.py`` and
``_pipeline.py`` beside today's tree; the figures in RESULTS.md say which.)
"""

from __future__ import annotations

import argparse
import gc
import importlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_hotpath import T0, Silent, Workload, workloads
from simulators import write_world

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("devices", "ingest", "rules", "alerts", "access", "firegrid", "safety", "simulators")
"""Our packages that a side's modules import (directly or not), swapped as a whole."""
NEEDED = ("devices", "ingest", "rules", "firegrid._clock", "firegrid._hazards")


def _ours(name: str) -> bool:
    return name.split(".", maxsplit=1)[0] in PACKAGES


def load_tree(rev: str | None, scratch: Path) -> dict[str, ModuleType]:
    """The modules of :data:`NEEDED` from ``rev``'s tree (None: the working tree, as imported),
    each side's imports bound to its own copies; ``sys.modules`` is left as it was."""
    if rev is None:
        return {name: importlib.import_module(name) for name in NEEDED}
    tree = Path(tempfile.mkdtemp(prefix=f"tree-{rev}-", dir=scratch))
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    today = {name: module for name, module in sys.modules.items() if _ours(name)}
    for name in today:
        del sys.modules[name]
    sys.path.insert(0, str(tree))
    importlib.invalidate_caches()
    try:
        return {name: importlib.import_module(name) for name in NEEDED}
    finally:
        sys.path.remove(str(tree))
        for name in [name for name in sys.modules if _ours(name)]:
            del sys.modules[name]
        sys.modules.update(today)


@dataclass
class Side:
    """One revision's pipeline (and Hazards sink) on its own registry."""

    modules: dict[str, ModuleType]
    registry: Any

    def build(self, data_dir: Path, rules: bool, clock_ms: Any, publisher: Any = None) -> tuple[Any, Any]:
        """(pipeline, hazards or None), as bench_hotpath's ``build`` makes them."""
        m = self.modules
        hazards = None
        sinks = []
        if rules:
            clock = m["firegrid._clock"].Clock(1.0, time.time_ns() // 1_000_000, T0)
            config = m["rules"].RulesConfig()
            publisher = Silent() if publisher is None else publisher
            hazards = m["firegrid._hazards"].Hazards(self.registry, config, data_dir, publisher, clock=clock)
            hazards.on_connection_change(True)
            sinks = [hazards]
        ingest = m["ingest"]
        pipeline = ingest.Pipeline(self.registry, ingest.IngestMetrics(), sinks=sinks, clock_ms=clock_ms)
        return pipeline, hazards


def compare(workload: Workload, sides: list[Side], rounds: int, root: Path, rules: bool) -> list[list[float]]:
    """µs per message of each side, each round on fresh pipelines (and sinks)."""
    spent_us: list[list[float]] = [[] for _ in sides]
    now = [0]

    def clock() -> int:  # the service clock: the receipt of the batch being processed
        return now[0]

    for _ in range(rounds):
        built = [side.build(Path(tempfile.mkdtemp(dir=root)), rules, clock) for side in sides]
        pipelines = [pipeline for pipeline, _ in built]
        for batch in workload.warm:
            now[0] = batch[-1].received_ms
            for p in pipelines:
                p.process(batch)
        spent = [0.0] * len(sides)
        gc.collect()
        for n, batch in enumerate(workload.timed):
            now[0] = batch[-1].received_ms
            order = range(len(sides)) if n % 2 == 0 else reversed(range(len(sides)))
            for i in order:
                start = time.perf_counter()
                pipelines[i].process(batch)
                spent[i] += time.perf_counter() - start
        for _, hazards in built:
            if hazards is not None:
                hazards.close()
        for i, seconds in enumerate(spent):
            spent_us[i].append(seconds / workload.messages * 1e6)
    return spent_us


class Recorder:
    """A publisher that keeps what it is given (no message ids: the outbox acks at once)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        self.sent.append((topic, payload))


_ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


class Ids:
    """Each event id (a ULID) replaced by its order of first appearance."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        return _ULID.sub(lambda m: self.seen.setdefault(m.group(), f"E{len(self.seen)}"), text)


def with_bad(batch: list[Any], n: int) -> list[Any]:
    """``batch`` with a few bad messages inserted (rejects must be equal too): a truncated
    payload, an unknown device, a field of the wrong type, NaN, a replay of the batch's first
    message (a duplicate seq) and a payload that is not an object."""
    if not batch:
        return batch
    first = batch[0]
    head, _, _ = first.topic.rpartition("/")

    def like(topic: str, payload: bytes) -> Any:
        return type(first)(first.mid, first.qos, topic, payload, first.received_ms, first.generation)

    body = first.payload
    bad = [
        like(first.topic, body[: len(body) // 2]),
        like(f"{head}/NOSUCH{n}", body),
        like(first.topic, body.replace(b'"seq":', b'"seq":"x","was":', 1)),
        like(first.topic, body.replace(b'"ts":', b'"v":NaN,"ts":', 1)),
        like(first.topic, body),
        like(first.topic, b"[1, 2]"),
    ]
    return [*batch[: len(batch) // 2], *bad, *batch[len(batch) // 2 :]]


def check(workload: Workload, sides: list[Side], root: Path, rules: bool) -> str:
    """Every batch through both sides: what was compared when lines and publications are equal,
    else the first difference (starting with ``DIFFERENT``)."""
    now = [0]
    recorders = [Recorder() for _ in sides]
    built = [
        side.build(Path(tempfile.mkdtemp(dir=root)), rules, lambda: now[0], recorder)
        for side, recorder in zip(sides, recorders, strict=True)
    ]
    ids = [Ids() for _ in sides]
    problem = ""
    compared = Counter[str]()
    for n, good in enumerate(workload.warm + workload.timed):
        batch = with_bad(good, n)
        now[0] = batch[-1].received_ms
        outputs = []
        for (pipeline, _), recorder, rename in zip(built, recorders, ids, strict=True):
            lines = [rename(line) for line in pipeline.process(batch)]
            sent = [(t, rename(p.decode())) for t, p in recorder.sent]
            recorder.sent.clear()
            outputs.append((lines, sent))
        compared.update(line.split(",", 1)[0].split(" ", 1)[0] for line in outputs[0][0])
        compared["publications"] += len(outputs[0][1])
        if outputs[0] != outputs[1]:
            (old_lines, old_sent), (new_lines, new_sent) = outputs
            for what, old, new in (("line", old_lines, new_lines), ("publication", old_sent, new_sent)):
                for i, (a, b) in enumerate(zip(old, new, strict=False)):
                    if a != b:
                        problem = f"DIFFERENT: batch {n}, {what} {i}:\n  old {a}\n  new {b}"
                        break
                if not problem and len(old) != len(new):
                    problem = f"DIFFERENT: batch {n}: {len(old)} {what}s old, {len(new)} new"
                if problem:
                    break
            break
    for _, hazards in built:
        if hazards is not None:
            hazards.close()
    return problem or "equal: " + ", ".join(f"{n} {what}" for what, n in sorted(compared.items()))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rev", required=True, help="the git revision to compare against")
    parser.add_argument("--new", help="the revision to compare (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="district,every,storm,single,single-hit")
    parser.add_argument("--rules", action="store_true", help="each pipeline with a Hazards sink")
    parser.add_argument("--check", action="store_true", help="compare the outputs instead of timing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        root = Path(tmp)
        write_world(root / "registry", scale=1, seed=1)
        sides = []
        for rev in (args.rev, args.new):
            modules = load_tree(rev, root)
            sides.append(Side(modules, modules["devices"].Registry.load(root / "registry")))
        loads = workloads(sides[-1].registry, 10.0, set(args.only.split(",")))
        gc.collect()
        gc.freeze()  # as the service does
        gc.set_threshold(50_000, 20, 100)
        what = "the whole path (Hazards sinks)" if args.rules else "ingest's share (no sinks)"
        if args.check:
            different = 0
            for workload in loads:
                problem = check(workload, sides, root, args.rules)
                different += problem.startswith("DIFFERENT")
                print(f"{workload.name:11s} {what}: {problem}", flush=True)
            return 1 if different else 0
        print(f"{what}, {args.rev} against {args.new or 'the working tree'}, batch by batch; µs/msg")
        for workload in loads:
            olds, news = compare(workload, sides, args.rounds, root, args.rules)
            ratios = [o / n for o, n in zip(olds, news, strict=True)]
            print(
                f"{workload.name:11s} {workload.messages:6d} msgs: {statistics.median(olds):7.2f} -> "
                f"{statistics.median(news):7.2f} µs/msg (medians of {args.rounds}); old/new per round "
                f"{', '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f}x",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
