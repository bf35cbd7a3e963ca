"""``firegrid demo``: broker, InfluxDB, ingest and simulator on one machine, with a live alert feed.

The main CLI calls :func:`add_parser`. Errors print one readable line to stderr and return a
non-zero exit code (no traceback).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from firegrid._argtypes import port, positive_float
from simulators import builtin_scenarios


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``demo`` to the main CLI's subcommands."""
    demo = subparsers.add_parser(
        "demo",
        help="run broker, InfluxDB, ingest, the console and a simulated district, with a live feed of alerts",
        description="Start mosquitto, influxd, firegrid ingest and firegrid console in DIR, generate a "
        "world, run the simulator's demo scenario against it and show the alerts as they arrive; "
        "prints the console's URL and two sign-ins. Ctrl-C stops everything; the data stays in DIR.",
    )
    demo.add_argument(
        "--dir", type=Path, default=Path(".demo"), help="where everything lives (default: %(default)s)"
    )
    demo.add_argument(
        "--scale",
        type=positive_float,
        default=0.1,
        help="world size relative to the reference district (default: %(default)s)",
    )
    demo.add_argument("--seed", type=int, default=1, help="world and traffic seed (default: %(default)s)")
    demo.add_argument(
        "--rate",
        type=positive_float,
        default=500.0,
        help="simulated messages per second (default: %(default)g)",
    )
    demo.add_argument(
        "--duration",
        type=positive_float,
        default=None,
        help="stop after this many seconds (default: at Ctrl-C)",
    )
    shipped = ", ".join(builtin_scenarios())
    demo.add_argument(
        "--scenario", default="demo", help=f"scenario file or shipped name ({shipped}; default: %(default)s)"
    )
    demo.add_argument("--no-live", action="store_true", help="plain lines instead of the live screen")
    for name, usual, what in (
        ("mqtt", 1883, "the broker"),
        ("influx", 8086, "InfluxDB"),
        ("http", 8080, "the ingest HTTP API"),
        ("console", 8081, "the web console"),
    ):
        demo.add_argument(
            f"--{name}-port",
            type=port,
            default=None,
            help=f"port of {what} (default: {usual} if free, else any free port)",
        )
    demo.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from firegrid._demo import DemoOptions, run_demo

    logging.getLogger("simulators").setLevel(logging.ERROR)  # warnings go into the summary
    options = DemoOptions(
        dir=args.dir,
        scale=args.scale,
        seed=args.seed,
        rate=args.rate,
        duration=args.duration,
        scenario=args.scenario,
        live=not args.no_live,
        mqtt_port=args.mqtt_port,
        influx_port=args.influx_port,
        http_port=args.http_port,
        console_port=args.console_port,
    )
    return run_demo(options)
