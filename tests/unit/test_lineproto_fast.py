"""The kinds' direct line-protocol writers (``Payload.influx_fields_text``, ingest's hot path) say
exactly what the generic encoder says of their ``influx_fields`` dict."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from devices import (
    KINDS,
    ElectricalPayload,
    PatrolPayload,
    Payload,
    SmokePayload,
    WaterPayload,
    encode_trusted_fields,
)
from devices._lineproto import FLOAT_TEXT, FLOAT_TEXTS_MAX

finite = st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-(2**53), 2**53)
percent = st.floats(0, 100) | st.integers(0, 100)
faults = st.none() | st.text(max_size=200)
channels = st.lists(finite, min_size=1, max_size=8)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


smoke: st.SearchStrategy[dict[str, Any]] = st.builds(
    dict,
    alarm=st.booleans(),
    obscuration_db_m=optional(finite),
    battery_pct=optional(percent),
    rssi_dbm=optional(finite),
    tamper=optional(st.booleans()),
    fault=faults,
)
electrical: st.SearchStrategy[dict[str, Any]] = st.builds(
    dict,
    residual_ma=st.floats(0, 1e12) | st.integers(0, 2**53),
    temp_c=optional(channels),
    current_a=optional(channels),
    arc_count=optional(st.integers(0, 2**53)),
    fault=faults,
)
water: st.SearchStrategy[dict[str, Any]] = st.builds(
    dict,
    pressure_mpa=finite,
    level_m=optional(finite),
    battery_pct=optional(percent),
    fault=faults,
)

texts = st.text(min_size=1, max_size=30)  # quotes, backslashes, newlines, commas included
patrol: st.SearchStrategy[dict[str, Any]] = st.builds(
    dict,
    worker_id=st.just("W0001"),
    result=st.sampled_from(["ok", "hazard"]),
    hazards=optional(st.lists(texts, max_size=5)),
    note=optional(st.text(max_size=50)),
)


def check(model: type[Payload], document: dict[str, Any]) -> None:
    payload = model.model_validate({k: v for k, v in document.items() if v is not None}, strict=True)
    assert payload.influx_fields_text() == encode_trusted_fields(payload.influx_fields())


@settings(max_examples=300, deadline=None)
@given(smoke)
def test_smoke(document: dict[str, Any]) -> None:
    check(SmokePayload, document)


@settings(max_examples=300, deadline=None)
@given(electrical)
def test_electrical(document: dict[str, Any]) -> None:
    check(ElectricalPayload, document)


@settings(max_examples=300, deadline=None)
@given(water)
def test_water(document: dict[str, Any]) -> None:
    check(WaterPayload, document)


@settings(max_examples=300, deadline=None)
@given(patrol)
def test_patrol(document: dict[str, Any]) -> None:
    check(PatrolPayload, document)


def test_samples_and_special_values() -> None:
    for spec in KINDS:
        payload = spec.payload.model_validate(spec.sample)
        assert payload.influx_fields_text() == encode_trusted_fields(payload.influx_fields())
    for fault in ("", 'say "hi"\\\n', "x"):
        check(SmokePayload, {"alarm": True, "fault": fault, "battery_pct": 0})
        check(ElectricalPayload, {"residual_ma": 0, "temp_c": [-0.0, 1e300, 5], "fault": fault})
        check(WaterPayload, {"pressure_mpa": -1e-300, "fault": fault})
        check(PatrolPayload, {"worker_id": "W1", "result": "hazard", "hazards": [], "note": fault})
        check(PatrolPayload, {"worker_id": "W1", "result": "ok", "hazards": [fault or "x", "y"]})


def test_tags_flag_matches_tags() -> None:
    """A kind whose payloads carry tags says so (the encoder skips ``influx_tags`` otherwise)."""
    for spec in KINDS:
        payload = spec.payload.model_validate(spec.sample)
        assert spec.payload.has_influx_tags == bool(payload.influx_tags())


@settings(max_examples=300, deadline=None)
@given(st.lists(finite | st.sampled_from([0, 0.0, -0.0, 1, 1.0, 2**53 + 1, 2.0**53]), max_size=20))
def test_float_text_is_repr(values: list[float]) -> None:
    """The cache of number texts says repr(float(x)) whatever was looked up before (0.0 and
    -0.0 are equal keys with different texts; an int equals a float of the same value)."""
    for value in values + values:
        assert FLOAT_TEXT[value] == repr(float(value))


def test_float_text_is_bounded() -> None:
    for i in range(FLOAT_TEXTS_MAX + 10):
        assert FLOAT_TEXT[i + 0.5] == repr(i + 0.5)
    assert len(FLOAT_TEXT) <= FLOAT_TEXTS_MAX
