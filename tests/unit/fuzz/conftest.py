"""One small registry (tests/helpers.py) for every fuzz test; session-scoped, as hypothesis
runs many examples per test and function-scoped fixtures would be shared between them anyway."""

from __future__ import annotations

import pytest

from devices import Registry
from ingest import Decoder
from tests.helpers import write_registry
from tests.unit.fuzz._decoder import PREFIXES


@pytest.fixture(scope="session")
def fuzz_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return Registry.load(write_registry(tmp_path_factory.mktemp("fuzz-registry")))


@pytest.fixture(scope="session")
def decoders(fuzz_registry: Registry) -> dict[str, Decoder]:
    return {prefix: Decoder(fuzz_registry, prefix) for prefix in PREFIXES}
