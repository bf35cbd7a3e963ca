"""Before/after of ingest's own share of the hot path (issue 17), in one process.

On a machine shared with other work, two benchmark processes run a minute apart see different
loads; here the same batches go through the pipeline of a git revision (``--rev``: its
``ingest/_decode.py``, ``_encode.py`` and ``_pipeline.py``, loaded beside today's) and through
today's, alternately batch by batch, so that both see the same load. No sinks (decode, validate,
dedup, encode and the pipeline's bookkeeping: what those three files do), or with ``--rules``
each pipeline with its own Hazards sink (rules engine and event store of today's tree, as in
bench_hotpath: the whole per-batch path); the workloads are bench_hotpath's.

    .venv/bin/python bench/ab_ingest.py --rev 4d9026a [--rounds 5] [--only district,single] [--rules]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_hotpath import Service, Workload, build, workloads
from devices import Registry
from ingest import IngestMetrics, Pipeline
from simulators import write_world

ROOT = Path(__file__).resolve().parent.parent


def old_pipeline_class(rev: str, scratch: Path) -> Any:
    """``Pipeline`` of ``rev``, wired to that revision's decoder and encoder."""
    modules: dict[str, ModuleType] = {}
    for name in ("_decode", "_encode", "_pipeline"):
        source = subprocess.run(
            ["git", "show", f"{rev}:ingest/{name}.py"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
        path = scratch / f"old{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(f"old{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        if name == "_pipeline":  # it imported today's decoder and encoder: the old ones instead
            for attr in ("Decoder", "Decoded", "RejectReason"):
                setattr(module, attr, getattr(modules["_decode"], attr))
            setattr(module, "PointEncoder", modules["_encode"].PointEncoder)  # noqa: B010
        modules[name] = module
    return modules["_pipeline"].Pipeline


def compare(
    registry: Registry, workload: Workload, old_class: Any, rounds: int, root: Path, rules: bool
) -> tuple[list[float], list[float]]:
    """µs per message of the old and the new pipeline, each round on fresh pipelines (and sinks)."""
    olds: list[float] = []
    news: list[float] = []
    now = [0]

    def clock() -> int:  # the service clock: the receipt of the batch being processed
        return now[0]

    for _ in range(rounds):
        services: list[Service] = []
        for cls in (old_class, Pipeline):
            data = Path(tempfile.mkdtemp(dir=root))
            service = build(registry, data, rules)
            sinks = [service.hazards] if rules else []
            service.pipeline = cls(registry, IngestMetrics(), sinks=sinks, clock_ms=clock)
            services.append(service)
        pipelines = [s.pipeline for s in services]
        for batch in workload.warm:
            now[0] = batch[-1].received_ms
            for p in pipelines:
                p.process(batch)
        spent = [0.0, 0.0]
        gc.collect()
        for n, batch in enumerate(workload.timed):
            now[0] = batch[-1].received_ms
            order = (0, 1) if n % 2 == 0 else (1, 0)
            for i in order:
                start = time.perf_counter()
                pipelines[i].process(batch)
                spent[i] += time.perf_counter() - start
        for service in services:
            service.hazards.close()
        messages = workload.messages
        olds.append(spent[0] / messages * 1e6)
        news.append(spent[1] / messages * 1e6)
    return olds, news


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rev", required=True, help="the git revision to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="district,every,storm,single,single-hit")
    parser.add_argument("--rules", action="store_true", help="each pipeline with a Hazards sink")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        root = Path(tmp)
        old_class = old_pipeline_class(args.rev, root)
        write_world(root / "registry", scale=1, seed=1)
        registry = Registry.load(root / "registry")
        loads = workloads(registry, 10.0, set(args.only.split(",")))
        gc.collect()
        gc.freeze()  # as the service does
        gc.set_threshold(50_000, 20, 100)
        what = "the whole path (Hazards sinks)" if args.rules else "ingest's share (no sinks)"
        print(f"{what}, {args.rev} against the working tree, batch by batch; µs/msg")
        for workload in loads:
            olds, news = compare(registry, workload, old_class, args.rounds, root, args.rules)
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
