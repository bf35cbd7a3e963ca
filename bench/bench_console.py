"""Does the console slow ingest? Alert latency (device publish → alert at a grid subscriber) at
1,000 msg/s of background QoS 1 traffic, first with the console running and nobody signed in,
then with 20 browsers (headless Chromium, phone size) signed in on the live inbox, each getting
every alert it may see over Server-Sent Events. The baseline in the same run is the first round
(the broker runs the world's own ACL, under which the simulator's account may not publish the
raw round-trip probes of bench_alert_latency).

    .venv/bin/python bench/bench_console.py [--samples 200] [--browsers 20]

Each round's alarms are raised on detectors of its own, in the grids the signed-in workers
hold, so every sample changes what the browsers show; after the second round the supervisors'
browsers must show the newest alarm (the console kept up).

In the field the browsers run on phones, not beside ingest; here they share two cores with it,
and 20 Chromium renderers redrawing on every change cost more CPU than ingest itself. So there
are two kinds of clients: ``--clients chromium`` (real headless Chromium at ``--browser-nice``,
default 19: it gets what ingest leaves) and ``--clients http`` (default), which does exactly what
the console's page script does and nothing a phone's browser would do on its own CPU: sign in,
hold the ``/live`` Server-Sent Events stream, and fetch the inbox fragment (``/?part=list``) on
every change. That measures what the console costs ingest. The console runs at normal priority.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, ViewportSize, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from access import CONSOLE_ACCOUNT, INGEST_ACCOUNT, SECRETS, SIMULATOR_ACCOUNT, make_credentials
from bench.bench_alert_latency import Probe, background_traffic, cpu_seconds, percentile, received
from devices import Registry
from firegrid._services import Influxd, Ingest, Mosquitto, WebConsole, free_port, wait_for
from simulators import write_world

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
RATE = 1000
LIVE = {"X-Firegrid-Live": "1"}
PHONE: ViewportSize = {"width": 390, "height": 844}


def read_secrets(credentials: Path) -> dict[str, str]:
    with (credentials / SECRETS).open(newline="") as handle:
        return {row["principal"]: row["password"] for row in csv.DictReader(handle)}


def pick_users(registry: Registry, count: int) -> tuple[list[str], list[tuple[str, str, str]]]:
    """``count`` users: some of the district's supervisors, then one plain worker per staffed grid;
    and the district's smoke detectors (the probes' targets), those of the workers' grids spread
    among the others."""
    supervisors = sorted(w for w, worker in registry.workers.items() if worker.is_supervisor)
    users = supervisors[: count // 4]
    grids: list[str] = []
    for grid_id, grid in sorted(registry.grids.items()):
        plain = [w for w in grid.workers if w in registry.workers and not registry.workers[w].is_supervisor]
        if plain and plain[0] not in users and len(users) < count:
            users.append(plain[0])
            grids.append(grid_id)
    chosen = set(users)
    watched = {grid_id for grid_id, grid in registry.grids.items() if chosen & set(grid.workers)}
    smoke = [(d.device_id, d.district, d.grid_id) for d in registry.devices() if d.kind == "smoke"]
    # every sample a new event: the signed-in workers' grids' detectors alternate with the others
    mine = [d for d in smoke if d[2] in watched]
    others = [d for d in smoke if d[2] not in watched]
    mixed = [d for pair in zip(mine, others, strict=False) for d in pair]
    return users, mixed + mine[len(others) :] + others[len(mine) :]


def niced_chromium(work: Path, nice: int) -> str:
    """A wrapper that starts Debian's chromium at niceness ``nice`` (its renderers inherit it)."""
    if nice == 0:
        return CHROMIUM
    wrapper = work / "chromium-niced"
    wrapper.write_text(f'#!/bin/sh\nexec nice -n {nice} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


class HttpBrowser(threading.Thread):
    """One signed-in user as the console's page script behaves: the live stream, and the inbox
    fragment fetched again on every change (one fetch at a time, a change meanwhile → one more)."""

    def __init__(self, base: str, user: str, password: str) -> None:
        super().__init__(daemon=True, name=f"browser-{user}")
        self.client = httpx.Client(base_url=base, timeout=30)
        page = self.client.get("/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf, page[:300]
        answer = self.client.post("/login", data={"csrf": csrf[1], "user": user, "password": password})
        assert answer.status_code == 303, (user, answer.status_code)
        self.fragments = 0
        self.kinds: dict[str, int] = {}
        self.last = ""
        self.stopping = threading.Event()

    def run(self) -> None:
        with self.client.stream("GET", "/live", timeout=httpx.Timeout(30, read=None)) as stream:
            for line in stream.iter_lines():
                if self.stopping.is_set():
                    return
                if line.startswith("event: "):
                    self.kinds[line[7:]] = self.kinds.get(line[7:], 0) + 1
                if line.startswith(("event: change", "event: resync")):
                    self.last = self.client.get("/", params={"part": "list"}, headers=LIVE).text
                    self.fragments += 1

    def shows(self, text: str) -> bool:
        return text in self.last

    def close(self) -> None:
        self.stopping.set()
        self.client.close()


def sign_in(page: Page, user: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("User").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Events").wait_for(timeout=20_000)


def shows(page: Page, text: str) -> bool:
    return text in page.content()


def measure(probe: Probe, samples: int, pids: dict[str, int], http: str) -> dict[str, Any]:
    cpu_before, wall_before = {n: cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
    received_before = received(http)
    alert = probe.measure(samples, alerts=True)
    wall = time.monotonic() - wall_before
    return {
        "received_msg_s": round((received(http) - received_before) / wall),
        "alert_p50_ms": round(statistics.median(alert), 2),
        "alert_p99_ms": round(percentile(alert, 0.99), 2),
        "cpu_cores_used": {n: round((cpu_seconds(p) - cpu_before[n]) / wall, 2) for n, p in pids.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--browsers", type=int, default=20)
    parser.add_argument("--browser-nice", type=int, default=19, help="Chromium's niceness (0: none)")
    parser.add_argument("--clients", choices=("http", "chromium"), default="http")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="firegrid-console-bench-") as tmp:
        work = Path(tmp)
        registry_dir = work / "registry"
        write_world(registry_dir, scale=0.5, seed=3)
        registry = Registry.load(registry_dir)
        credentials = work / "credentials"
        make_credentials(registry_dir, credentials)
        secrets = read_secrets(credentials)
        users, detectors = pick_users(registry, args.browsers)
        assert len(users) == args.browsers, f"only {len(users)} users to sign in"
        half = len(detectors) // 2  # each round alarms detectors of its own (repeats when few)
        broker = Mosquitto(work / "mosquitto", credentials=credentials, passwords=secrets)
        influx = Influxd(work / "influxd")
        broker.start()
        influx.start()
        http = f"127.0.0.1:{free_port()}"
        config = work / "ingest.toml"
        settings = {
            "mqtt_url": broker.url_as(INGEST_ACCOUNT),
            "influx_url": influx.url,
            "registry": str(registry_dir),
            "data_dir": str(work / "data"),
            "http": http,
            "credentials": str(credentials),
            "client_id": "bench-console",
        }
        config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
        ingest = Ingest(work, config, http)
        console = WebConsole(
            work / "console",
            {
                "FIREGRID_MQTT_URL": broker.url_as(CONSOLE_ACCOUNT),
                "FIREGRID_CONSOLE_HTTP": f"127.0.0.1:{free_port()}",
                "FIREGRID_CONSOLE_API": f"http://{http}",
                "FIREGRID_CREDENTIALS": str(credentials),
                "FIREGRID_REGISTRY": str(registry_dir),
            },
        )
        background: subprocess.Popen[bytes] | None = None
        probe: Probe | None = None
        results: dict[str, Any] = {}
        try:
            ingest.start(60)
            console.start(60)
            probe = Probe(broker.url_as(SIMULATOR_ACCOUNT), detectors)
            background = background_traffic(registry_dir, broker.url_as(SIMULATOR_ACCOUNT), RATE, 1800)
            time.sleep(3)  # let the background traffic reach its rate (a benchmark, not a test)
            pids = {
                "firegrid": ingest.pid or 0,
                "console": console.pid or 0,
                "mosquitto": broker.pid or 0,
                "influxd": influx.pid or 0,
            }
            probe.detectors = detectors[:half]
            results["no browser"] = measure(probe, args.samples, pids, http)
            label = f"{args.browsers} {args.clients} clients"
            probe.round = 1
            probe.detectors = detectors[half:]
            newest = probe.detectors[(args.samples - 1) % len(probe.detectors)][0]
            supervisors = users[: len(users) // 4]  # they see every alarm
            if args.clients == "http":
                browsers = [HttpBrowser(console.url, user, secrets[user]) for user in users]
                for browser in browsers:
                    browser.start()
                results[label] = measure(probe, args.samples, pids, http)
                for browser in browsers[: len(supervisors)]:
                    wait_for(
                        partial(HttpBrowser.shows, browser, newest), 20, f"{browser.name} shows {newest}"
                    )
                results[label]["fragments_fetched"] = sum(b.fragments for b in browsers)
                results[label]["stream_events"] = {b.name: b.kinds for b in browsers}
                for browser in browsers:
                    browser.close()
            else:
                with sync_playwright() as playwright:
                    executable = niced_chromium(work, args.browser_nice)
                    chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
                    pages: dict[str, Page] = {}
                    for user in users:
                        context = chromium.new_context(
                            viewport={"width": 390, "height": 844}, base_url=console.url
                        )
                        pages[user] = context.new_page()
                        sign_in(pages[user], user, secrets[user])
                    results[label] = measure(probe, args.samples, pids, http)
                    for user in supervisors:
                        wait_for(partial(shows, pages[user], newest), 20, f"{user} sees {newest}")
                    chromium.close()
        finally:
            if probe is not None:
                probe.close()
            if background is not None:
                background.terminate()
                background.wait(30)
            console.stop()
            ingest.stop(timeout=60)
            broker.stop()
            influx.stop()
    print(json.dumps(results, indent=2))
    base, loaded = results["no browser"], results[f"{args.browsers} {args.clients} clients"]
    print(
        f"alert latency at {RATE:,} msg/s ({base['received_msg_s']:,} received), console running: "
        f"p99 {base['alert_p99_ms']} ms without browsers, {loaded['alert_p99_ms']} ms with "
        f"{args.browsers} {args.clients} clients signed in on the live inbox (ratio "
        f"{loaded['alert_p99_ms'] / max(base['alert_p99_ms'], 1e-3):.2f}); target p99 ≤ 50 ms; console CPU "
        f"{loaded['cpu_cores_used']['console']} cores of {os.cpu_count()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
