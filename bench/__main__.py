"""`make bench`: every benchmark in one run, each printing ratios against a baseline measured in
the same run (these machines are shared and noisy; an absolute time means little)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = (
    "bench_ingest.py",
    "bench_alert_latency.py",
    "bench_console.py",
    "bench_rules.py",
    "bench_alerts.py",
    "bench_simulator.py",
    "bench_credentials.py",
    "bench_sla.py",
    "bench_storm.py",
    "bench_restart.py",
    "bench_scaling.py",
    "bench_hotpath.py",
    "bench_instances.py",
    "bench_backlog_alarms.py",
    "bench_outbox_priority.py",
    "bench_mass_offline.py",
)


def main() -> int:
    failed = []
    for name in BENCHES:
        path = HERE / name
        if not path.is_file():
            continue
        print(f"\n=== {name} ===", flush=True)
        if subprocess.run([sys.executable, str(path)], check=False, cwd=HERE.parent).returncode:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
