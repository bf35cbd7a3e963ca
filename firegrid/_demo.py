"""`firegrid demo`: broker, InfluxDB, ingest and the simulator on one machine, with a live feed.

Everything lives in one directory (default ``.demo``)::

    DIR/mosquitto/      broker config, persistence and log
    DIR/influxdb/       InfluxDB config, meta, data, WAL and log (the readings stay here)
    DIR/registry/       the generated world (regenerated only when scale or seed change)
    DIR/data/           ingest state: spool, event store, rule state
    DIR/ingest.toml     the ingest settings (``firegrid ingest --config DIR/ingest.toml``)
    DIR/ingest.log      the ingest log
    DIR/console/        the console's log
    DIR/credentials/    passwd, acl, secrets.csv (firegrid credentials; mode 0700)
    DIR/pids            the processes running now (removed on a clean stop)
    DIR/summary.json    the last run's summary

Leaving no process behind: every child runs in its own session (a Ctrl-C in the terminal reaches
only the demo, which then stops them in order), under ``setpriv --pdeathsig TERM`` where
available (a demo killed with SIGKILL still takes them down), and a later demo in the same
directory stops whatever an earlier one left in ``DIR/pids``.

This module runs the demo: ports, start-up in order, the loop, stopping in order. Its parts::

    firegrid/_services.py       the child processes (mosquitto, influxd, ingest, console), ports, pids
    firegrid/_demo_signins.py   the two users invited to the console
    firegrid/_alert_feed.py     the subscription to alerts/#, its counts and latencies
    firegrid/_demo_traffic.py   the simulator's thread: the scenario, then background traffic
    firegrid/_demo_summary.py   what a run did (DemoSummary), for the screen and summary.json
    firegrid/_demo_screen.py    what is shown: status line, live table or lines, the summary
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx
from rich.console import Console, RenderableType
from rich.text import Text

from access import (
    CONSOLE_ACCOUNT,
    INGEST_ACCOUNT,
    SECRETS,
    SERVICE_ACCOUNTS,
    SIMULATOR_ACCOUNT,
    make_credentials,
)
from devices import DemoError, FiregridError, Registry
from firegrid._alert_feed import AlertFeed
from firegrid._demo_screen import alert_line, live_screen, print_summary, rel, status_line
from firegrid._demo_signins import DemoUsers, demo_users
from firegrid._demo_summary import DemoSummary, StoredPoints, TrafficTotals
from firegrid._demo_traffic import DemoTraffic
from firegrid._services import (
    ChildProcess,
    Influxd,
    Ingest,
    Mosquitto,
    PidFile,
    PortInUseError,
    ServiceStartError,
    WebConsole,
    pick_port,
)
from simulators import write_world

DEFAULT_MQTT_PORT = 1883
DEFAULT_INFLUX_PORT = 8086
DEFAULT_HTTP_PORT = 8080
DEFAULT_CONSOLE_PORT = 8081
INFLUX_DB = "firegrid"
MEASUREMENTS = {
    "smoke": "alarm",
    "electrical": "residual_ma",
    "water": "pressure_mpa",
    "patrol": "result",
    "events": "event_id",
    "rejects": "topic",
}
"""A field every point of the measurement has, to count the points."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    dir: Path = Path(".demo")
    scale: float = 0.1
    seed: int = 1
    rate: float = 500.0
    duration: float | None = None
    """Wall seconds; None: until Ctrl-C."""
    scenario: str = "demo"
    live: bool = True
    mqtt_port: int | None = None
    influx_port: int | None = None
    http_port: int | None = None
    console_port: int | None = None
    """None: the usual port when it is free, else a free one."""


# -- the demo ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Stopped:
    """What stopping found out."""

    ingest_exit: int | None
    points: dict[str, int] | None
    """New points per measurement; None when InfluxDB could not be counted."""
    points_in_db: int | None
    problems: tuple[str, ...]


@dataclass
class _State:
    phase: str = "starting"
    """starting → running → stopping."""
    stop_reason: str | None = None
    signals: int = 0
    error: str | None = None
    health: dict[str, Any] | None = None
    pids: dict[str, int] = field(default_factory=dict)


class Demo:
    def __init__(self, options: DemoOptions, console: Console | None = None) -> None:
        self.options = options
        self.dir = options.dir.resolve()
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.state = _State()
        self.mosquitto: Mosquitto | None = None
        self.influxd: Influxd | None = None
        self.ingest: Ingest | None = None
        self.console_process: WebConsole | None = None
        self.users: DemoUsers | None = None
        self.feed: AlertFeed | None = None
        self.simulator: DemoTraffic | None = None
        self.world: dict[str, Any] = {}
        self.credentials = self.dir / "credentials"
        self.service_passwords: dict[str, str] = {}
        self.user_passwords: dict[str, str] = {}
        self.run_started_at: float | None = None
        self.run_ended_at: float | None = None
        self._influx_before: dict[str, int] | None = None
        self._wake = threading.Event()
        self._lock_file: IO[str] | None = None
        self._pid_file = PidFile(self.dir / "pids")

    # -- helpers ---------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        with contextlib.suppress(OSError):  # a closed pipe (| head) must not stop the clean-up
            self.console.print(text)

    def _children(self) -> list[ChildProcess]:
        """The processes started so far, in start order."""
        started = (self.mosquitto, self.influxd, self.ingest, self.console_process)
        return [c for c in started if c is not None]

    def _record_pids(self) -> None:
        pids = {c.name: pid for c in self._children() if c.running and (pid := c.pid) is not None}
        self.state.pids.update(pids)
        self._pid_file.write(pids)

    def _lock(self) -> None:
        self._lock_file = (self.dir / "demo.lock").open("a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise DemoError(f"another firegrid demo is running in {rel(self.dir)}; stop it first") from exc

    def _stop_leftovers(self) -> None:
        """Processes an earlier demo in this directory left behind (it was killed)."""

        def say(name: str, pid: int) -> None:
            self.say(f"stopping {name} (pid {pid}) left running by an earlier demo in {rel(self.dir)}")

        self._pid_file.stop_leftovers(str(self.dir), on_stop=say)

    # -- signals ---------------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        state = self.state
        state.signals += 1
        name = signal.Signals(signum).name
        if state.phase == "starting":
            state.stop_reason = state.stop_reason or ("Ctrl-C" if signum == signal.SIGINT else name)
            if state.signals == 1:  # once: a second one must not break the clean-up
                raise KeyboardInterrupt
            return
        if state.phase == "running":
            state.stop_reason = "Ctrl-C" if signum == signal.SIGINT else name
            self._wake.set()
            return
        # stopping: a second Ctrl-C stops waiting for clean exits
        if state.signals >= 2:
            self._kill_children()

    def _kill_children(self) -> None:
        for child in reversed(self._children()):
            child.kill()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        previous = {s: signal.signal(s, self._on_signal) for s in handled}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    # -- start-up --------------------------------------------------------------------------------

    @staticmethod
    def _port(requested: int | None, usual: int, option: str) -> tuple[int, str]:
        """The port to use, and a note when it is not the usual one because that one is taken."""
        try:
            port = pick_port(requested, usual)
        except PortInUseError as exc:
            raise DemoError(
                f"port {exc.port} ({option}) is already in use; choose another, or leave {option} out "
                "to use a free one"
            ) from exc
        return port, "" if requested or port == usual else f" ({usual} is in use)"

    def _start(self, child: ChildProcess, timeout: float) -> None:
        child.start(timeout)
        self._record_pids()

    def _start_services(self) -> None:
        o = self.options
        mqtt_port, mqtt_note = self._port(o.mqtt_port, DEFAULT_MQTT_PORT, "--mqtt-port")
        influx_port, influx_note = self._port(o.influx_port, DEFAULT_INFLUX_PORT, "--influx-port")
        self.mosquitto = Mosquitto(
            self.dir / "mosquitto",
            port=mqtt_port,
            die_with_parent=True,
            credentials=self.credentials,
            passwords=self.service_passwords,
        )
        self._start(self.mosquitto, timeout=30)
        self.say(
            f"[bold]mosquitto[/] mqtt://127.0.0.1:{self.mosquitto.port}{mqtt_note}  no anonymous clients, "
            f"pid {self.mosquitto.pid}, log {rel(self.mosquitto.log_path)}"
        )
        self.influxd = Influxd(self.dir / "influxdb", port=influx_port, die_with_parent=True)
        self._start(self.influxd, timeout=60)
        self.say(
            f"[bold]influxd[/]   {self.influxd.url}{influx_note}  database {INFLUX_DB}, "
            f"pid {self.influxd.pid}, data {rel(self.influxd.workdir)}"
        )
        self._influx_before = self._influx_counts()

    def _make_world(self) -> None:
        o = self.options
        registry = self.dir / "registry"
        stamp = self.dir / "world.json"
        wanted = {"scale": o.scale, "seed": o.seed}
        with contextlib.suppress(OSError, ValueError):
            known = json.loads(stamp.read_text())
            if (
                isinstance(known, dict)
                and {k: known.get(k) for k in wanted} == wanted
                and (registry / "devices.csv").is_file()
            ):
                self.world = known
                self.say(f"[bold]world[/]     {rel(registry)} (kept: {self._world_text()})")
                return
        stamp.unlink(missing_ok=True)
        try:
            summary = write_world(registry, scale=o.scale, seed=o.seed)
        except (OSError, ValueError) as exc:
            raise DemoError(f"cannot write the world into {registry}: {exc}") from exc
        self.world = {
            **wanted,
            "grids": summary.grids,
            "workers": summary.workers,
            "stations": summary.stations,
            "devices": dict(summary.devices),
        }
        stamp.write_text(json.dumps(self.world, indent=1) + "\n")
        self.say(f"[bold]world[/]     {rel(registry)} (new: {self._world_text()})")

    def _pick_users(self) -> None:
        """The worker and the supervisor the demo invites to its console (see _demo_signins)."""
        try:
            registry = Registry.load(self.dir / "registry")
            self.users = demo_users(registry, self.options.scenario, self.options.seed)
        except (OSError, FiregridError) as exc:
            raise DemoError(f"cannot plan the scenario {self.options.scenario}: {exc}") from exc

    def _make_credentials(self) -> None:
        """Every principal of the world gets a password (kept across demo runs); the service
        accounts and the two invited users are renewed each run, so that this run knows theirs
        (secrets.csv, mode 0600)."""
        self.credentials = self.dir / "credentials"
        invited = () if self.users is None else (self.users.worker, self.users.supervisor)
        try:
            # the simulated workers need every worker's password: this run writes only the new
            # ones, so the last run's file stays beside it (the simulator reads secrets.*.csv too)
            previous = self.credentials / SECRETS
            if previous.exists():
                previous.rename(self.credentials / f"secrets.{previous.stat().st_mtime_ns}.csv")
            summary = make_credentials(
                self.dir / "registry", self.credentials, rotate=(*SERVICE_ACCOUNTS, *invited)
            )
            with (self.credentials / SECRETS).open(newline="") as handle:
                secrets = {row["principal"]: row["password"] for row in csv.DictReader(handle)}
        except (OSError, FiregridError, KeyError) as exc:
            raise DemoError(f"cannot write the credentials into {self.credentials}: {exc}") from exc
        self.service_passwords = {name: secrets[name] for name in SERVICE_ACCOUNTS}
        self.user_passwords = {name: secrets[name] for name in invited}
        self.say(f"[bold]access[/]    {summary} (new passwords in {rel(self.credentials / SECRETS)})")

    def _world_text(self) -> str:
        w = self.world
        devices = w.get("devices") or {}
        total = sum(devices.values()) if isinstance(devices, dict) else 0
        return (
            f"scale {w.get('scale')}, seed {w.get('seed')}: {w.get('grids', '?'):,} grids, "
            f"{total:,} devices, {w.get('workers', '?'):,} workers"
        )

    def _start_ingest(self) -> None:
        assert self.mosquitto is not None and self.influxd is not None
        http_port, note = self._port(self.options.http_port, DEFAULT_HTTP_PORT, "--http-port")
        http = f"127.0.0.1:{http_port}"
        data = self.dir / "data"
        settings = {
            "mqtt_url": self.mosquitto.url_as(INGEST_ACCOUNT),
            "influx_url": self.influxd.url,
            "influx_db": INFLUX_DB,
            "registry": str(self.dir / "registry"),
            "data_dir": str(data),
            "http": http,
            "credentials": str(self.credentials),
        }
        config = self.dir / "ingest.toml"
        config.write_text(
            "# written by firegrid demo; run it alone with: firegrid ingest --config "
            + str(config)
            + "\n"
            + "".join(f"{key} = {json.dumps(value, ensure_ascii=False)}\n" for key, value in settings.items())
        )
        self.ingest = Ingest(self.dir, config, http, die_with_parent=True)
        self._start(self.ingest, timeout=60)
        self.say(
            f"[bold]ingest[/]    http://{http}/healthz{note}  pid {self.ingest.pid}, "
            f"log {rel(self.ingest.log_path)}, state {rel(data)}"
        )

    def _start_console(self) -> None:
        assert self.mosquitto is not None and self.ingest is not None
        port, note = self._port(self.options.console_port, DEFAULT_CONSOLE_PORT, "--console-port")
        self.console_process = WebConsole(
            self.dir / "console",
            {
                "FIREGRID_MQTT_URL": self.mosquitto.url_as(CONSOLE_ACCOUNT),
                "FIREGRID_CONSOLE_HTTP": f"127.0.0.1:{port}",
                "FIREGRID_CONSOLE_API": f"http://{self.ingest.http}",
                "FIREGRID_CREDENTIALS": str(self.credentials),
                "FIREGRID_REGISTRY": str(self.dir / "registry"),
            },
            die_with_parent=True,
        )
        console = self.console_process
        self._start(console, timeout=60)
        self.say(
            f"[bold]console[/]   [bold cyan]{console.url}/[/]{note}  pid {console.pid}, "
            f"log {rel(console.log_path)}"
        )
        users = self.users
        if users is None:
            self.say("          (the scenario raises no event in a grid with workers: no sign-in to suggest)")
            return
        for user, what in (
            (users.worker, f"worker of {users.grid_id}, where the scenario's events happen"),
            (users.supervisor, "supervisor: may close events"),
        ):
            self.say(f"          sign in as [bold]{user}[/] / [bold]{self.user_passwords[user]}[/]  ({what})")

    # -- running ---------------------------------------------------------------------------------

    def _status(self) -> Text:
        elapsed = time.monotonic() - (self.run_started_at or time.monotonic())
        sim = self.simulator
        return status_line(
            elapsed,
            self.options.duration,
            (sim.sent, sim.phase) if sim is not None else None,
            self.state.health,
            self.feed.view() if self.feed is not None else None,
        )

    def _render(self) -> RenderableType:
        assert self.feed is not None
        return live_screen(self._status(), self.feed.view(), rows=max(3, self.console.size.height - 6))

    def _check(self) -> None:
        """Raise DemoError when a part died."""
        assert self.ingest is not None and self.simulator is not None
        for service in (self.mosquitto, self.influxd, self.console_process):
            if service is not None and not service.running:
                raise DemoError(
                    f"{service.name} stopped unexpectedly; see {service.log_path}: {service.log_tail(3)}"
                )
        if not self.ingest.running:
            code = self.ingest.proc.poll() if self.ingest.proc else None
            raise DemoError(
                f"{self.ingest.label} exited (code {code}); see {self.ingest.log_path}: "
                f"{self.ingest.log_tail(3)}"
            )
        if self.simulator.error is not None:
            raise DemoError(f"simulator: {self.simulator.error}")

    def _poll_health(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if self.ingest is not None:
                self.state.health = self.ingest.health(timeout=1.0)
            stop.wait(1.0)

    def _run_loop(self) -> None:
        from rich.live import Live

        assert self.mosquitto is not None and self.feed is not None
        users = self.users
        self.simulator = DemoTraffic(
            self.dir / "registry",
            self.mosquitto.url_as(SIMULATOR_ACCOUNT),
            self.options.rate,
            self.options.scenario,
            self.options.seed,
            credentials=self.credentials,
            humans=frozenset() if users is None else frozenset({users.worker, users.supervisor}),
        )
        poll_stop = threading.Event()
        poller = threading.Thread(target=self._poll_health, args=(poll_stop,), name="healthz", daemon=True)
        poller.start()
        self.run_started_at = time.monotonic()
        deadline = None if self.options.duration is None else self.run_started_at + self.options.duration
        self.simulator.start()
        self.state.phase = "running"
        until = f"for {self.options.duration:g} s" if self.options.duration is not None else "until Ctrl-C"
        self.say(
            f"[bold green]demo running[/] {until}: scenario {self.options.scenario} "
            f"at {self.options.rate:g} msg/s; Ctrl-C stops everything"
        )
        live_on = self.options.live and self.console.is_terminal
        next_status = time.monotonic() + 5.0
        try:
            with contextlib.ExitStack() as stack:
                live = None
                if live_on:
                    live = stack.enter_context(
                        Live(self._render(), console=self.console, auto_refresh=False, transient=False)
                    )
                while self.state.stop_reason is None:
                    if deadline is not None and time.monotonic() >= deadline:
                        self.state.stop_reason = "duration"
                        break
                    self._check()
                    if live is not None:
                        self.feed.take_unseen()
                        live.update(self._render(), refresh=True)
                    else:
                        for alert in self.feed.take_unseen():
                            self.say(alert_line(alert))
                        if time.monotonic() >= next_status:
                            next_status += 5.0
                            self.say(self._status().plain)
                    self._wake.wait(0.25)
                if live is not None:
                    live.update(self._render(), refresh=True)
        finally:
            self.state.phase = "stopping"
            self.run_ended_at = time.monotonic()
            poll_stop.set()

    # -- shutdown --------------------------------------------------------------------------------

    def _influx_counts(self) -> dict[str, int] | None:
        """Points per measurement in the database (0 before it exists); None when unreachable."""
        if self.influxd is None or not self.influxd.running:
            return None
        query = "; ".join(f'SELECT COUNT("{key}") FROM "{name}"' for name, key in MEASUREMENTS.items())
        try:
            response = httpx.get(
                f"{self.influxd.url}/query", params={"db": INFLUX_DB, "q": query, "epoch": "ms"}, timeout=10
            )
            results = response.json().get("results", [])
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        counts: dict[str, int] = {}
        for name, result in zip(MEASUREMENTS, results, strict=False):
            series = result.get("series") or [] if isinstance(result, dict) else []
            value = series[0]["values"][0][1] if series else 0
            counts[name] = int(value or 0)
        return counts

    def _shutdown(self) -> _Stopped:
        """Stop everything in order; returns what the summary needs. Never raises."""
        self.state.phase = "stopping"
        ingest_exit: int | None = None
        points: dict[str, int] | None = None
        in_db: int | None = None
        problems: list[str] = []
        force = self.state.signals >= 2
        if self.simulator is not None:
            self.simulator.stop(timeout=3 if force else 40)
        console = self.console_process
        if console is not None and console.proc is not None:
            if console.stop(timeout=3 if force else 20) not in (0, None):
                problems.append(f"firegrid console exited with an error (see {rel(console.log_path)})")
            self._record_pids()
        if self.ingest is not None and self.ingest.proc is not None:
            self.say("stopping: ingest drains what it received…")
            ingest_exit = self.ingest.stop(timeout=5 if force else 40)
            if ingest_exit not in (0, None):
                problems.append(
                    f"{self.ingest.label} exited with code {ingest_exit} (see {rel(self.ingest.log_path)})"
                )
            self._record_pids()
        if self.feed is not None:
            time.sleep(0.2)  # the last alerts published while ingest drained
            self.feed.stop()
        if self._influx_before is not None:
            after = self._influx_counts()
            if after is not None:
                points = {k: n - self._influx_before.get(k, 0) for k, n in after.items()}
                in_db = sum(after.values())
        for service in (self.influxd, self.mosquitto):
            if service is None:
                continue
            try:
                service.stop(timeout=3 if force else 20)
            except Exception as exc:
                problems.append(f"stopping {service.name}: {exc}")
                with contextlib.suppress(Exception):
                    service.stop(kill=True)
            self._record_pids()
        left = [f"{c.name} (pid {c.pid})" for c in reversed(self._children()) if c.running]
        if left:
            problems.append("still running: " + ", ".join(left))
        return _Stopped(ingest_exit, points, in_db, tuple(problems))

    def _summary(self, stopped: _Stopped) -> DemoSummary:
        assert self.run_started_at is not None and self.feed is not None
        o = self.options
        end = self.run_ended_at or time.monotonic()
        return DemoSummary(
            dir=self.dir,
            stopped_by=self.state.stop_reason or ("error" if self.state.error else "end"),
            error=self.state.error,
            seconds=round(end - self.run_started_at, 1),
            scale=o.scale,
            seed=o.seed,
            scenario=o.scenario,
            rate=o.rate,
            traffic=self.simulator.totals() if self.simulator is not None else TrafficTotals(),
            alerts=self.feed.stats(),
            influx=StoredPoints(
                url=self.influxd.url if self.influxd else None,
                db=INFLUX_DB,
                new=stopped.points,
                in_db=stopped.points_in_db,
            ),
            ingest_exit=stopped.ingest_exit,
            pids=dict(self.state.pids),
            problems=stopped.problems,
        )

    # -- entry point -----------------------------------------------------------------------------

    def run(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        code = 0
        try:
            self._lock()
        except DemoError as exc:
            print(f"firegrid demo: error: {exc}", file=sys.stderr)
            return 1
        with self._signals():
            try:
                self._stop_leftovers()
                self._make_world()
                self._pick_users()
                self._make_credentials()
                self._start_services()
                self._start_ingest()
                self._start_console()
                assert self.mosquitto is not None
                self.feed = AlertFeed(
                    self.mosquitto.port,
                    user=CONSOLE_ACCOUNT,
                    password=self.mosquitto.passwords[CONSOLE_ACCOUNT],
                )
                try:
                    self.feed.start()
                except ConnectionError as exc:
                    raise DemoError(str(exc)) from exc
                self._run_loop()
            except KeyboardInterrupt:
                self.state.stop_reason = self.state.stop_reason or "Ctrl-C"
            except (DemoError, ServiceStartError) as exc:
                self.state.error = str(exc)
                code = 1
            except Exception as exc:  # stop everything first, then say what went wrong
                self.state.error = f"unexpected {type(exc).__name__}: {exc}"
                code = 1
            finally:
                self.state.phase = "stopping"
                stopped = self._shutdown()
        if self.run_started_at is not None:
            summary = self._summary(stopped)
            with contextlib.suppress(OSError):
                (self.dir / "summary.json").write_text(json.dumps(summary.to_json(), indent=1) + "\n")
            print_summary(self.console, summary)
        else:
            for problem in stopped.problems:
                print(f"firegrid demo: {problem}", file=sys.stderr)
            if not self.state.error and not stopped.problems:
                self.say("stopped before the demo was running; every process it started is stopped")
        if self.state.error:  # last, where it is seen
            print(f"firegrid demo: error: {self.state.error}", file=sys.stderr)
        return 1 if code or stopped.problems else 0


def run_demo(options: DemoOptions, console: Console | None = None) -> int:
    return Demo(options, console).run()
