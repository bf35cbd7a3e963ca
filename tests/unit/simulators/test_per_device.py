"""`simulate run --per-device`: its arguments, the devices' passwords, who sends each message, and
the ground truth of the messages the broker refuses (no broker needed here)."""

from __future__ import annotations

import argparse
import csv
import inspect
import os
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices import Registry
from firegrid import cli_simulate
from simulators import (
    CONNECT_RATE,
    CredentialsError,
    DeviceConnections,
    Fleet,
    MissingPasswordsError,
    RunOptions,
    RunWindow,
    Senders,
    builtin_scenarios,
    load_scenario,
    plan_scenario,
    read_passwords,
    run_traffic,
    write_world,
)
from simulators._connections import _DeviceClient
from simulators._per_device import split_rejects, write_truth

START = 1_764_583_200_000
TOPIC_CASES = {
    "kind_mismatch",
    "district_mismatch",
    "unknown_device",
    "unknown_kind",
    "short_topic",
    "long_topic",
    "topic_injection",
}


@pytest.fixture(autouse=True)
def _no_firegrid_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("FIREGRID_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    write_world(out, scale=0.02, seed=5)
    return out


def write_secrets(path: Path, passwords: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        rows = csv.writer(handle, lineterminator="\n")
        rows.writerow(("principal", "role", "password"))
        rows.writerows((name, "device", password) for name, password in passwords.items())


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="firegrid")
    cli_simulate.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["simulate", "run", "--registry", "reg", *argv])


def options(argv: list[str]) -> RunOptions:
    args = parse(argv)
    settings = cli_simulate.load_run_settings(args.config, args.url, args.prefix, args.credentials)
    return cli_simulate.run_options(args, settings)


# -- arguments -----------------------------------------------------------------------------------


def test_per_device_arguments_and_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    assert options([]).credentials is None  # one connection, as before
    assert options(["--per-device"]).credentials == Path("credentials")
    assert options(["--per-device"]).connect_rate == CONNECT_RATE
    monkeypatch.setenv("FIREGRID_CREDENTIALS", "/srv/firegrid/credentials")
    assert options(["--per-device"]).credentials == Path("/srv/firegrid/credentials")
    assert options([]).credentials is None  # the setting alone does not make a per-device run
    chosen = options(["--per-device", "--credentials", "/tmp/c", "--connect-rate", "250"])
    assert (chosen.credentials, chosen.connect_rate) == (Path("/tmp/c"), 250.0)
    assert chosen.registry == Path("reg") and chosen.qos == 0


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--credentials", "/tmp/c"],
            "firegrid simulate: error: --credentials is for --per-device runs and for workers that respond "
            "(--respond)",
        ),
        (["--connect-rate", "10"], "firegrid simulate: error: --connect-rate is for --per-device runs"),
    ],
)
def test_per_device_flags_without_per_device_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert cli_simulate.main(["simulate", "run", "--registry", "reg", *argv]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [expected]


def test_a_connect_rate_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(["--per-device", "--connect-rate", "0"])
    assert exited.value.code == 2
    assert "--connect-rate: '0' must be a positive number" in capsys.readouterr().err


# -- passwords -----------------------------------------------------------------------------------


def test_secrets_are_read_with_earlier_kept_files_and_the_newest_wins(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match=r"no .*/secrets.csv: write the credentials with 'firegrid"):
        read_passwords(tmp_path)
    write_secrets(tmp_path / "secrets.first.csv", {"D01-SD00001": "old", "D01-SD00002": "two"})
    write_secrets(tmp_path / "secrets.csv", {"D01-SD00001": "rotated"})
    os.utime(tmp_path / "secrets.first.csv", ns=(1_000_000_000, 1_000_000_000))
    assert read_passwords(tmp_path) == {"D01-SD00001": "rotated", "D01-SD00002": "two"}
    (tmp_path / "secrets.csv").write_text("user,password\nD01-SD00001,x\n")
    with pytest.raises(CredentialsError, match=r"secrets.csv is not a secrets.csv of 'firegrid credentials'"):
        read_passwords(tmp_path)


def test_a_missing_device_is_named_with_the_command_that_fixes_it(world: Path, tmp_path: Path) -> None:
    devices = sorted(Registry.load(world).slot_of)
    write_secrets(tmp_path / "c" / "secrets.csv", {d: "pw" for d in devices[1:]})
    run = RunOptions(registry=world, url="mqtt://127.0.0.1:1", credentials=tmp_path / "c", prefix="t/")
    with pytest.raises(MissingPasswordsError) as caught:
        run_traffic(run)  # raised before any connection (nothing listens on port 1)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"{tmp_path}/c/secrets.csv has no password for device {devices[0]} of the registry"
    )
    command = (
        f"firegrid credentials --registry {world} --out {tmp_path}/c --topic-prefix t/ --rotate {devices[0]}"
    )
    assert f"re-run '{command}'" in message
    assert f"keep the current file as {tmp_path}/c/secrets.<name>.csv" in message
    assert message.endswith("then reload the broker (SIGHUP)")

    write_secrets(tmp_path / "c" / "secrets.csv", {d: "pw" for d in devices[:-8]})
    with pytest.raises(MissingPasswordsError, match=r"no password for 8 devices \(D\S+, .* and 3 more\)"):
        run_traffic(run)


def test_the_private_paho_api_the_device_client_overrides() -> None:
    """``_DeviceClient`` replaces paho's ``_create_socket_connection`` (paho binds before it
    connects); pinned with paho (pyproject.toml), so an upgrade that changes it fails here."""
    assert list(inspect.signature(mqtt.Client._create_socket_connection).parameters) == ["self"]
    client = _DeviceClient(CallbackAPIVersion.VERSION2, client_id="x")
    client.connect_async("127.0.0.1", 1883, 60)
    assert (client._host, client._port, client._connect_timeout) == ("127.0.0.1", 1883, 5.0)
    with pytest.raises(ConnectionRefusedError):  # paho's connect goes through the override
        _DeviceClient(CallbackAPIVersion.VERSION2).connect("127.0.0.1", 1)


def test_an_unreachable_broker_is_one_error(tmp_path: Path) -> None:
    connections = DeviceConnections("127.0.0.1", 1, [("D01-SD00001", "pw")])
    with pytest.raises(ConnectionError, match=r"^cannot connect to the MQTT broker at 127.0.0.1:1: "):
        connections.open()
    connections.close()


# -- who sends what, and the ground truth ----------------------------------------------------------


def test_hostile_topics_are_sent_by_a_device_and_listed_as_refused(world: Path, tmp_path: Path) -> None:
    registry = Registry.load(world)
    path = builtin_scenarios()["hostile"]
    scenario = load_scenario(path)
    fleet = Fleet(registry, seed=1, start_ms=START)
    plan = plan_scenario(scenario, fleet, RunWindow(START, 3600.0, 1.0, {}, "p/"), path)
    senders = Senders(fleet, "p/")
    assert len(senders.names) == len(registry.slot_of)
    for device_id in registry.slot_of:
        device = registry.device(device_id)
        assert device is not None
        own = f"p/fire/{device.district}/{device.kind}/{device_id}"
        assert senders.names[senders.sender(own)] == device_id and senders.is_own(own)

    kept, refused = split_rejects(plan, senders)
    assert {r.reject.case for r in refused} == TOPIC_CASES
    assert len(kept) + len(refused) == len(plan.rejects) and not TOPIC_CASES & {r.case for r in kept}
    hostile = {r.sender for r in refused}
    assert len(hostile) == 1 and hostile <= registry.slot_of.keys()  # the step's own smoke detector
    by_case = {r.reject.case: r.reject.topic for r in refused}
    (sender,) = hostile
    assert by_case["district_mismatch"].endswith(f"/smoke/{sender}")
    assert by_case["short_topic"] == by_case["kind_mismatch"].rsplit("/", 2)[0] + "/smoke"

    truth = tmp_path / "truth.jsonl"
    assert write_truth(plan, truth, senders) == (len(kept), len(refused))
    lines = [orjson.loads(line) for line in truth.read_bytes().splitlines()]
    assert [line for line in lines if "refused" in line] == [
        {
            "refused": "not_authorized",
            "topic": r.reject.topic,
            "sender": sender,
            "case": r.reject.case,
            "scenario": "hostile",
            "step": 0,
        }
        for r in refused
    ]
    assert sum("reject" in line for line in lines) == len(kept)
    assert sum("accepted" in line for line in lines) == len(plan.stored)  # unchanged
