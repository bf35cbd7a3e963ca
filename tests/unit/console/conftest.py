"""Fixtures of the console's unit tests: a registry with its credentials, a clock, a console
(no broker, ingest's API at a closed port) and a test client of it."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from access import SECRETS, make_credentials
from console import Console
from tests.helpers import write_registry
from tests.unit.console.helpers import Clock, settings

World = tuple[Path, Path, dict[str, str]]
"""The registry, the credentials directory, and the principals' clear passwords."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("console-app")
    registry = write_registry(root / "registry")
    make_credentials(registry, root / "credentials")
    with (root / "credentials" / SECRETS).open(newline="") as handle:
        passwords = {row["principal"]: row["password"] for row in csv.DictReader(handle)}
    return registry, root / "credentials", passwords


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_console(world: World, clock: Clock, api: str | None = None) -> Console:
    registry, credentials, _ = world
    console = Console(settings(registry, credentials, api), clock=clock)
    # no broker here: retry every 50 ms, so stopping does not wait out a 1 s reconnect delay
    console.mqtt.client.reconnect_delay_set(0.05, 0.05)  # type: ignore[arg-type]  # typed int, takes float
    return console


@pytest.fixture
def console(world: World, clock: Clock) -> Console:
    return make_console(world, clock)


@pytest.fixture
def client(console: Console) -> Iterator[TestClient]:
    with TestClient(console.app, follow_redirects=False) as client:
        yield client


@pytest.fixture
def passwords(world: World) -> dict[str, str]:
    return world[2]
