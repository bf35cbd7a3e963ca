"""Benchmark: the traffic runner's maximum publish rate and its rate accuracy at 10,000 msg/s.

Runs one runner process against a local mosquitto it starts itself (no subscriber), on the
reference district (9,468 devices). Run with ``python bench/bench_simulator.py [--seconds S]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from access import SIMULATOR_ACCOUNT
from firegrid._services import Mosquitto
from simulators import RunOptions, RunSummary, run_traffic, write_world


def _run(registry: Path, url: str, rate: float, seconds: float, qos: int) -> RunSummary:
    return run_traffic(
        RunOptions(registry=registry, url=url, rate=rate, duration=seconds, qos=qos, progress=False)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    args = parser.parse_args(argv)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        root = Path(tmp)
        registry = root / "world"
        write_world(registry)
        broker = Mosquitto(root / "mosquitto")
        broker.start()
        try:
            for qos in (0, 1):
                top = _run(registry, broker.url_as(SIMULATOR_ACCOUNT), 1_000_000, args.seconds, qos)
                results[f"max_rate_qos{qos}"] = round(top.achieved_rate)
                print(
                    f"max publish rate, QoS {qos}: {top.achieved_rate:,.0f} msg/s "
                    f"({top.sent:,} messages in {top.seconds:.2f} s, unacked {top.unacked})"
                )
            for qos in (0, 1):
                paced = _run(registry, broker.url_as(SIMULATOR_ACCOUNT), 10_000, args.seconds, qos)
                error = (paced.achieved_rate / 10_000 - 1) * 100
                results[f"rate_10k_qos{qos}"] = round(paced.achieved_rate)
                results[f"rate_10k_qos{qos}_error_pct"] = round(error, 2)
                print(
                    f"requested 10,000 msg/s, QoS {qos}: achieved {paced.achieved_rate:,.0f} msg/s "
                    f"({error:+.2f} %), {paced.sent:,} messages, per kind {paced.per_kind}"
                )
        finally:
            broker.stop()
    print(json.dumps({"bench": "simulator", **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
