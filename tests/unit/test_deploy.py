"""docker-compose.yml, the Dockerfile and .env.example: checked without a Docker engine.

The broker's side (deploy/mosquitto.conf with the compose file's credentials and TLS files on a
real mosquitto, and the compose services' scripts run for real) is
tests/integration/test_deploy_broker.py, which uses the helpers here.
"""

from __future__ import annotations

import fnmatch
import functools
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
from access import SERVICE_ACCOUNTS

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
ONE_SHOT = ("tls", "credentials", "world")
COMPOSE_UID_MOSQUITTO = 1883
"""uid and gid of user ``mosquitto`` in the eclipse-mosquitto image (its Dockerfile's adduser)."""
MQTT_ACCOUNTS = {"firegrid": "firegrid", "simulator": "firegrid-sim"}
"""The services that connect to the broker, and the service account each signs in as."""


@functools.cache
def _compose_text() -> str:
    return (ROOT / "docker-compose.yml").read_text()


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(_compose_text())
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def unescape(text: str) -> str:
    """A compose string as the container gets it (``$$`` is a literal ``$``), for strings that
    compose does not interpolate: every ``$`` doubled."""
    assert "$" not in text.replace("$$", ""), text
    return text.replace("$$", "$")


def compose_script(service: str) -> str:
    """The shell script of a service whose entrypoint is ``["sh", "-c", SCRIPT, NAME, ...]``."""
    entrypoint = load_compose()["services"][service]["entrypoint"]
    assert entrypoint[:2] == ["sh", "-c"], (service, entrypoint)
    return unescape(str(entrypoint[2]))


def compose_healthcheck_command(service: str) -> str:
    """The shell command of a ``["CMD", "sh", "-c", COMMAND]`` health check."""
    test = load_compose()["services"][service]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "sh", "-c"], test
    return unescape(str(test[3]))


def volume_mounts(service: str) -> dict[str, str]:
    """container path -> source of a service's volumes."""
    return _mounts(load_compose()["services"][service])


def _read_only(service: dict[str, Any]) -> set[str]:
    """The container paths a service mounts read-only."""
    return {str(spec).split(":")[1] for spec in service.get("volumes", []) if str(spec).endswith(":ro")}


def mosquitto_conf() -> list[list[str]]:
    """The directives of deploy/mosquitto.conf (comments and blank lines dropped), split in words."""
    lines = (ROOT / "deploy/mosquitto.conf").read_text().splitlines()
    return [line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def mosquitto_conf_paths() -> dict[str, str]:
    """directive -> absolute path, for every directive of deploy/mosquitto.conf naming a file."""
    return {words[0]: words[1] for words in mosquitto_conf() if len(words) == 2 and words[1].startswith("/")}


def firegrid_uid() -> int:
    """The uid the Dockerfile gives the firegrid user."""
    match = re.search(r"useradd[^\n]*--uid (\d+)[^\n]* firegrid", (ROOT / "Dockerfile").read_text())
    assert match, "the Dockerfile's useradd of firegrid"
    return int(match[1])


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
    assert set(services) == {*LONG_RUNNING, *ONE_SHOT, "simulator"}
    assert services["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert services["influxdb"]["image"] == "influxdb:1.8"
    assert services["firegrid"]["build"] == "."
    assert services["firegrid"]["command"] == ["firegrid", "ingest"]
    for name in (*ONE_SHOT, "simulator"):
        assert services[name]["image"] == services["firegrid"]["image"], name
        assert services[name]["build"] == ".", name
    for name in ONE_SHOT:
        assert services[name].get("restart", "no") == "no", name


def test_grafana_image_matches_the_sdk_build(compose: dict[str, Any]) -> None:
    image = compose["services"]["grafana"]["image"]
    repo, _, tag = image.partition(":")
    assert repo == "grafana/grafana-oss" and re.fullmatch(r"\d+\.\d+\.\d+", tag), image
    sdk = metadata.version("grafana-foundation-sdk")
    assert sdk.endswith(f"!{tag}"), f"grafana-foundation-sdk {sdk} is not the build for Grafana {tag}"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"grafana-foundation-sdk=={sdk}" in pyproject["project"]["dependencies"]


def test_ports(compose: dict[str, Any]) -> None:
    expected = {"mosquitto": {1883, 8883}, "influxdb": {8086}, "grafana": {3000}, "firegrid": {8080}}
    for name, ports in expected.items():
        assert _container_ports(compose["services"][name]) == ports, name
    # InfluxDB 1.8 runs without authentication: published on the host's loopback only
    (influx,) = compose["services"]["influxdb"]["ports"]
    assert str(influx).startswith("127.0.0.1:"), influx
    for name in ONE_SHOT:
        assert "ports" not in compose["services"][name], name


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


# --- broker security: credentials and TLS (CONTRACT §10, docs/SECURITY.md) ----------------------


def _depends(compose: dict[str, Any], name: str) -> dict[str, Any]:
    depends: dict[str, Any] = compose["services"][name].get("depends_on", {})
    return depends


def _starts_after(compose: dict[str, Any], later: str, earlier: str) -> bool:
    """Whether ``later`` waits, directly or through its dependencies, for ``earlier``."""
    seen: set[str] = set()
    todo = [later]
    while todo:
        name = todo.pop()
        for dependency in _depends(compose, name):
            if dependency == earlier:
                return True
            if dependency not in seen:
                seen.add(dependency)
                todo.append(dependency)
    return False


def test_broker_refuses_anonymous_clients() -> None:
    directives = mosquitto_conf()
    assert ["allow_anonymous", "false"] in directives
    assert not [d for d in directives if d[0] == "allow_anonymous" and d[1:] != ["false"]]
    # with per-listener settings, a listener without its own password_file would be open
    assert ["per_listener_settings", "true"] not in directives
    names = [d[0] for d in directives]
    assert names.count("password_file") == 1 and names.count("acl_file") == 1
    assert not {"plugin", "auth_plugin"} & set(names), "passwd and acl are the only authentication"


def test_broker_reads_credentials_and_tls_files_from_read_only_mounts(compose: dict[str, Any]) -> None:
    mosquitto = compose["services"]["mosquitto"]
    mounts, read_only = _mounts(mosquitto), _read_only(mosquitto)
    paths = mosquitto_conf_paths()

    def mount_of(path: str) -> str:
        (target,) = [t for t in mounts if path.startswith(t.rstrip("/") + "/")]
        return target

    expected = {
        "password_file": "credentials",
        "acl_file": "credentials",
        "cafile": "./deploy/tls",
        "certfile": "./deploy/tls",
        "keyfile": "./deploy/tls",
    }
    for directive, source in expected.items():
        target = mount_of(paths[directive])
        assert mounts[target] == source, (directive, paths[directive], mounts)
        assert target in read_only, f"{target} must be mounted read-only"
    assert Path(paths["password_file"]).name == "passwd" and Path(paths["acl_file"]).name == "acl"
    tls_files = {Path(paths[d]).name for d in ("cafile", "certfile", "keyfile")}
    assert tls_files == {"ca.crt", "server.crt", "server.key"}
    # the credentials service writes the same volume, at the path its script names
    assert _mounts(compose["services"]["credentials"])["/credentials"] == "credentials"
    assert "out=/credentials" in compose_script("credentials")
    assert _mounts(compose["services"]["tls"])["/tls"] == "./deploy/tls"
    assert (ROOT / "deploy/tls/README.md").is_file()


def test_tls_listener_on_8883(compose: dict[str, Any]) -> None:
    directives = mosquitto_conf()
    listeners = [i for i, d in enumerate(directives) if d[0] == "listener"]
    assert [directives[i][1:] for i in listeners] == [["1883"], ["8883"]], "both on every interface"
    start = listeners[1]
    tls = {d[0]: d[1:] for d in directives[start + 1 :]}
    assert {"cafile", "certfile", "keyfile"} <= set(tls)
    assert tls.get("tls_version") in (["tlsv1.2"], ["tlsv1.3"])
    plain = {d[0] for d in directives[listeners[0] + 1 : start]}
    assert not plain & {"cafile", "certfile", "keyfile"}
    assert any(str(p).endswith(":8883") for p in compose["services"]["mosquitto"]["ports"])


def test_mqtt_clients_get_their_passwords_from_the_credentials_volume(compose: dict[str, Any]) -> None:
    services = compose["services"]
    clients = {name for name, s in services.items() if "FIREGRID_MQTT_URL" in (s.get("environment") or {})}
    assert clients == set(MQTT_ACCOUNTS), "a new MQTT client needs its account here"
    login = unescape(compose["x-mqtt-login"])
    for name, account in MQTT_ACCOUNTS.items():
        service = services[name]
        assert account in SERVICE_ACCOUNTS
        assert service["entrypoint"] == ["sh", "-c", compose["x-mqtt-login"], "mqtt-login", account], name
        assert "@" not in service["environment"]["FIREGRID_MQTT_URL"], "no credentials in the URL"
        assert _mounts(service)["/credentials"] == "credentials" and "/credentials" in _read_only(service)
        assert str(COMPOSE_UID_MOSQUITTO) in [str(g) for g in service["group_add"]], name
        assert _depends(compose, name)["credentials"]["condition"] == "service_completed_successfully"
    assert services["firegrid"]["environment"]["FIREGRID_CREDENTIALS"] == "/credentials"
    # the login script: the account's row of secrets.csv into the URL, then the command
    assert "secrets=/credentials/secrets.csv" in login
    assert 'if [ "$name" = "$account" ]; then password="$secret"; fi' in login
    assert "export FIREGRID_MQTT_URL" in login and login.rstrip().endswith('exec "$@"')
    assert "*://*@*)" in login, "a URL that already holds credentials is refused"


def test_no_secret_in_compose_or_env_example(compose: dict[str, Any]) -> None:
    secret_key = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$")
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if secret_key.search(key):
                # passed through from .env, or required there: never a value in this file
                assert value is None or re.fullmatch(r"\$\{[A-Z_]+(:\?[^}]*)?\}", str(value)), (name, key)
            assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", str(value)), (name, key)
    text = _compose_text()
    assert not re.search(r"(mosquitto_(sub|pub)[^\n]* (-P|--pw) )", text), "no password on a command line"
    example = (ROOT / ".env.example").read_text()
    for key, value in re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", example, flags=re.MULTILINE):
        if secret_key.search(key):
            assert value == "", f".env.example sets {key}"
        assert "@" not in value, key


def test_compose_escapes_every_dollar_it_does_not_interpolate() -> None:
    """Scripts in the compose file write ``$$x``; a lone ``$x`` would be replaced by compose
    (with an empty string when unset) before the shell ever sees it."""
    text = _compose_text().replace("$$", "")
    assert re.findall(r"\$(?!\{[A-Z][A-Z0-9_]*(:?[-?][^}]*)?\})", text) == []


def test_credentials_service(compose: dict[str, Any]) -> None:
    credentials = compose["services"]["credentials"]
    assert credentials["user"] == "root"  # chowns the files for mosquitto and firegrid
    assert credentials["entrypoint"][3] == "credentials" and "command" not in credentials
    mounts = _mounts(credentials)
    assert mounts == {"/registry": "registry", "/credentials": "credentials"}
    assert _read_only(credentials) == {"/registry"}
    script = compose_script("credentials")
    assert 'firegrid credentials --registry /registry --out "$out"' in script
    assert '"$@"' in script.split("firegrid credentials", 1)[1].splitlines()[0], "extra arguments passed on"
    assert f'services="{" ".join(SERVICE_ACCOUNTS)}"' in script
    assert "${rotate:+--rotate$rotate}" in script
    # ownership: mosquitto's user reads passwd and acl; firegrid's uid its secrets.csv
    mosquitto = f"{COMPOSE_UID_MOSQUITTO}:{COMPOSE_UID_MOSQUITTO}"
    assert f'chown {mosquitto} "$out/passwd" "$out/acl"' in script
    assert 'chmod 0640 "$out/passwd" "$out/acl"' in script
    assert f'chown {firegrid_uid()}:{COMPOSE_UID_MOSQUITTO} "$secrets"' in script
    assert 'chmod 0600 "$secrets"' in script
    assert "umask 077" in script


def test_credentials_are_written_before_anyone_reads_them(compose: dict[str, Any]) -> None:
    world = _depends(compose, "credentials")["world"]
    assert world == {"condition": "service_completed_successfully", "required": False}
    mosquitto = _depends(compose, "mosquitto")
    for one_shot in ("tls", "credentials"):
        assert mosquitto[one_shot]["condition"] == "service_completed_successfully"
    order = [("credentials", "world"), ("mosquitto", "credentials"), ("mosquitto", "tls")]
    order += [("firegrid", "credentials"), ("firegrid", "mosquitto"), ("simulator", "credentials")]
    order += [("simulator", "firegrid")]
    for later, earlier in order:
        assert _starts_after(compose, later, earlier), f"{later} must start after {earlier}"
    for one_shot in ("tls", "credentials"):
        assert not _starts_after(compose, one_shot, "mosquitto"), one_shot


def test_mosquitto_health_check_needs_no_password(compose: dict[str, Any]) -> None:
    command = compose_healthcheck_command("mosquitto")
    words = shlex.split(command.split(";")[0])
    assert words[0] == "mosquitto_sub" and "-V" in words and words[words.index("-V") + 1] == "mqttv311"
    assert not {"-u", "-P", "--username", "--pw"} & set(words)
    assert words[words.index("-p") + 1] == "1883"
    assert command.rstrip().endswith("[ $? -eq 5 ]"), "healthy = CONNACK 5, anonymous refused"


def test_tls_service_makes_certificates_only_when_absent(compose: dict[str, Any]) -> None:
    tls = compose["services"]["tls"]
    assert tls["user"] == "root" and "/tls" not in _read_only(tls)
    script = compose_script("tls")
    assert script.index("[ -e ca.crt ] && [ -e server.crt ] && [ -e server.key ]") < script.index("openssl")
    assert "chown 1883:1883 server.key" in script and "chmod 0600 server.key" in script
    assert "subjectAltName=$MQTT_TLS_SAN" in script
    assert re.fullmatch(r"\$\{MQTT_TLS_SAN:-DNS:mosquitto,[^}]*\}", tls["environment"]["MQTT_TLS_SAN"])
    runs = [
        args
        for keyword, args in dockerfile_instructions((ROOT / "Dockerfile").read_text())
        if keyword == "RUN"
    ]
    assert any("apt-get install" in run and re.search(r"\bopenssl\b", run) for run in runs)


def test_tls_files_are_never_committed() -> None:
    assert shutil.which("git") is not None and (ROOT / ".git").exists(), "run the suite from a git checkout"
    names = ["deploy/tls/ca.key", "deploy/tls/ca.crt", "deploy/tls/server.key", "deploy/tls/server.crt"]
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *names, "deploy/tls/README.md"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout.split() == names


def test_tls_keys_stay_out_of_the_image() -> None:
    patterns = _dockerignore()
    for name in ("deploy/tls/ca.key", "deploy/tls/server.key"):
        assert _ignored(name, patterns), name


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
