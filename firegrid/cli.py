"""The `firegrid` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from devices import ConfigError

log = logging.getLogger("firegrid")

# Sub-command modules that add their own parsers: each has add_parser(subparsers).
_COMMAND_MODULES = (
    "firegrid.cli_simulate",
    "firegrid.cli_dashboards",
    "firegrid.cli_demo",
    "firegrid.cli_credentials",
    "firegrid.cli_console",
    "firegrid.cli_report",
)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise


def _ingest(args: argparse.Namespace) -> int:
    from firegrid._service import EXIT_CONFIG, IngestService
    from firegrid._settings import load_settings

    try:
        settings = load_settings(args.config)
        service = IngestService(settings)
    except (ConfigError, OSError) as exc:
        print(f"firegrid: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return service.run()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="firegrid", description=__doc__)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ingest = sub.add_parser("ingest", help="run the ingest service (MQTT → InfluxDB, rules, alerts)")
    ingest.add_argument("--config", type=Path, help="TOML settings file (the environment wins)")
    ingest.set_defaults(func=_ingest)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
