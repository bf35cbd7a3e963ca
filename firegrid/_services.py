"""Local mosquitto and influxd processes on free ports, for the demo and the test suite.

Each service runs from its own directory with its own config file, so several can share one
machine (InfluxDB needs both its HTTP and its RPC bind address moved, PITFALLS).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx

MOSQUITTO_BIN = "mosquitto"
INFLUXD_BIN = "influxd"


class ServiceStartError(RuntimeError):
    """A local service could not be started; the message says why and where its log is."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``condition`` until it is true; raise ``TimeoutError`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _find(binary: str) -> str:
    for candidate in (shutil.which(binary), f"/usr/sbin/{binary}", f"/usr/bin/{binary}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceStartError(f"{binary} is not installed (run 'make setup', which installs it with apt-get)")


class _Process:
    """A child process with its log file; stop() is SIGTERM (clean) or SIGKILL."""

    name = "service"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for(lambda: self.ready() or not self.running, timeout, f"{self.name} to start")
        except TimeoutError as exc:
            self.stop(kill=True)
            raise ServiceStartError(f"{self.name} did not become ready; see {self.log_path}") from exc
        if not self.running:
            raise ServiceStartError(f"{self.name} exited at start-up; see {self.log_path}: {self.log_tail()}")

    def stop(self, kill: bool = False, timeout: float = 20.0) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        return ""


class Mosquitto(_Process):
    """A mosquitto broker with persistence, sized for held acks (see deploy/mosquitto.conf)."""

    name = "mosquitto"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir)
        self.port = port or free_port()
        self.config_path = workdir / "mosquitto.conf"
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        template = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto.conf"
        body = template.read_text() if template.is_file() else ""
        # the shipped tuning, with this instance's port, persistence directory and user
        kept = [
            line
            for line in body.splitlines()
            if not line.startswith(("listener", "persistence_location", "user ", "log_dest", "pid_file"))
        ]
        self.config_path.write_text(
            "\n".join(
                [
                    *kept,
                    f"listener {self.port} 127.0.0.1",
                    f"persistence_location {self.data_dir}/",
                    f"user {getpass.getuser()}",
                    "log_dest stdout",
                    "",
                ]
            )
        )

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [_find(MOSQUITTO_BIN), "-c", str(self.config_path)]

    def ready(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            return True
        return False


class Influxd(_Process):
    """An InfluxDB 1.x server with its own meta, data and WAL directories."""

    name = "influxd"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir)
        self.port = port or free_port()
        self.rpc_port = free_port()
        self.config_path = workdir / "influxdb.conf"
        self.config_path.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{workdir}/meta"
[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
  cache-max-memory-size = "256m"
[coordinator]
  write-timeout = "10s"
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = 26214400
[logging]
  level = "warn"
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
"""
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [_find(INFLUXD_BIN), "-config", str(self.config_path)]

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/ping", timeout=0.5).status_code == 204
        except httpx.HTTPError:
            return False
