"""docker-compose.yml, the Dockerfile and .env.example: checked without a Docker engine."""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

import dashboards

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = (  # CONTRACT §9
    "FIREGRID_MQTT_URL",
    "FIREGRID_INFLUX_URL",
    "FIREGRID_INFLUX_DB",
    "FIREGRID_INFLUX_TOKEN",
    "FIREGRID_INFLUX_USER",
    "FIREGRID_INFLUX_PASSWORD",
    "FIREGRID_REGISTRY",
    "FIREGRID_DATA_DIR",
    "FIREGRID_HTTP",
)
LONG_RUNNING = ("mosquitto", "influxdb", "grafana", "firegrid")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in service.get("ports", [])}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> source (host path or volume name), for the short volume syntax."""
    out = {}
    for spec in service.get("volumes", []):
        source, target, *_ = str(spec).split(":")
        out[target] = source
    return out


def test_services_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"mosquitto", "influxdb", "grafana", "firegrid", "world", "simulator"}
    assert services["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert services["influxdb"]["image"] == "influxdb:1.8"
    assert services["firegrid"]["build"] == "."
    assert services["firegrid"]["command"] == ["firegrid", "ingest"]


def test_grafana_image_matches_the_sdk_build(compose: dict[str, Any]) -> None:
    image = compose["services"]["grafana"]["image"]
    repo, _, tag = image.partition(":")
    assert repo == "grafana/grafana-oss" and re.fullmatch(r"\d+\.\d+\.\d+", tag), image
    sdk = metadata.version("grafana-foundation-sdk")
    assert sdk.endswith(f"!{tag}"), f"grafana-foundation-sdk {sdk} is not the build for Grafana {tag}"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"grafana-foundation-sdk=={sdk}" in pyproject["project"]["dependencies"]


def test_ports(compose: dict[str, Any]) -> None:
    expected = {"mosquitto": {1883}, "influxdb": {8086}, "grafana": {3000}, "firegrid": {8080}}
    for name, ports in expected.items():
        assert _container_ports(compose["services"][name]) == ports, name


def test_named_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for service in compose["services"].values():
        for source in _mounts(service).values():
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared
    assert _mounts(compose["services"]["influxdb"])["/var/lib/influxdb"] == "influxdb-data"
    assert _mounts(compose["services"]["mosquitto"])["/mosquitto/data"] == "mosquitto-data"
    assert _mounts(compose["services"]["grafana"])["/var/lib/grafana"] == "grafana-data"
    firegrid = _mounts(compose["services"]["firegrid"])
    assert firegrid["/registry"] == "registry" and firegrid["/data"] == "firegrid-data"


def test_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for source in _mounts(service).values():
            if source.startswith("."):
                assert (ROOT / source).exists(), source
    mosquitto = compose["services"]["mosquitto"]
    assert _mounts(mosquitto)["/mosquitto/config/mosquitto.conf"] == "./deploy/mosquitto.conf"
    assert "/mosquitto/config/mosquitto.conf" in mosquitto["command"]
    # The conf enables persistence without a location: the working directory must be the volume.
    assert "persistence true" in (ROOT / "deploy/mosquitto.conf").read_text()
    assert mosquitto["working_dir"] == "/mosquitto/data"


def test_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in LONG_RUNNING:
        check = services[name]["healthcheck"]
        assert check["test"][0] == "CMD" and check["interval"] and check["retries"] >= 3, name
    assert "/healthz" in " ".join(services["firegrid"]["healthcheck"]["test"])
    assert "127.0.0.1:8080" in " ".join(services["firegrid"]["healthcheck"]["test"])
    assert services["firegrid"]["environment"]["FIREGRID_HTTP"] == "0.0.0.0:8080"
    assert "/ping" in " ".join(services["influxdb"]["healthcheck"]["test"])
    assert "/api/health" in " ".join(services["grafana"]["healthcheck"]["test"])
    for name, service in services.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)


def test_firegrid_settings(compose: dict[str, Any]) -> None:
    for name in ("firegrid", "simulator"):
        env = compose["services"][name]["environment"]
        assert set(SETTINGS) <= set(env), name
        assert "mosquitto:1883" in env["FIREGRID_MQTT_URL"]
        assert "influxdb:8086" in env["FIREGRID_INFLUX_URL"]
        assert env["FIREGRID_REGISTRY"] == "/registry"
        # Credentials are passed through only when set, never as empty strings.
        for secret in ("FIREGRID_INFLUX_TOKEN", "FIREGRID_INFLUX_USER", "FIREGRID_INFLUX_PASSWORD"):
            assert env[secret] is None


def test_simulator_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("world", "simulator"):
        assert services[name]["profiles"] == ["simulator"]
    assert "firegrid simulate world --out /registry" in " ".join(services["world"]["command"])
    assert "firegrid simulate run --registry /registry" in " ".join(services["simulator"]["command"])
    assert services["simulator"]["depends_on"]["world"]["condition"] == "service_completed_successfully"
    assert services["firegrid"]["depends_on"]["world"]["required"] is False
    for name in LONG_RUNNING:
        assert "profiles" not in services[name]


def test_grafana_mounts_provisioning_and_generated_dashboards(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/firegrid.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert (ROOT / mounts[path]).resolve() == dashboards.GENERATED_DIR
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(path + "/") and (dashboards.GENERATED_DIR / Path(home).name).is_file()
    for variable in ("FIREGRID_INFLUX_URL", "FIREGRID_INFLUX_DB"):
        assert variable in grafana["environment"]  # read by the datasource provisioning file


def test_env_example_covers_compose_variables(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    referenced = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", text))
    passed_through = {
        key
        for service in compose["services"].values()
        for key, value in (service.get("environment") or {}).items()
        if value is None
    }
    assert referenced | passed_through <= listed, sorted((referenced | passed_through) - listed)
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", text))
    assert required <= set(re.findall(r"^([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))


# --- the Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _pip_installs(command: str) -> list[list[str]]:
    """The arguments of every ``pip install`` in a shell command line."""
    installs = []
    for part in re.split(r"&&|;|\|\|", command):
        words = shlex.split(part)
        for i in range(len(words) - 1):
            if words[i].endswith("pip") and words[i + 1] == "install":
                installs.append(words[i + 2 :])
    return installs


def _targets(args: list[str]) -> list[str]:
    """The local projects a pip install names (not options, not packages like ``pip`` itself)."""
    return [a for a in args if a.startswith((".", "/"))]


def _make_setup_installs() -> list[list[str]]:
    makefile = (ROOT / "Makefile").read_text()
    lines = [
        line.strip() for line in makefile.splitlines() if line.startswith("\t") and "pip install" in line
    ]
    return [args for line in lines for args in _pip_installs(line.replace("$(BIN)/", ""))]


def test_dockerfile_installs_the_package_make_setup_installs() -> None:
    instructions = dockerfile_instructions((ROOT / "Dockerfile").read_text())
    keywords = [k for k, _ in instructions]
    assert keywords[0] == "FROM"
    base = instructions[0][1]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    version = re.match(r"python:3\.(\d+)", base)
    assert version is not None and int(version[1]) >= int(requires.split(".")[-1])

    make_targets = {_targets(args)[0].split("[")[0] for args in _make_setup_installs() if _targets(args)}
    assert make_targets == {"."}, "make setup installs the project of this pyproject"

    workdir, copied_to, installed = "/", None, []
    for keyword, args in instructions:
        if keyword == "WORKDIR":
            workdir = args
        elif keyword == "COPY":
            source, dest = args.split()
            if source == ".":
                copied_to = dest
        elif keyword == "RUN":
            for pip_args in _pip_installs(args):
                installed += [(workdir, t) for t in _targets(pip_args)]
    assert copied_to == "/src"
    assert ("/src", ".") in installed, installed
    assert not [t for _, t in installed if t.startswith(".[")], "the image installs no extras"
    cmd = dict(instructions)["CMD"]
    assert cmd == '["firegrid", "ingest"]'
    assert dict(instructions)["EXPOSE"] == "8080"


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").strip("/")
        candidates = [pattern, pattern.removeprefix("**/")] if pattern.startswith("**/") else [pattern]
        for candidate in candidates:
            anywhere = candidate != pattern
            if any(
                fnmatch.fnmatchcase(p, candidate)
                or (anywhere and fnmatch.fnmatchcase(p.split("/")[-1], candidate))
                for p in prefixes
            ):
                ignored = not negate
    return ignored


def _copy_tree(dest: Path, keep: Any) -> None:
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT).as_posix()
        if path.is_file() and keep(rel):
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _wheel(source: Path, out: Path) -> dict[str, bytes]:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return {n: archive.read(n) for n in archive.namelist() if not n.endswith("/RECORD")}


def test_docker_build_context_builds_the_same_wheel(tmp_path: Path) -> None:
    """The image's context (.dockerignore applied) builds the wheel the source tree builds."""
    patterns = _dockerignore()
    for needed in ("pyproject.toml", "README.md", "Makefile"):
        assert not _ignored(needed, patterns), needed
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for package in include["include"]:
        assert not _ignored(package.rstrip("*"), patterns), package

    artifacts = (".git/", ".venv/", "build/", ".mypy_cache/", ".ruff_cache/", ".pytest_cache/")

    def is_source(rel: str) -> bool:
        return not rel.startswith(artifacts) and ".egg-info/" not in rel and "__pycache__" not in rel

    _copy_tree(tmp_path / "context", lambda rel: is_source(rel) and not _ignored(rel, patterns))
    _copy_tree(tmp_path / "tree", is_source)
    from_context = _wheel(tmp_path / "context", tmp_path / "wheel-context")
    from_tree = _wheel(tmp_path / "tree", tmp_path / "wheel-tree")
    assert sorted(from_context) == sorted(from_tree)
    assert from_context == from_tree


def test_dockerignore_matcher() -> None:
    patterns = [".venv", "**/__pycache__", "*.egg-info", "tests", "!tests/keep.txt"]
    assert _ignored(".venv/bin/python", patterns)
    assert _ignored("devices/__pycache__/x.pyc", patterns)
    assert _ignored("firegrid.egg-info/PKG-INFO", patterns)
    assert _ignored("tests/unit/test_x.py", patterns)
    assert not _ignored("tests/keep.txt", patterns)
    assert not _ignored("devices/_kind.py", patterns)
