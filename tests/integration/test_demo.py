"""`firegrid demo` end to end: real mosquitto, influxd, ingest and console processes, the simulator
in-process.

Each run uses its own directory and free ports, so it never meets the session's broker or a
developer's running demo. After every run no process whose command line names the directory
may be left.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from devices import Topics
from firegrid._alert_feed import AlertFeed
from firegrid._demo_screen import summary_rows
from firegrid._demo_summary import DemoSummary, StoredPoints, TrafficTotals
from firegrid._services import free_port

SMALL = ["--scale", "0.02", "--rate", "200", "--no-live"]


def _command(workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "firegrid",
        "demo",
        "--dir",
        str(workdir),
        "--mqtt-port",
        str(free_port()),
        "--influx-port",
        str(free_port()),
        "--http-port",
        str(free_port()),
        "--console-port",
        str(free_port()),
        *SMALL,
        *extra,
    ]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREGRID_")}
    env["COLUMNS"] = "200"
    return env


def _processes_naming(text: str) -> list[str]:
    """Running processes whose command line contains ``text`` (not this test process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if text in cmdline and "State:\tZ" not in status:
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


def _assert_nothing_left(workdir: Path, pids: dict[str, int]) -> None:
    assert set(pids) >= {"mosquitto", "influxd", "ingest", "console"}, pids
    for name, pid in pids.items():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        assert str(workdir) not in cmdline, f"{name} (pid {pid}) is still running: {cmdline}"
    assert _processes_naming(str(workdir)) == []
    assert not (workdir / "pids").exists()


def test_demo_runs_for_its_duration_and_stops_everything(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    started = time.monotonic()
    done = subprocess.run(
        _command(workdir, "--duration", "8"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    assert "demo running" in done.stdout
    assert "firegrid demo: summary" in done.stdout
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["stopped_by"] == "duration"
    assert summary["sent"] > 0
    assert sum(summary["sent_per_kind"].values()) == summary["sent"]
    assert re.search(rf"sent\s+{summary['sent']:,} messages", done.stdout), done.stdout
    # the readings reached InfluxDB (counted before it was stopped) and its files stay in DIR
    assert summary["influx_points"]["electrical"] > 0, summary
    assert summary["influx_points_total"] > 0
    assert summary["influx_points_in_db"] >= summary["influx_points_total"]
    assert (workdir / "influxdb" / "data" / "firegrid").is_dir()
    assert summary["ingest_exit"] == 0
    assert summary["problems"] == []
    assert (workdir / "registry" / "devices.csv").is_file()
    assert (workdir / "ingest.log").stat().st_size > 0
    _assert_nothing_left(workdir, summary["pids"])
    assert time.monotonic() - started < 60


def _reader(stream: subprocess.Popen[str]) -> queue.Queue[str | None]:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert stream.stdout is not None
        for line in stream.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    proc = subprocess.Popen(
        _command(workdir),  # no --duration: runs until interrupted
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = _reader(proc)
        seen: list[str] = []

        def read_until(text: str, seconds: float, what: str) -> None:
            deadline = time.monotonic() + seconds
            while not any(text in line for line in seen):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"{what}: {''.join(seen)}"
                try:
                    line = lines.get(timeout=remaining)
                except queue.Empty:
                    continue
                assert line is not None, f"the demo exited early: {''.join(seen)}"
                seen.append(line)

        read_until("demo running", 45, "the demo did not say it was running")
        _assert_invited_users_sign_in("".join(seen), workdir)
        # the simulated workers take the scenario's first events (a tamper at ~6 s, acked ~8 s later)
        read_until(" acknowledged ", 60, "no simulated worker acknowledged an event")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        while (line := lines.get(timeout=10)) is not None:
            seen.append(line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    output = "".join(seen)
    assert code in (0, 130), output
    assert "Traceback" not in output
    assert "firegrid demo: summary" in output
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["stopped_by"] == "Ctrl-C"
    assert summary["ingest_exit"] == 0
    _assert_nothing_left(workdir, summary["pids"])


def _assert_invited_users_sign_in(output: str, workdir: Path) -> None:
    """The console's URL and two sign-ins are printed, and both sign in; the passwords are in
    no log nor in summary.json."""
    url = re.search(r"console\s+(http://127\.0\.0\.1:\d+)/", output)
    assert url, output
    invited = re.findall(r"sign in as (\S+) / (\S+)  \((worker of (\S+),|supervisor)", output)
    assert [(user.split("-")[1][:2], role[:6]) for user, _, role, _ in invited] == [
        ("W0", "worker"),
        ("SV", "superv"),
    ], output
    grid = invited[0][3]
    grids = json.loads((workdir / "registry" / "grids.geojson").read_text())["features"]
    listed = next(f["properties"]["workers"] for f in grids if f["properties"]["grid_id"] == grid)
    assert invited[0][0] in listed
    for user, password, _, _ in invited:
        with httpx.Client(base_url=url[1], timeout=10) as browser:
            csrf = re.search(r'name="csrf" value="([^"]+)"', browser.get("/login").text)
            assert csrf
            signed_in = browser.post("/login", data={"csrf": csrf[1], "user": user, "password": password})
            assert signed_in.status_code == 303 and signed_in.headers["location"] == "/", signed_in.text
            inbox = browser.get("/")
            assert inbox.status_code == 200 and "<h1>Events</h1>" in inbox.text, inbox.text[:500]
        for log in workdir.rglob("*.log"):
            assert password not in log.read_text(errors="replace"), log


def test_port_in_use_is_one_readable_line(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "firegrid", "demo", "--dir", str(workdir), "--influx-port", str(port)],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    errors = done.stderr.strip().splitlines()
    assert errors == [
        f"firegrid demo: error: port {port} (--influx-port) is already in use; choose another, "
        "or leave --influx-port out to use a free one"
    ], done.stderr
    assert _processes_naming(str(workdir)) == []
    assert not (workdir / "pids").exists()


def test_feed_counts_each_event_change_once() -> None:
    feed = AlertFeed(port=1)
    event = {
        "event_id": "E1",
        "type": "FIRE_ALARM",
        "severity": "critical",
        "state": "open",
        "cleared": False,
        "escalated": False,
        "district": "D01",
        "grid_id": "D01-G0001",
        "device_id": "D01-SD00001",
        "raised_at": 1_000,
        "updated_at": 2_000,
    }
    feed.add("alerts/D01/D01-G0001", json.dumps(event).encode(), 2_015)
    feed.add("alerts/station/D01-ST01", json.dumps(event).encode(), 2_016)  # the same change, routed
    feed.add("alerts/D01/escalations", json.dumps({**event, "escalated": True}).encode(), 3_000)
    feed.add(
        "alerts/D01/D01-G0001", json.dumps({**event, "updated_at": 3_000, "escalated": True}).encode(), 3_005
    )
    feed.add("alerts/D01/D01-G0001", b"not json", 3_006)
    feed.add("alerts/D01/D01-G0001", b'{"grid_id": "D01-G0001", "updated_at": "soon"}', 3_007)
    stats = feed.stats()
    assert stats.messages == 3
    assert stats.events == 2  # E1 and an event without id
    assert stats.by_type == {"FIRE_ALARM": 1, "?": 1}
    assert stats.station_messages == 1
    assert stats.escalation_messages == 1
    assert stats.malformed == 1
    assert stats.latency_ms_p50 == 5
    assert stats.latency_ms_p99 == 15
    view = feed.view()
    assert (view.messages, view.events) == (3, 2)
    assert [a.latency_ms for a in view.recent] == [None, 5, 15]
    assert view.recent[1].escalated and view.recent[1].where == "D01-SD00001"


def test_feed_reads_topics_through_the_deployment_prefix() -> None:
    feed = AlertFeed(port=1, topics=Topics("t1/"))
    event = json.dumps({"event_id": "E1", "grid_id": "D01-G0001", "updated_at": 1_000}).encode()
    feed.add("t1/alerts/D01/D01-G0001", event, 1_010)
    feed.add("t1/alerts/station/D01-ST01", event, 1_011)
    feed.add("t1/alerts/D01/escalations", event, 1_012)
    feed.add("alerts/D01/D01-G0001", event, 1_013)  # another deployment's prefix
    feed.add("t1/alerts/D01", event, 1_014)
    feed.add("t1/alerts/D01/D01-G0002", event, 1_015)  # grid_id unlike the topic's
    stats = feed.stats()
    assert (stats.messages, stats.station_messages, stats.escalation_messages) == (1, 1, 1)
    assert stats.malformed == 3


def test_summary_json_and_rows_derive_from_one_value(tmp_path: Path) -> None:
    feed = AlertFeed(port=1)
    feed.add(
        "alerts/D01/D01-G0001", json.dumps({"grid_id": "D01-G0001", "updated_at": 1_000}).encode(), 1_004
    )
    summary = DemoSummary(
        dir=tmp_path,
        stopped_by="duration",
        error=None,
        seconds=2.0,
        scale=0.02,
        seed=1,
        scenario="demo",
        rate=200.0,
        traffic=TrafficTotals(sent=10, per_kind={"smoke": 4, "water": 6}),
        alerts=feed.stats(),
        influx=StoredPoints(url="http://127.0.0.1:1", db="firegrid", new=None, in_db=None),
        ingest_exit=0,
        pids={"mosquitto": 1},
        problems=("still running: ingest (pid 2)",),
    )
    data = json.loads(json.dumps(summary.to_json()))
    assert data["sent"] == 10 and data["sent_per_kind"] == {"smoke": 4, "water": 6}
    assert data["alerts"]["messages"] == 1 and data["alerts"]["latency_ms_p50"] == 4
    assert (data["influx_points"], data["influx_points_total"], data["influx_points_in_db"]) == (
        None,
        0,
        None,
    )
    assert data["problems"] == ["still running: ingest (pid 2)"]
    rows = dict(summary_rows(summary, path=str))
    assert rows["sent"] == "10 messages (5/s): smoke 4, water 6"
    assert rows["InfluxDB"].endswith("point count not available")
    assert "stopped" not in rows and rows["problem"].startswith("[red]still running")
