"""A small registry (tests.helpers.write_registry) and its principals for the access tests.

Workers W0..W3 hold one grid each (D01-G00..G03); supervisor SUP1 is listed in G00 and G02;
stations D01-ST1, D01-ST2; devices S/E/W/P0000..0002 of each kind in district D01.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from access import Principals
from devices import Registry
from tests.helpers import write_registry


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    return write_registry(tmp_path / "registry")


@pytest.fixture
def registry(registry_dir: Path) -> Registry:
    return Registry.load(registry_dir)


@pytest.fixture
def principals(registry: Registry) -> Principals:
    return Principals(registry)
