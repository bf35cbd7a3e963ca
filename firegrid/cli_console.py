"""``firegrid console``: the web console (CONTRACT §11), a client of a running ``firegrid ingest``.

The main CLI calls :func:`add_parser`. Configuration errors (a setting, the registry, a port in
use) print one readable line to stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys

from devices import ConfigError

EXIT_CONFIG = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``console`` to the main CLI's subcommands."""
    command = subparsers.add_parser(
        "console",
        help="serve the web console for grid workers, supervisors and stations",
        description=(
            "Serves the console on FIREGRID_CONSOLE_HTTP (default 127.0.0.1:8081). It signs in to the "
            "broker (FIREGRID_MQTT_URL) and to ingest's API (FIREGRID_CONSOLE_API, default "
            "http://127.0.0.1:8080) as the user of FIREGRID_MQTT_URL (firegrid-console), and checks "
            "users' passwords against FIREGRID_CREDENTIALS/passwd. See docs/CONSOLE.md."
        ),
    )
    command.set_defaults(func=_console)


def _console(args: argparse.Namespace) -> int:
    from console import load_console_settings, serve

    try:
        serve(load_console_settings())
    except (ConfigError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"firegrid console: {message}", file=sys.stderr)
        return EXIT_CONFIG
    return 0
