"""Session fixtures: a real mosquitto and a real influxd on free ports, started by the suite.

Neither is ever mocked or skipped: if a binary is missing the session fails loudly (run
``make test``, which installs them).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from firegrid._services import Influxd, Mosquitto
from tests.helpers import HTTP

_counter = itertools.count()
S = TypeVar("S", Mosquitto, Influxd)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    server = Influxd(tmp_path_factory.mktemp("influxd"))
    server.start()
    yield server
    server.stop()


def running(service: S) -> S:
    """A session service, restarted if an earlier test stopped it (the fault tests do)."""
    if not service.running:
        service.start()
    return service


@pytest.fixture
def broker(mosquitto: Mosquitto) -> Mosquitto:
    return running(mosquitto)


@pytest.fixture
def influx(influxd: Influxd) -> Influxd:
    return running(influxd)


@pytest.fixture
def influx_db(influx: Influxd) -> Iterator[str]:
    """A database name of this test's own (created by whoever writes first), dropped after."""
    name = f"t{os.getpid()}_{next(_counter)}"
    yield name
    if influx.running:
        HTTP.post(f"{influx.url}/query", data={"q": f'DROP DATABASE "{name}"'}, timeout=10)


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix of this test's own, so tests never see each other's traffic."""
    return f"t{os.getpid()}-{next(_counter)}/"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path
