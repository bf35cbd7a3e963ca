"""Local processes for the demo and the test suite: mosquitto, influxd, firegrid ingest and console.

Each service runs from its own directory with its own config file and log, on a port of its own,
so several can share one machine (InfluxDB needs both its HTTP and its RPC bind address moved,
PITFALLS). One implementation of starting, watching and stopping serves both users::

    ChildProcess        a child in its own session with its log; start (until ready), stop, kill
    ├── Mosquitto       broker with persistence, from deploy/mosquitto.conf
    ├── Influxd         InfluxDB 1.x with its own meta, data and WAL
    ├── Ingest          ``python -m firegrid ingest --config FILE``, ready when /healthz says so
    └── WebConsole      ``python -m firegrid console`` from its environment, ready when synced
    PidFile             the pids running now, so a later run can stop what a killed one left
    free_port, port_free, pick_port, wait_for, pid_alive, pid_cmdline, stop_pid

Leaving no process behind: every child runs in its own session (a Ctrl-C in the terminal reaches
only the parent, which then stops them in order) and, with ``die_with_parent``, under
``setpriv --pdeathsig TERM`` where available, so that a parent killed with SIGKILL still takes
them down. The death signal belongs to the *thread* that started the child: start such children
from a thread that lives as long as they should (the main thread).
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

from access import ACL, PASSWD, write_service_accounts
from devices import PortInUseError, ServiceStartError

__all__ = [
    "INFLUXD_BIN",
    "MOSQUITTO_BIN",
    "ChildProcess",
    "Influxd",
    "Ingest",
    "Mosquitto",
    "PidFile",
    "PortInUseError",
    "ServiceStartError",
    "WebConsole",
    "death_signal_prefix",
    "free_port",
    "pick_port",
    "pid_alive",
    "pid_cmdline",
    "port_free",
    "stop_pid",
    "wait_for",
]

MOSQUITTO_BIN = "mosquitto"
_OWN_SETTINGS = (
    "listener",
    "persistence_location",
    "user ",
    "log_dest",
    "pid_file",
    "allow_anonymous",
    "password_file",
    "acl_file",
    "cafile",
    "certfile",
    "keyfile",
    "require_certificate",
    "tls_version",
)
"""Lines of deploy/mosquitto.conf that a local broker replaces with its own (port, files, TLS)."""
INFLUXD_BIN = "influxd"


# -- waiting and ports ---------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``condition`` until it is true; raise ``TimeoutError`` naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether a listener could bind ``127.0.0.1:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(requested: int | None, usual: int) -> int:
    """``requested`` if given (``PortInUseError`` if taken), else ``usual`` when free, else a free one."""
    if requested is not None:
        if not port_free(requested):
            raise PortInUseError(requested)
        return requested
    return usual if port_free(usual) else free_port()


# -- pids ----------------------------------------------------------------------------------------


@functools.cache
def death_signal_prefix() -> tuple[str, ...]:
    """``setpriv --pdeathsig TERM --`` when available: the child gets SIGTERM if its parent dies."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or not sys.platform.startswith("linux"):
        return ()
    try:
        help_text = subprocess.run(
            [setpriv, "--help"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return (setpriv, "--pdeathsig", "TERM", "--") if "--pdeathsig" in help_text else ()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pid_cmdline(pid: int) -> str:
    """The command line of a running process, arguments separated by spaces ("" if unknown)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if ``pid`` still runs after ``timeout``."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        wait_for(lambda: not pid_alive(pid), timeout, f"pid {pid} to stop", interval=0.1)
    if pid_alive(pid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


class PidFile:
    """``{name: pid}`` of the children running now, as JSON; the file exists only while one runs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, pids: Mapping[str, int]) -> None:
        if pids:
            self.path.write_text(json.dumps(dict(pids)) + "\n")
        else:
            self.path.unlink(missing_ok=True)

    def read(self) -> dict[str, int]:
        try:
            recorded = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(recorded, dict):
            return {}
        return {name: pid for name, pid in recorded.items() if isinstance(pid, int)}

    def stop_leftovers(self, marker: str, on_stop: Callable[[str, int], None] | None = None) -> None:
        """Stop the recorded processes that still run, then remove the file.

        Only those whose command line contains ``marker`` (their directory): a recorded pid may
        have been reused by an unrelated process since. ``on_stop(name, pid)`` is told first.
        """
        for name, pid in self.read().items():
            if not pid_alive(pid) or marker not in pid_cmdline(pid):
                continue
            if on_stop is not None:
                on_stop(name, pid)
            stop_pid(pid)
        self.path.unlink(missing_ok=True)


# -- child processes -----------------------------------------------------------------------------


def _find(binary: str) -> str:
    for candidate in (shutil.which(binary), f"/usr/sbin/{binary}", f"/usr/bin/{binary}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServiceStartError(f"{binary} is not installed (run 'make setup', which installs it with apt-get)")


class ChildProcess:
    """A child process in its own session, logging to ``{workdir}/{name}.log``.

    ``start`` waits until ``ready()`` (or the child exits); ``stop`` is SIGTERM, a clean stop, or
    SIGKILL, and kills after its timeout anyway; ``kill`` only sends SIGKILL (safe in a signal
    handler). Subclasses give ``command`` and ``ready``, and ``environment`` if not inherited.
    """

    name = "service"
    """The log file's name and the key in a PidFile."""
    title = ""
    """How messages name it; default ``name``."""

    def __init__(self, workdir: Path, *, die_with_parent: bool = False) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{self.name}.log"
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        """The exit code once ``stop`` has seen the child end."""
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        """The child's environment; None: this process's."""
        return None

    @property
    def label(self) -> str:
        return self.title or self.name

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        prefix = death_signal_prefix() if self.die_with_parent else ()
        self._log = self.log_path.open("ab")
        self.returncode = None
        self.proc = subprocess.Popen(
            [*prefix, *self.command()],
            cwd=self.workdir,
            env=self.environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_for(lambda: self.ready() or not self.running, timeout, f"{self.label} to start")
        except TimeoutError as exc:
            self.stop(kill=True)
            raise ServiceStartError(
                f"{self.label} did not become ready in {timeout:.0f} s; see {self.log_path}"
            ) from exc
        if not self.running:
            raise ServiceStartError(
                f"{self.label} exited at start-up (code {self.proc.poll()}); see {self.log_path}: "
                f"{self.log_tail()}"
            )

    def stop(self, kill: bool = False, timeout: float = 20.0) -> int | None:
        """SIGTERM (or SIGKILL), then SIGKILL after ``timeout``; returns the exit code."""
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
            self.returncode = proc.returncode
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.returncode

    def kill(self) -> None:
        """SIGKILL without waiting."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        return ""


class Mosquitto(ChildProcess):
    """A mosquitto broker with persistence, sized for held acks (see deploy/mosquitto.conf).

    Never anonymous: it reads ``passwd`` and ``acl`` from ``credentials`` (a directory written
    by ``firegrid credentials``, whose service passwords the caller passes in ``passwords``),
    or, without one, from a directory of its own holding just the service accounts, valid
    under any one-level topic prefix (so tests and benchmarks may each use their own)."""

    name = "mosquitto"

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        die_with_parent: bool = False,
        credentials: Path | None = None,
        passwords: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(workdir, die_with_parent=die_with_parent)
        self.port = port or free_port()
        if credentials is None:
            credentials = workdir / "credentials"
            passwords = write_service_accounts(credentials, prefixes=("", "+/"))
        self.credentials = credentials
        self.passwords: dict[str, str] = dict(passwords or {})
        self.config_path = workdir / "mosquitto.conf"
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        template = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto.conf"
        body = template.read_text() if template.is_file() else ""
        # the shipped tuning, with this instance's port, persistence directory and user
        kept = [line for line in body.splitlines() if not line.startswith(_OWN_SETTINGS)]
        self.config_path.write_text(
            "\n".join(
                [
                    *kept,
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous false",
                    f"password_file {self.credentials / PASSWD}",
                    f"acl_file {self.credentials / ACL}",
                    f"persistence_location {self.data_dir}/",
                    f"user {getpass.getuser()}",
                    "log_dest stdout",
                    "",
                ]
            )
        )

    def url_as(self, user: str) -> str:
        """The broker's URL with ``user``'s credentials (a service account, or a principal whose
        password the caller added to :attr:`passwords`)."""
        password = self.passwords.get(user)
        if password is None:
            raise KeyError(f"no password known for {user}")
        return f"mqtt://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}"

    def reload(self) -> None:
        """SIGHUP: mosquitto rereads its password and ACL files (and drops clients whose
        password changed)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def command(self) -> list[str]:
        return [_find(MOSQUITTO_BIN), "-c", str(self.config_path)]

    def ready(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            return True
        return False


class Influxd(ChildProcess):
    """An InfluxDB 1.x server with its own meta, data and WAL directories."""

    name = "influxd"

    def __init__(self, workdir: Path, port: int | None = None, *, die_with_parent: bool = False) -> None:
        super().__init__(workdir, die_with_parent=die_with_parent)
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


def http_health(http: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The /healthz answer at ``host:port``; None when there is none, or not a JSON object with
    status 200."""
    try:
        response = httpx.get(f"http://{http}/healthz", timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict):
            return body
    return None


class Ingest(ChildProcess):
    """``python -m firegrid ingest --config FILE``, ready once /healthz reports the broker connected.

    Only the file configures it: ``FIREGRID_*`` variables of this process's environment, which
    would win over the file, are not passed on.
    """

    name = "ingest"
    title = "firegrid ingest"

    def __init__(self, workdir: Path, config: Path, http: str, *, die_with_parent: bool = False) -> None:
        super().__init__(workdir, die_with_parent=die_with_parent)
        self.config = config
        self.http = http
        """``host:port`` of its HTTP API."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "firegrid", "ingest", "--config", str(self.config)]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREGRID_")}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def health(self, timeout: float = 1.0) -> dict[str, Any] | None:
        return http_health(self.http, timeout)

    def ready(self) -> bool:
        health = self.health(timeout=0.5)
        return health is not None and health.get("mqtt") == "connected"


class WebConsole(ChildProcess):
    """``python -m firegrid console``, configured by ``env`` (its ``FIREGRID_*`` variables, CONTRACT
    §11; nothing else of this process's ``FIREGRID_*`` is passed on); ready once /healthz reports
    the broker connected and the open events loaded from ingest."""

    name = "console"
    title = "firegrid console"

    def __init__(self, workdir: Path, env: Mapping[str, str], *, die_with_parent: bool = False) -> None:
        super().__init__(workdir, die_with_parent=die_with_parent)
        self.env = dict(env)
        self.http = self.env["FIREGRID_CONSOLE_HTTP"]
        self.url = f"http://{self.http}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "firegrid", "console"]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIREGRID_")}
        env.update(self.env, PYTHONUNBUFFERED="1")
        return env

    def health(self, timeout: float = 1.0) -> dict[str, Any] | None:
        return http_health(self.http, timeout)

    def ready(self) -> bool:
        health = self.health(timeout=0.5)
        return health is not None and health.get("mqtt") == "connected" and bool(health.get("synced"))
