"""Dashboard invariants, provisioning, the committed JSON, pictures and the dashboards CLI.

``dashboards push`` talks to a small fake Grafana HTTP API started on 127.0.0.1 by the test:
no Grafana server can run here, and that API is the one part allowed to be faked.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

import dashboards
from firegrid import cli_dashboards

ROOT = Path(__file__).resolve().parents[2]
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
TAGGED = {  # measurement -> the template variables its tags allow
    "smoke": {"district", "grid"},
    "electrical": {"district", "grid"},
    "water": {"district", "grid"},
    "patrol": {"district", "grid"},
    "events": {"district", "grid"},
    "fleet": {"district"},
    "ingest_stats": {"instance"},
    "grid_index": {"district", "grid"},
    "grid_sla": {"district", "grid"},
    "rejects": set(),
}


@pytest.fixture(scope="module")
def built() -> dict[str, dict[str, Any]]:
    return dashboards.all_dashboards()


def _panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    return list(dashboards.iter_panels(data))


def test_six_dashboards_with_unique_uids(built: dict[str, dict[str, Any]]) -> None:
    uids = [data["uid"] for data in built.values()]
    assert len(uids) == len(set(uids)) == 6
    titles = {data["title"] for data in built.values()}
    assert titles == {
        "Fire-station overview",
        "Electrical",
        "Water",
        "Patrol",
        "Ingest health",
        "Grid safety",
    }
    for uid, data in built.items():
        assert data["uid"] == uid
        assert re.fullmatch(r"[a-z0-9-]{1,40}", uid)


def test_panel_ids_are_unique_and_set(built: dict[str, dict[str, Any]]) -> None:
    for uid, data in built.items():
        ids = [panel.get("id") for panel in _panels(data)]
        assert all(isinstance(i, int) and i > 0 for i in ids), (uid, ids)
        assert len(ids) == len(set(ids)), uid


def test_grid_positions_fit_and_do_not_overlap(built: dict[str, dict[str, Any]]) -> None:
    for uid, data in built.items():
        cells: dict[tuple[int, int], str] = {}
        for panel in _panels(data):
            pos = panel["gridPos"]
            assert pos["w"] > 0 and pos["h"] > 0, (uid, panel["title"])
            assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, (uid, panel["title"], pos)
            assert pos["y"] >= 0
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    other = cells.setdefault((x, y), panel["title"])
                    assert other == panel["title"], f"{uid}: {panel['title']!r} overlaps {other!r} at {x},{y}"


def test_every_target_uses_the_provisioned_datasource(built: dict[str, dict[str, Any]]) -> None:
    provisioned = yaml.safe_load((PROVISIONING / "datasources" / "firegrid.yaml").read_text())
    (source,) = provisioned["datasources"]
    assert source["uid"] == dashboards.DATASOURCE_UID and source["type"] == "influxdb"
    ref = {"type": "influxdb", "uid": dashboards.DATASOURCE_UID}
    count = 0
    for uid, data in built.items():
        for panel in _panels(data):
            assert panel.get("targets"), f"{uid}: {panel['title']} has no query"
            assert panel["datasource"] == ref, (uid, panel["title"])
        for panel, target in dashboards.iter_targets(data):
            assert target["datasource"] == ref, (uid, panel["title"])
            assert target["rawQuery"] is True and target["resultFormat"] in ("time_series", "table")
            assert target["refId"] and target["query"].startswith("SELECT ")
            count += 1
        for variable in data["templating"]["list"]:
            assert variable["datasource"] == ref, (uid, variable["name"])
    assert count >= 30


def test_template_variables_are_used_in_every_query(built: dict[str, dict[str, Any]]) -> None:
    for uid, data in built.items():
        names = {v["name"] for v in data["templating"]["list"]}
        if uid != "firegrid-ingest":
            assert names == {"district", "grid"}, uid
        for panel, target in dashboards.iter_targets(data):
            query = target["query"]
            measurement = re.search(r'FROM "(\w+)"', query)
            assert measurement, query
            wanted = TAGGED[measurement.group(1)]
            assert wanted <= names, (uid, panel["title"])
            for name in wanted:
                assert f'"{name}" =~ /^${name}$/' in query, (uid, panel["title"], name)
            assert "$timeFilter" in query, (uid, panel["title"])


def test_queries_interpolate_completely(built: dict[str, dict[str, Any]]) -> None:
    variables: dict[str, list[str] | None] = {
        "district": ["D01"],
        "grid": ["D01-G00", "D01.G1"],
        "instance": None,
    }
    for data in built.values():
        for _, target in dashboards.iter_targets(data):
            query = dashboards.interpolate(
                target["query"], variables=variables, time_from_ms=1000, time_to_ms=2000, interval_ms=60_000
            )
            assert not re.search(r"\$\w", query), query


def test_interpolate_like_grafana() -> None:
    query = 'SELECT max("x") FROM "m" WHERE $timeFilter AND "grid" =~ /^$grid$/ GROUP BY time($__interval)'
    out = dashboards.interpolate(
        query, variables={"grid": ["D01-G0.1", "D02"]}, time_from_ms=5, time_to_ms=9, interval_ms=30_000
    )
    assert out == (
        'SELECT max("x") FROM "m" WHERE time >= 5ms and time <= 9ms AND "grid" =~ /^(D01-G0\\.1|D02)$/ '
        "GROUP BY time(30s)"
    )
    assert (
        dashboards.interpolate(
            "$grid ${grid} [[grid]] $__interval_ms",
            variables={"grid": None},
            time_from_ms=0,
            time_to_ms=1,
            interval_ms=1500,
        )
        == ".* .* .* 1500"
    )
    assert [dashboards.format_interval(ms) for ms in (500, 10_000, 300_000, 3_600_000, 86_400_000, 1500)] == [
        "500ms",
        "10s",
        "5m",
        "1h",
        "1d",
        "1500ms",
    ]
    with pytest.raises(KeyError, match="unknown template variable"):
        dashboards.interpolate("$nope", variables={}, time_from_ms=0, time_to_ms=1, interval_ms=1)


def test_thresholds_of_the_contract(built: dict[str, dict[str, Any]]) -> None:
    def steps(uid: str, title: str) -> list[float]:
        (panel,) = [p for p in _panels(built[uid]) if p["title"] == title]
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults["custom"]["thresholdsStyle"]["mode"] != "off"
        return [s["value"] for s in defaults["thresholds"]["steps"] if s["value"] is not None]

    assert 300 in steps("firegrid-electrical", "Residual current per site (max)")
    assert 70 in steps("firegrid-electrical", "Cable temperature per site (max)")
    assert steps("firegrid-water", "Pressure per monitor") == [0.10, 1.20]


def test_provisioning_points_at_the_generated_files() -> None:
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "firegrid.yaml").read_text())
    assert provider["apiVersion"] == 1
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    # volume "host:container[:mode]" → {container: host}
    mounts = {
        container: host
        for host, container, *_ in (str(v).split(":") for v in compose["services"]["grafana"]["volumes"])
    }
    source = ROOT / mounts[entry["options"]["path"]]
    assert source.resolve() == dashboards.GENERATED_DIR
    assert sorted(p.stem for p in source.glob("*.json")) == sorted(dashboards.DASHBOARDS)
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "firegrid.yaml").read_text())
    assert datasources["apiVersion"] == 1
    (source_def,) = datasources["datasources"]
    assert source_def["jsonData"]["version"] == "InfluxQL"
    assert source_def["jsonData"]["dbName"] == "${FIREGRID_INFLUX_DB}"
    assert source_def["url"] == "${FIREGRID_INFLUX_URL}"
    text = (PROVISIONING / "datasources" / "firegrid.yaml").read_text()
    assert (
        "httpHeaderName1: Authorization" in text
        and "httpHeaderValue1: Token ${FIREGRID_INFLUX_TOKEN}" in text
    )


def test_committed_json_equals_a_fresh_build(tmp_path: Path) -> None:
    written = dashboards.build(tmp_path)
    assert sorted(p.name for p in written) == sorted(p.name for p in dashboards.GENERATED_DIR.glob("*.json"))
    for path in written:
        committed = dashboards.GENERATED_DIR / path.name
        assert committed.read_text() == path.read_text(), (
            f"{committed} is stale: run `firegrid dashboards build --images`"
        )
        assert json.loads(path.read_text())["uid"] == path.stem


def test_layout_pictures_exist_and_are_linked(tmp_path: Path) -> None:
    readme = (ROOT / "docs" / "dashboards" / "README.md").read_text()
    for uid in dashboards.DASHBOARDS:
        assert (ROOT / "docs" / "dashboards" / f"{uid}.png").is_file(), uid
        assert f"({uid}.png)" in readme, uid
    out = dashboards.render_layout(dashboards.GENERATED_DIR / "firegrid-overview.json", tmp_path / "o.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the CLI ----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="firegrid")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_dashboards.add_parser(sub)
    return parser


def _run(*argv: str) -> int:
    args = _parser().parse_args(list(argv))
    code: int = args.func(args)
    return code


def test_cli_build_writes_json_and_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        _run(
            "dashboards",
            "build",
            "--out",
            str(tmp_path / "json"),
            "--images",
            "--images-dir",
            str(tmp_path / "png"),
        )
        == 0
    )
    assert sorted(p.stem for p in (tmp_path / "json").glob("*.json")) == sorted(dashboards.DASHBOARDS)
    assert sorted(p.stem for p in (tmp_path / "png").glob("*.png")) == sorted(dashboards.DASHBOARDS)
    assert "firegrid-overview.json" in capsys.readouterr().out


def test_cli_build_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert _run("dashboards", "build", "--out", str(blocker / "sub")) == 1
    err = capsys.readouterr().err
    assert err.startswith("firegrid dashboards: build failed:") and err.count("\n") == 1
    assert "Traceback" not in err


class FakeGrafana(BaseHTTPRequestHandler):
    """Just enough of Grafana's HTTP API for ``dashboards push``."""

    token = "glsa_test"
    requests: ClassVar[list[tuple[str, str, Any]]] = []
    folders: ClassVar[list[dict[str, Any]]] = []
    datasources: ClassVar[set[str]] = set()

    def log_message(self, format: str, *args: Any) -> None:  # silence the test output
        pass

    def _reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body: Any = json.loads(self.rfile.read(length)) if length else {}
        self.requests.append((method, self.path, body))
        if self.headers.get("Authorization") != f"Bearer {self.token}":
            self._reply(401, {"message": "invalid API key"})
        elif method == "GET" and self.path.startswith("/api/folders"):
            self._reply(200, self.folders)
        elif method == "POST" and self.path == "/api/folders":
            folder = {"id": len(self.folders) + 1, "uid": f"f{len(self.folders) + 1}", "title": body["title"]}
            self.folders.append(folder)
            self._reply(200, folder)
        elif method == "POST" and self.path == "/api/dashboards/db":
            uid = body["dashboard"]["uid"]
            self._reply(200, {"status": "success", "uid": uid, "url": f"/d/{uid}/x", "version": 1})
        elif method == "GET" and self.path.startswith("/api/datasources/uid/"):
            uid = self.path.rsplit("/", 1)[-1]
            if uid in self.datasources:
                self._reply(200, {"uid": uid, "type": "influxdb"})
            else:
                self._reply(404, {"message": "Data source not found"})
        else:
            self._reply(404, {"message": "Not found"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")


@pytest.fixture
def grafana() -> Iterator[str]:
    FakeGrafana.requests = []
    FakeGrafana.folders = [{"id": 7, "uid": "other", "title": "other"}]
    FakeGrafana.datasources = {dashboards.DATASOURCE_UID}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGrafana)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_push_creates_the_folder_and_overwrites_every_dashboard(
    grafana: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run("dashboards", "push", "--url", grafana, "--token", FakeGrafana.token, "--folder", "Fire") == 0
    posts = [(path, body) for method, path, body in FakeGrafana.requests if method == "POST"]
    assert posts[0] == ("/api/folders", {"title": "Fire"})
    pushed = [body for path, body in posts if path == "/api/dashboards/db"]
    assert [b["dashboard"]["uid"] for b in pushed] == list(dashboards.DASHBOARDS)
    assert all(b["folderUid"] == "f2" and b["overwrite"] is True for b in pushed)
    assert pushed[0]["dashboard"] == dashboards.dashboard_json("firegrid-overview")
    captured = capsys.readouterr()
    assert f"{len(dashboards.DASHBOARDS)} dashboards in folder 'Fire'" in captured.out and captured.err == ""

    # A second push reuses the folder.
    FakeGrafana.requests = []
    assert _run("dashboards", "push", "--url", grafana, "--token", FakeGrafana.token, "--folder", "Fire") == 0
    assert not [p for m, p, _ in FakeGrafana.requests if m == "POST" and p == "/api/folders"]


def test_push_warns_when_the_datasource_is_missing(grafana: str, capsys: pytest.CaptureFixture[str]) -> None:
    FakeGrafana.datasources = set()
    assert _run("dashboards", "push", "--url", grafana, "--token", FakeGrafana.token) == 0
    err = capsys.readouterr().err
    assert "no datasource with uid 'firegrid-influxdb'" in err and err.count("\n") == 1


def test_push_with_a_bad_token_is_one_readable_line(grafana: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("dashboards", "push", "--url", grafana, "--token", "wrong") == 1
    err = capsys.readouterr().err
    assert err.startswith("firegrid dashboards: Grafana refused the token (401)")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_push_to_nothing_is_one_readable_line(capsys: pytest.CaptureFixture[str]) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGrafana)
    port = server.server_address[1]
    server.server_close()  # nothing listens on this port any more
    assert (
        _run("dashboards", "push", "--url", f"http://127.0.0.1:{port}", "--token", "t", "--timeout", "3") == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("firegrid dashboards: cannot reach Grafana:") and err.count("\n") == 1
