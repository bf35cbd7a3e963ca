"""What the fuzzers found, pinned as plain unit tests."""

from __future__ import annotations

import pytest

from devices import Registry
from ingest import Decoded, Decoder, RejectReason

T0 = 1_764_583_200_000
TOPIC = "fire/D01/smoke/S0000"


def _decode(registry: Registry, payload: bytes) -> Decoded:
    out = Decoded()
    Decoder(registry).decode(TOPIC, payload, T0, out)
    return out


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
@pytest.mark.parametrize(
    "template",
    [
        b'{"alarm": true, "extra": %s}',  # an ignored field: pydantic's parser took it
        b'[{"alarm": true}, {"alarm": false, "extra": [%s]}]',
        b'{"alarm": true, "x": %s, "x": 1}',  # even when a duplicate key replaces it
    ],
)
def test_nan_and_infinity_are_not_json_wherever_they_stand(
    fuzz_registry: Registry, template: bytes, literal: bytes
) -> None:
    out = _decode(fuzz_registry, template % literal)
    assert out.readings == []
    assert [r.reason for r in out.rejects] == [RejectReason.INVALID_JSON]


def test_nan_inside_a_string_is_just_text(fuzz_registry: Registry) -> None:
    out = _decode(fuzz_registry, b'{"alarm": true, "fault": "NaN or -Infinity", "note": "NaN"}')
    assert out.rejects == [] and len(out.readings) == 1
