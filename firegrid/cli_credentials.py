"""``firegrid credentials``: the broker's passwd and acl, and the new passwords, from the registry.

The main CLI calls :func:`add_parser`. Errors print one readable line to stderr and exit 2 (no
traceback, and never a password).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

from access import make_credentials
from devices import ConfigError

EXIT_USAGE = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``credentials`` to the main CLI's subcommands."""
    command = subparsers.add_parser(
        "credentials",
        help="write the broker's passwd and acl (and secrets.csv with new passwords) from the registry",
        description=(
            "Writes passwd, acl and secrets.csv into --out (CONTRACT §10). Existing passwords are kept; "
            "secrets.csv (mode 0600) lists only the passwords made by this run."
        ),
    )
    command.add_argument("--registry", type=Path, required=True, help="registry directory")
    command.add_argument("--out", type=Path, required=True, help="directory for passwd, acl and secrets.csv")
    command.add_argument(
        "--rotate",
        nargs="+",
        action="extend",
        default=[],
        metavar="ID",
        help="principals whose passwords to renew",
    )
    command.add_argument(
        "--topic-prefix",
        default=os.environ.get("FIREGRID_TOPIC_PREFIX", ""),
        help="prefix of every topic in the ACL (default: $FIREGRID_TOPIC_PREFIX)",
    )
    command.set_defaults(func=_credentials)


def _credentials(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    # A batch run: the cyclic GC, scanning the registry's million rows over and over while they
    # load, costs a third of the load time (~6 s of 19 at 1,000,000 devices).
    collecting = gc.isenabled()
    gc.disable()
    try:
        summary = make_credentials(
            args.registry, args.out, rotate=args.rotate, topic_prefix=args.topic_prefix
        )
    except (ConfigError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"firegrid credentials: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if collecting:
            gc.enable()
    print(f"{summary} in {time.perf_counter() - started:.1f} s")
    return 0
