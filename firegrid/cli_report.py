"""``firegrid report --district D --month YYYY-MM --out FILE.html`` (CONTRACT §12): a district's
month as one self-contained HTML file, from the event store alone.

Settings as ``firegrid ingest`` reads them (the environment, or ``--config FILE``):
``FIREGRID_DATA_DIR`` (the event store's file in it), ``FIREGRID_REGISTRY``, ``FIREGRID_INDEX``.
Bad input (a district the registry does not have, a month not ``YYYY-MM`` or in the future, no
data directory or event store, settings that do not load) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Final

from alerts import DB_NAME
from devices import ConfigError, Registry
from firegrid._report import build_report
from firegrid._report_html import render
from firegrid._report_month import Month
from safety import Safety, wall_ms

EXIT_INPUT: Final = 2


class ReportInputError(Exception):
    """Input the report cannot be made from (one readable line)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "report", help="a district's monthly fire-safety report as one self-contained HTML file"
    )
    parser.add_argument("--district", required=True, help="the district, as in the registry")
    parser.add_argument("--month", required=True, help="YYYY-MM (UTC); the running month stops at now")
    parser.add_argument("--out", required=True, type=Path, help="the HTML file to write")
    parser.add_argument(
        "--config", type=Path, help="TOML settings file, as for ingest (the environment wins)"
    )
    parser.set_defaults(func=run)


def _fail(message: str) -> int:
    print(f"firegrid report: {message}", file=sys.stderr)
    return EXIT_INPUT


def event_store(data_dir: Path) -> Path:
    """The event store's file in ``data_dir``; :class:`ReportInputError` when there is none."""
    if not data_dir.is_dir():
        raise ReportInputError(f"data directory {data_dir} not found (FIREGRID_DATA_DIR)")
    path = data_dir / DB_NAME
    if not path.is_file():
        raise ReportInputError(f"no event store in {data_dir} ({DB_NAME}: has firegrid ingest run with it?)")
    return path


def load_registry(path: Path, district: str) -> Registry:
    registry = Registry.load(path)
    if not any(grid.district == district for grid in registry.grids.values()):
        known = sorted({grid.district for grid in registry.grids.values()})
        raise ReportInputError(
            f"the registry {path} has no district {district!r} (it has {', '.join(known)})"
        )
    return registry


def write(path: Path, text: str) -> None:
    """Atomically: a half-written report never replaces a good one."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def run(args: argparse.Namespace) -> int:
    from firegrid._settings import load_settings

    now = wall_ms()
    try:
        month = Month.parse(args.month, now)
        settings = load_settings(args.config)
        db_path = event_store(settings.data_dir)
        registry = load_registry(settings.registry, args.district)
        weights = settings.index_weights
    except (ReportInputError, ConfigError, ValueError, OSError) as exc:
        return _fail(str(exc))
    started = time.perf_counter()
    safety = Safety(db_path, lambda: registry, weights)
    try:
        report = build_report(safety, registry, args.district, month, now)
    except sqlite3.Error as exc:
        return _fail(f"cannot read the event store {db_path}: {exc}")
    finally:
        safety.close()
    try:
        write(args.out, render(report))
    except OSError as exc:
        return _fail(f"cannot write {args.out}: {exc.strerror or exc}")
    print(
        f"{args.out}: {args.district}, {month.label}: {len(report.ranking)} grids, "
        f"{report.total['raised']} events ({time.perf_counter() - started:.1f} s)"
    )
    return 0
