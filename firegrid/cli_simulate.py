"""``firegrid simulate world|run``: the world generator and the traffic runner on the command line.

The main CLI calls :func:`add_parser`; ``python -m firegrid.cli_simulate`` runs it on its own.
``simulate run`` takes the broker, the topic prefix and the rules from the settings
``firegrid ingest`` reads (``FIREGRID_MQTT_URL``, ``FIREGRID_TOPIC_PREFIX``, ``FIREGRID_RULES``;
``--config FILE``; the environment wins) unless ``--url`` / ``--prefix`` are given. With
``--per-device`` every device publishes through its own connection, signed in as itself with its
password from ``secrets.csv`` in ``--credentials`` (default ``FIREGRID_CREDENTIALS``). With
``--respond`` (or a scenario with a ``respond:`` block) the registry's workers, signed in with
their passwords from the same ``secrets.csv``, act on the alerts of their grids.
Errors print one readable line to stderr and return a non-zero exit code (no traceback): 2 for
configuration (settings, flags, rules file), 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

from devices import ConfigError, FiregridError, SettingsError
from firegrid._argtypes import positive_float, positive_int
from firegrid._clock import WALL_CLOCK, Clock
from rules import RulesConfig, load_rules
from simulators import (
    CONNECT_RATE,
    CredentialsError,
    RunOptions,
    RunSummary,
    ScenarioError,
    builtin_scenarios,
    load_scenario,
    parse_mqtt_url,
    resolve_scenario,
    run_traffic,
    write_world,
)

EXIT_ERROR = 1
EXIT_USAGE = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``simulate`` (with ``world`` and ``run``) to the main CLI's subcommands."""
    simulate = subparsers.add_parser("simulate", help="generate a world or publish simulated device traffic")
    commands = simulate.add_subparsers(dest="simulate_command", metavar="{world,run}")
    commands.required = True

    world = commands.add_parser("world", help="write a registry of the reference district (CONTRACT §1, §3)")
    world.add_argument("--out", type=Path, required=True, help="directory to write the registry into")
    world.add_argument(
        "--scale", type=positive_float, default=1.0, help="size relative to the reference district"
    )
    world.add_argument("--seed", type=int, default=1, help="random seed (same seed, same bytes)")
    world.add_argument("--districts", type=positive_int, default=1, help="number of districts side by side")
    world.set_defaults(func=_world)

    run = commands.add_parser("run", help="publish device traffic (and a scenario) to the broker")
    run.add_argument(
        "--registry", type=Path, required=True, help="registry directory (from 'simulate world')"
    )
    run.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML settings file, as for 'firegrid ingest' (the environment wins)",
    )
    run.add_argument(
        "--url",
        default=None,
        help="broker, mqtt://[user:pass@]host:port (default: FIREGRID_MQTT_URL, else mqtt://127.0.0.1:1883)",
    )
    run.add_argument("--rate", type=positive_float, default=1000.0, help="messages per second (default 1000)")
    run.add_argument(
        "--duration",
        type=positive_float,
        default=None,
        help="seconds (default: what the scenario needs, else 10)",
    )
    shipped = ", ".join(builtin_scenarios())
    run.add_argument("--scenario", default=None, help=f"scenario YAML file, or a shipped one: {shipped}")
    run.add_argument("--qos", type=int, choices=(0, 1), default=0)
    run.add_argument(
        "--time-scale",
        type=positive_float,
        default=None,
        help="simulated seconds per second (default: the scenario's, else 1)",
    )
    run.add_argument(
        "--truth", type=Path, default=None, help="write the scenario's ground truth here (JSON Lines)"
    )
    run.add_argument(
        "--prefix",
        default=None,
        help="prepended to every topic, ending with '/' (default: FIREGRID_TOPIC_PREFIX, else none)",
    )
    run.add_argument("--seed", type=int, default=1)
    run.add_argument(
        "--per-device",
        action="store_true",
        help="one connection per device, signed in as the device with its password from --credentials "
        "(the broker's per-device ACL applies, as in the field)",
    )
    run.add_argument(
        "--respond",
        action="store_true",
        help="the registry's workers act on the alerts of their grids (acknowledge, resolve; supervisors "
        "close), each signed in with its password from --credentials; the scenario's respond: block, "
        "else the defaults (simulators/README.md); what they did goes into --truth",
    )
    run.add_argument(
        "--credentials",
        type=Path,
        default=None,
        help="with --per-device or --respond: directory of 'firegrid credentials' whose secrets.csv holds "
        "the devices' and workers' passwords (default: FIREGRID_CREDENTIALS, else ./credentials)",
    )
    run.add_argument(
        "--connect-rate",
        type=positive_float,
        default=None,
        help=f"with --per-device: new connections per second, at most (default {CONNECT_RATE:g})",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)


def _error(message: str, code: int = EXIT_ERROR) -> int:
    print(f"firegrid simulate: error: {message}", file=sys.stderr)
    return code


CLOCK_LEAD_MS = 5_000
"""A run that follows a scaled service clock whose anchor has passed starts this long after
its start-up (time to sign in), on the clock's mapping."""


@dataclass(frozen=True, slots=True)
class RunSettings:
    url: str
    prefix: str
    rules: RulesConfig
    credentials: Path
    """``--credentials``, else ``FIREGRID_CREDENTIALS`` (used with ``--per-device``)."""
    clock: Clock = WALL_CLOCK
    """ingest's service clock (``FIREGRID_CLOCK_SCALE``, ``FIREGRID_CLOCK_ANCHOR``): a scaled one
    sets the run's time scale and start, so the readings' ``ts`` follow it."""


def run_settings(
    config: Path | None, url: str | None = None, prefix: str | None = None
) -> tuple[str, str, RulesConfig]:
    """The broker URL, topic prefix and rules of a run: ``url`` and ``prefix`` (the flags) when
    given, else the settings ``firegrid ingest`` reads (the environment, then ``config``, then the
    defaults), so a simulator started next to the service reaches the same broker with the same
    prefix, and its ground truth is planned for the same rules (``FIREGRID_RULES``).

    Raises :class:`devices.ConfigError` with one readable line."""
    settings = load_run_settings(config, url, prefix)
    return settings.url, settings.prefix, settings.rules


def load_run_settings(
    config: Path | None, url: str | None = None, prefix: str | None = None, credentials: Path | None = None
) -> RunSettings:
    """:func:`run_settings`, and the credentials directory (``credentials``, the flag, when given)."""
    from firegrid._settings import check_topic_prefix, load_settings  # imports ingest: only when run

    settings = load_settings(config)
    if prefix is not None:
        try:
            check_topic_prefix(prefix)
        except ValueError as exc:
            raise SettingsError(f"invalid --prefix {prefix!r}: {exc}") from exc
    source = "--url" if url is not None else "setting FIREGRID_MQTT_URL"
    url = settings.mqtt_url if url is None else url
    try:
        parse_mqtt_url(url)
    except ValueError as exc:
        raise SettingsError(f"invalid {source}: {exc}") from exc
    rules = load_rules(settings.rules)
    return RunSettings(
        url=url,
        prefix=settings.topic_prefix if prefix is None else prefix,
        rules=rules,
        credentials=settings.credentials if credentials is None else credentials,
        clock=settings.clock,
    )


def _world(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        summary = write_world(args.out, scale=args.scale, seed=args.seed, districts=args.districts)
    except (OSError, ValueError) as exc:
        return _error(str(exc))
    devices = ", ".join(f"{n:,} {kind}" for kind, n in summary.devices.items())
    print(
        f"wrote {summary.path}: {len(summary.districts)} district(s), {summary.grids:,} grids, "
        f"{summary.workers:,} workers ({summary.supervisors} supervisors), {summary.stations:,} stations, "
        f"{summary.sites:,} sites, {devices} in {time.perf_counter() - started:.1f} s"
    )
    return 0


def _print_summary(summary: RunSummary, console: Console) -> None:
    table = Table(title="simulate run", show_header=False)
    table.add_row("sent", f"{summary.sent:,} messages in {summary.seconds:.2f} s")
    table.add_row(
        "rate",
        f"{summary.achieved_rate:,.0f} msg/s achieved of {summary.rate:,.0f} requested "
        f"({(summary.achieved_rate / summary.rate - 1) * 100:+.1f} %)",
    )
    table.add_row("per kind", ", ".join(f"{kind} {n:,}" for kind, n in summary.per_kind.items()) or "-")
    if summary.per_device:
        table.add_row(
            "connections",
            f"{summary.devices_connected:,} devices signed in, each as itself, "
            f"in {summary.connect_seconds:.2f} s",
        )
    if summary.per_device or summary.refused:
        expected = f" ({summary.truth_refused} expected)" if summary.truth_path is not None else ""
        table.add_row(
            "refused", f"{summary.refused:,} messages refused by the broker (not authorised){expected}"
        )
    table.add_row(
        "time scale",
        f"{summary.time_scale:g} (simulated {(summary.sim_end_ms - summary.sim_start_ms) / 1000:,.0f} s)",
    )
    if summary.respond is not None:
        respond = summary.respond
        table.add_row(
            "workers",
            f"{respond.connected:,} of {respond.workers:,} signed in; {respond.actions:,} actions "
            f"({respond.ok:,} ok, {respond.refused:,} refused, {respond.unanswered:,} without result); "
            f"{respond.left_alone:,} events left alone",
        )
    if _failed(summary):
        problems = f"{summary.errors:,} publish errors, {summary.unacked:,} unacknowledged"
        if summary.per_device:
            problems += f", {len(summary.device_failures):,} devices could not publish"
            problems += f", {summary.refused_unexpected:,} refused on their own topic"
        table.add_row("problems", problems)
    if summary.truth_path is not None:
        refused = f", {summary.truth_refused} refused by the broker" if summary.per_device else ""
        if summary.respond is not None:
            refused += f", {summary.respond.actions + summary.respond.left_alone} of the workers"
        table.add_row(
            "truth",
            f"{summary.truth_events} events, {summary.truth_rejects} rejects{refused} → {summary.truth_path}",
        )
    console.print(table)
    for warning in summary.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def _failed(summary: RunSummary) -> bool:
    respond = summary.respond
    workers = respond is not None and bool(respond.failures or respond.unanswered)
    return bool(
        summary.errors or summary.unacked or summary.device_failures or summary.refused_unexpected or workers
    )


def _responds(args: argparse.Namespace) -> bool:
    """Do the workers act in this run: ``--respond``, or a scenario with a ``respond:`` block?"""
    if args.respond:
        return True
    if args.scenario is None:
        return False
    return load_scenario(resolve_scenario(args.scenario)).respond is not None


def _run(args: argparse.Namespace) -> int:
    if not args.per_device and args.connect_rate is not None:
        return _error("--connect-rate is for --per-device runs", EXIT_USAGE)
    try:
        credentials_unused = args.credentials is not None and not args.per_device and not _responds(args)
    except ScenarioError as exc:
        return _error(str(exc).splitlines()[0])
    if credentials_unused:
        return _error(
            "--credentials is for --per-device runs and for workers that respond (--respond)", EXIT_USAGE
        )
    try:
        settings = load_run_settings(args.config, args.url, args.prefix, args.credentials)
    except ConfigError as exc:
        return _error(str(exc), EXIT_USAGE)
    clock = settings.clock
    if not clock.identity and args.time_scale not in (None, clock.scale):
        return _error(
            f"--time-scale {args.time_scale:g} differs from the service clock's "
            f"FIREGRID_CLOCK_SCALE={clock.scale:g}: leave --time-scale out",
            EXIT_USAGE,
        )
    console = Console(stderr=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = (
        signal.signal(signal.SIGTERM, on_signal)
        if threading.current_thread() is threading.main_thread()
        else None
    )
    options = run_options(args, settings, progress=not args.no_progress and console.is_terminal)
    logging.getLogger("simulators").setLevel(logging.ERROR)  # warnings go into the summary
    try:
        summary = run_traffic(options, console=console, stop=stop)
    except CredentialsError as exc:
        return _error(str(exc), EXIT_USAGE)
    except (FiregridError, ScenarioError, ConnectionError, OSError, ValueError) as exc:
        return _error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except KeyboardInterrupt:
        return _error("interrupted")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    _print_summary(summary, Console())
    return EXIT_ERROR if _failed(summary) else 0


def run_options(args: argparse.Namespace, settings: RunSettings, *, progress: bool = False) -> RunOptions:
    """The :class:`RunOptions` of ``simulate run``'s parsed arguments and settings; with a scaled
    service clock, the run follows it (its scale, starting at its anchor or in a few seconds)."""
    clock = settings.clock
    time_scale, start_ms, wall_start_ms = args.time_scale, None, None
    if not clock.identity:
        wall_start_ms = clock.start_wall_ms(int(time.time() * 1000), CLOCK_LEAD_MS)
        time_scale, start_ms = clock.scale, clock.service_ms(wall_start_ms)
    return RunOptions(
        registry=args.registry,
        url=settings.url,
        rate=args.rate,
        duration=args.duration,
        scenario=args.scenario,
        qos=args.qos,
        time_scale=time_scale,
        start_ms=start_ms,
        wall_start_ms=wall_start_ms,
        truth=args.truth,
        prefix=settings.prefix,
        seed=args.seed,
        progress=progress,
        rules=settings.rules,
        credentials=settings.credentials if args.per_device else None,
        connect_rate=args.connect_rate or CONNECT_RATE,
        respond=True if args.respond else None,
        respond_credentials=settings.credentials,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="firegrid")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
