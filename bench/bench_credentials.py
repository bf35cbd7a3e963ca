"""Benchmark: ``firegrid credentials`` at province size, and checking HTTP passwords.

Run: ``.venv/bin/python bench/bench_credentials.py [--scale S] [--sample N]``. The default scale
(106) writes a world of ~1,000,000 devices (1.1 M principals with workers and stations).

Measured, each against a baseline from the same run (the machine is shared and noisy):

- first run (every principal gets a password; PBKDF2 on every core) and re-run (nothing
  hashed), as the real CLI in a subprocess; baseline: ``mosquitto_passwd -U`` hashing a sample
  of ``user:password`` lines (one core, the same OpenSSL PBKDF2), scaled to the principal count;
- ``PasswordFile``: loading the 1.1 M-line passwd (time, memory kept), an uncached and a
  cached check; baseline: one bare ``verify_password`` (a PBKDF2 of 101 iterations);
- the broker: seconds until mosquitto 2.0.11 listens with the full passwd and the first N user
  sections of the ACL (it keeps ACL users in a linked list, so the load is quadratic).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from access import PasswordFile, read_password_file, verify_password
from firegrid._services import free_port
from simulators import write_world


def _cli(*args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "firegrid", "credentials", *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"firegrid credentials failed: {done.stderr.strip()}")
    return time.perf_counter() - started, done.stdout.strip()


def _mosquitto_passwd_per_hash(sample: int, root: Path) -> float:
    """Seconds per hash of ``mosquitto_passwd -U`` over ``sample`` plain ``user:password`` lines."""
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    plain = root / "plain"
    plain.write_text("".join(f"u{i}:{secrets.token_urlsafe(24)}\n" for i in range(sample)))
    started = time.perf_counter()
    subprocess.run([tool, "-U", str(plain)], check=True)
    return (time.perf_counter() - started) / sample


def _per_call(call: Callable[[], object], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        call()
    return (time.perf_counter() - started) / repeat


def _broker_ready_s(passwd: Path, acl: Path, sections: int, root: Path) -> float:
    """Seconds until mosquitto listens with ``passwd`` and the first ``sections`` of ``acl``."""
    part = root / f"acl.{sections}"
    with acl.open() as source, part.open("w") as target:
        count = 0
        for line in source:
            if line.startswith("user "):
                count += 1
                if count > sections:
                    break
            target.write(line)
    port = free_port()
    config = root / f"mosquitto.{sections}.conf"
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\nacl_file {part}\n"
        f"user {os.environ.get('USER', 'root')}\nlog_dest none\n"
    )
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [mosquitto, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return time.perf_counter() - started
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(f"mosquitto exited with {proc.returncode}") from None
                time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=106.0, help="world scale (106: ~1,000,000 devices)")
    parser.add_argument("--sample", type=int, default=20_000, help="lines for the mosquitto_passwd baseline")
    parser.add_argument("--acl-sections", type=int, nargs="*", default=[10_000, 20_000])
    args = parser.parse_args(argv)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-credentials-") as tmp:
        root = Path(tmp)
        world, out = root / "world", root / "credentials"
        started = time.perf_counter()
        summary = write_world(world, scale=args.scale)
        devices = sum(summary.devices.values())
        print(
            f"world: {devices:,} devices, {summary.workers:,} workers "
            f"in {time.perf_counter() - started:.1f} s"
        )

        per_hash = _mosquitto_passwd_per_hash(args.sample, root)
        print(
            f"baseline: mosquitto_passwd -U {per_hash * 1e6:.1f} µs per hash "
            f"({args.sample:,} lines, one core)"
        )

        first_s, line = _cli("--registry", str(world), "--out", str(out))
        principals = len(read_password_file(out / "passwd"))
        baseline_s = per_hash * principals
        print(f"first run: {first_s:.1f} s — {line}")
        print(
            f"  {principals:,} principals; mosquitto_passwd would hash them in {baseline_s:.1f} s "
            f"(ratio {first_s / baseline_s:.2f})"
        )
        again_s, line = _cli("--registry", str(world), "--out", str(out))
        print(f"re-run: {again_s:.1f} s ({again_s / baseline_s:.2f} of the baseline) — {line}")
        with (world / "workers.csv").open(newline="") as handle:
            rotate = [row["worker_id"] for row in csv.DictReader(handle)][:1000]
        rotate_s, line = _cli("--registry", str(world), "--out", str(out), "--rotate", *rotate)
        print(f"re-run rotating {len(rotate):,} workers: {rotate_s:.1f} s — {line}")
        sizes = {name: (out / name).stat().st_size / 1e6 for name in ("passwd", "acl", "secrets.csv")}
        print("files: " + ", ".join(f"{name} {mb:.0f} MB" for name, mb in sizes.items()))
        results.update(
            principals=principals,
            baseline_per_hash_us=round(per_hash * 1e6, 1),
            first_run_s=round(first_s, 1),
            first_run_ratio=round(first_s / baseline_s, 2),
            rerun_s=round(again_s, 1),
            rotate_workers_s=round(rotate_s, 1),
        )

        with (out / "secrets.csv").open(newline="") as handle:
            user, _, password = list(csv.reader(handle))[1]  # one of the rotated workers
        hashed = read_password_file(out / "passwd")[user]
        with PasswordFile(out / "passwd") as passwords:
            started = time.perf_counter()
            loaded = len(passwords)
            load_s = time.perf_counter() - started
            verify_s = _per_call(lambda: verify_password(password, hashed), 200)
            uncached_s = _per_call(lambda: passwords.check(user, "wrong"), 200)  # failures are not cached
            assert passwords.check(user, password)
            cached_s = _per_call(lambda: passwords.check(user, password), 20_000)
        tracemalloc.start()
        with PasswordFile(out / "passwd") as passwords:
            len(passwords)
            kept, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"PasswordFile: {loaded:,} lines indexed in {load_s:.2f} s, {kept / loaded:.0f} B per line kept "
            f"(peak {peak / 1e6:.0f} MB while loading); check: bare verify {verify_s * 1e6:.0f} µs, "
            f"uncached {uncached_s * 1e6:.0f} µs (ratio {uncached_s / verify_s:.2f}), "
            f"cached {cached_s * 1e6:.1f} µs (ratio {cached_s / verify_s:.3f})"
        )
        results.update(
            passwd_index_s=round(load_s, 2),
            passwd_index_bytes_per_line=round(kept / loaded),
            uncached_check_ratio=round(uncached_s / verify_s, 2),
            cached_check_ratio=round(cached_s / verify_s, 3),
        )

        for sections in args.acl_sections:
            ready = _broker_ready_s(out / "passwd", out / "acl", sections, root)
            print(
                f"mosquitto listening with the full passwd and {sections:,} ACL sections after {ready:.1f} s"
            )
            results[f"broker_ready_{sections}_s"] = round(ready, 1)
    print(json.dumps({"bench": "credentials", **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
