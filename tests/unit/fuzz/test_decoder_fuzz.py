"""The decoder under fuzzing: every message ends as readings and/or rejects with a reason,
never an exception, never a reading the contract refuses (CONTRACT §4)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import Registry
from ingest import Decoder, PointEncoder
from tests.unit.fuzz._budget import (
    BOUNDED,
    BOUNDED_BYTES,
    BOUNDED_SEED,
    SOAK,
    SOAK_INPUTS,
    SOAK_TIMEOUT_S,
    Tally,
    soak,
    soak_seed,
)
from tests.unit.fuzz._decoder import (
    Message,
    Outcome,
    decode_and_check,
    expected,
    messages,
    random_message,
    variants,
)


def _structured(registry: Registry, decoders: dict[str, Decoder], drawn: Message, rng: random.Random) -> int:
    """Decode and check the drawn message and its variants; how many inputs that was."""
    encoder = PointEncoder(registry)
    inputs = variants(drawn, rng)
    for message in inputs:
        decoded = decode_and_check(registry, decoders, encoder, message)
        want = expected(registry, message)
        if want is not None:
            got = Outcome.of(decoded)
            errors = [r.error for r in decoded.rejects]
            assert got == want, f"{message!r}\nmodel says {want},\ndecoder says {got}: {errors}"
    return len(inputs)


def _random_bytes(registry: Registry, decoders: dict[str, Decoder], seed: int, count: int) -> Tally:
    rng, encoder, tally = random.Random(seed), PointEncoder(registry), Tally()
    for _ in range(count):
        message = random_message(rng, registry)
        try:
            decode_and_check(registry, decoders, encoder, message)
        except BaseException as exc:
            exc.add_note(f"seed {seed}, input {tally.inputs}: {message!r:.2000}")
            raise
        tally.add()
    return tally


def test_structured_messages(fuzz_registry: Registry, decoders: dict[str, Decoder]) -> None:
    @BOUNDED
    @given(messages(fuzz_registry), st.randoms(use_true_random=False))
    def run(message: Message, rng: random.Random) -> None:
        _structured(fuzz_registry, decoders, message, rng)

    run()


def test_random_bytes(fuzz_registry: Registry, decoders: dict[str, Decoder]) -> None:
    assert _random_bytes(fuzz_registry, decoders, BOUNDED_SEED, BOUNDED_BYTES).inputs == BOUNDED_BYTES


@pytest.mark.soak
@pytest.mark.timeout(SOAK_TIMEOUT_S)
def test_soak_structured_messages(fuzz_registry: Registry, decoders: dict[str, Decoder]) -> None:
    tally = Tally()

    @SOAK
    @given(messages(fuzz_registry), st.randoms(use_true_random=False))
    def run(message: Message, rng: random.Random) -> None:
        tally.add(_structured(fuzz_registry, decoders, message, rng))

    soak(run, tally, "decoder, structured")


@pytest.mark.soak
@pytest.mark.timeout(SOAK_TIMEOUT_S)
def test_soak_random_bytes(fuzz_registry: Registry, decoders: dict[str, Decoder]) -> None:
    seed = soak_seed()
    print(f"decoder random bytes: seed {seed} (FIREGRID_FUZZ_SEED={seed} to replay)")
    tally = _random_bytes(fuzz_registry, decoders, seed, SOAK_INPUTS)
    print(tally.report("decoder, random bytes"))
