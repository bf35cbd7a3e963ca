"""``firegrid dashboards build`` and ``firegrid dashboards push``.

The main CLI calls :func:`add_parser` with its subparsers; every command returns an exit code
and reports failures as one readable line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dashboards

DEFAULT_FOLDER = "firegrid"
DEFAULT_IMAGES_DIR = Path("docs/dashboards")


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "dashboards", help="Grafana dashboards: regenerate the JSON, push to Grafana"
    )
    commands = parser.add_subparsers(dest="dashboards_command", metavar="{build,push}", required=True)

    build = commands.add_parser("build", help="regenerate the dashboard JSON (and layout pictures)")
    build.add_argument(
        "--out", type=Path, default=None, help=f"output directory (default: {dashboards.GENERATED_DIR})"
    )
    build.add_argument("--images", action="store_true", help="also draw each dashboard's layout as a PNG")
    build.add_argument(
        "--images-dir",
        type=Path,
        default=DEFAULT_IMAGES_DIR,
        help="where --images writes (default: %(default)s)",
    )
    build.set_defaults(func=run_build)

    push = commands.add_parser("push", help="create or update the dashboards in an existing Grafana")
    push.add_argument("--url", required=True, help="Grafana base URL, e.g. http://grafana:3000")
    push.add_argument("--token", required=True, help="a service-account token with dashboard write access")
    push.add_argument(
        "--folder", default=DEFAULT_FOLDER, help="folder title (created if missing; default: %(default)s)"
    )
    push.add_argument("--timeout", type=float, default=10.0, help=argparse.SUPPRESS)
    push.set_defaults(func=run_push)


def _fail(message: str) -> int:
    print(f"firegrid dashboards: {message}", file=sys.stderr)
    return 1


def run_build(args: argparse.Namespace) -> int:
    try:
        written = dashboards.build(args.out)
        for path in written:
            print(path)
        if args.images:
            for path in written:
                print(dashboards.render_layout(path, Path(args.images_dir) / f"{path.stem}.png"))
    except (OSError, RuntimeError) as exc:
        return _fail(f"build failed: {exc}")
    return 0


def _grafana_error(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if status in (401, 403):
        return f"Grafana refused the token ({status}): {message}"
    if status is not None:
        return f"Grafana answered {status}: {message}"
    return " ".join(f"cannot reach Grafana: {message}".split())


@dataclass(frozen=True)
class PushResult:
    urls: list[str]
    datasource_found: bool


def push(url: str, token: str, folder: str, timeout: float = 10.0) -> PushResult:
    """Create the folder if needed and overwrite every dashboard in it."""
    import grafana_client

    client: Any = grafana_client
    api = client.GrafanaApi.from_url(url=url, credential=token, timeout=timeout)
    existing = [f for f in api.folder.get_all_folders() if f.get("title") == folder]
    folder_uid = existing[0]["uid"] if existing else api.folder.create_folder(folder)["uid"]
    urls = []
    for uid, data in dashboards.all_dashboards().items():
        answer = api.dashboard.update_dashboard(
            {
                "dashboard": data,
                "folderUid": folder_uid,
                "overwrite": True,
                "message": "firegrid dashboards push",
            }
        )
        urls.append(str(answer.get("url") or uid))
    try:
        api.datasource.get_datasource_by_uid(dashboards.DATASOURCE_UID)
    except Exception as exc:
        if getattr(exc, "status_code", None) != 404:
            raise
        return PushResult(urls, datasource_found=False)
    return PushResult(urls, datasource_found=True)


def run_push(args: argparse.Namespace) -> int:
    try:
        result = push(args.url.rstrip("/"), args.token, args.folder, args.timeout)
    except Exception as exc:  # any failure becomes one readable line
        return _fail(_grafana_error(exc))
    for pushed in result.urls:
        print(f"pushed {pushed}")
    print(f"{len(result.urls)} dashboards in folder {args.folder!r}")
    if not result.datasource_found:
        print(
            f"warning: Grafana has no datasource with uid {dashboards.DATASOURCE_UID!r}, which every panel "
            "reads; add it (deploy/grafana/provisioning/datasources/firegrid.yaml)",
            file=sys.stderr,
        )
    return 0
