from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import orjson
import pytest

from devices import KINDS, Reading, Registry, SmokePayload
from ingest import (
    Decoded,
    Decoder,
    PointEncoder,
    RejectReason,
    SeqDeduplicator,
    _encode,
    encode_line,
    escape_key,
    quote_string,
    series_key,
)
from tests.helpers import write_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return Registry.load(write_registry(tmp_path_factory.mktemp("reg") / "r"))


def test_every_kind_has_a_valid_sample_and_a_mapping() -> None:
    assert {k.name for k in KINDS} == {"smoke", "electrical", "water", "patrol"}
    for spec in KINDS:
        payload = spec.adapter.validate_json(orjson.dumps(spec.sample))
        fields = payload.influx_fields()
        assert fields, spec.name
        assert all(isinstance(v, bool | float | str) for v in fields.values())
        assert not any(type(v) is int for v in fields.values())


def test_escaping_per_element() -> None:
    assert escape_key("a b,c=d") == "a\\ b\\,c\\=d"
    assert quote_string('say "hi" \\ ok') == '"say \\"hi\\" \\\\ ok"'
    assert quote_string("two\nlines") == '"two\\\\nlines"'
    assert "\n" not in encode_line(series_key("m", [("t", "x\ny")]), {"f": "a\nb"}, 1)
    assert series_key("m", [("z", "1"), ("a", "2"), ("empty", "")]) == "m,a=2,z=1"
    assert escape_key("ends\\") == "ends\u29f5"


def _decode(registry: Registry, topic: str, payload: bytes, now: int | None = None) -> Decoded:
    out = Decoded()
    Decoder(registry).decode(topic, payload, now or int(time.time() * 1000), out)
    return out


def test_decoder_accepts_a_batch_and_fills_missing_ts(registry: Registry) -> None:
    now = int(time.time() * 1000)
    out = _decode(registry, "fire/D01/smoke/S0000", b'[{"alarm": true, "ts": 5}, {"alarm": false}]', now)
    assert [r.reason for r in out.rejects] == [RejectReason.TS_TOO_OLD]
    assert [(r.device_id, r.ts) for r in out.readings] == [("S0000", now)]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("fire/D01/smoke/S0000", b"\xff\xfe", RejectReason.INVALID_JSON),
        ("fire/D01/smoke/S0000", b'{"alarm": 1}', RejectReason.SCHEMA),
        ("fire/D01/smoke/S0000", b'{"alarm": true, "seq": -1}', RejectReason.SCHEMA),
        ("fire/D01/smoke/S0000", b'{"alarm": true, "ts": 1.5}', RejectReason.SCHEMA),
        ("fire/D01/smoke/S0000", orjson.dumps([{"alarm": True}] * 1001), RejectReason.SCHEMA),
        ("fire/D01/smoke/S0000", b'"just a string"', RejectReason.SCHEMA),
        ("fire/D01/smoke/S 0", b'{"alarm": true}', RejectReason.BAD_TOPIC),
        ("other/D01/smoke/S0000", b'{"alarm": true}', RejectReason.BAD_TOPIC),
    ],
)
def test_decoder_rejects(registry: Registry, topic: str, payload: bytes, reason: RejectReason) -> None:
    out = _decode(registry, topic, payload)
    assert out.readings == []
    assert [r.reason for r in out.rejects] == [reason]
    assert out.rejects[0].error


def _reading(slot: int, seq: int, ts: int) -> Reading:
    return Reading(slot, "S", ts, SmokePayload(alarm=False, seq=seq, ts=ts))


def test_dedup_drops_repeats_counts_gaps_and_accepts_counter_resets() -> None:
    dedup = SeqDeduplicator(2)
    stream = [_reading(0, s, 1000 + s) for s in (1, 2, 2, 5, 3, 3)] + [_reading(1, 1, 1)]
    kept = dedup.filter(stream)
    assert [(r.slot, r.payload.seq) for r in kept] == [(0, 1), (0, 2), (0, 5), (0, 3), (1, 1)]
    assert dedup.duplicates == 2
    assert dedup.lost == 1  # 4 never came
    assert len(dedup.filter([_reading(0, 500, 2000)])) == 1
    assert dedup.filter([_reading(0, 3, 1003)]) == []  # far below the window, older: a replay
    assert len(dedup.filter([_reading(0, 1, 9999)])) == 1  # far below, newer: the counter restarted
    assert dedup.filter([_reading(0, 1, 9999)]) == []


def test_dedup_grows_with_the_registry() -> None:
    dedup = SeqDeduplicator(1)
    dedup.grow(3)
    assert len(dedup.filter([_reading(2, 1, 1)])) == 1


def test_settings_errors_are_one_readable_line(tmp_path: Path) -> None:
    from devices import SettingsError
    from firegrid._settings import load_settings

    with pytest.raises(SettingsError, match=r"^invalid setting FIREGRID_MQTT_URL: .*mqtt://"):
        load_settings(environ={"FIREGRID_MQTT_URL": "http://x"})
    config = tmp_path / "firegrid.toml"
    config.write_text('influx_db = "fire grid"\n')
    with pytest.raises(SettingsError, match=r"FIREGRID_INFLUX_DB \(in .*firegrid.toml\)"):
        load_settings(config, environ={})
    config.write_text('influx_db = "from_file"\nhttp = "127.0.0.1:9000"\n')
    settings = load_settings(config, environ={"FIREGRID_INFLUX_DB": "from_env"})
    assert (settings.influx_db, settings.http_port) == ("from_env", 9000)
    config.write_text("nonsense = 1\n")
    with pytest.raises(SettingsError, match=r"FIREGRID_NONSENSE.*unknown setting"):
        load_settings(config, environ={})
    with pytest.raises(SettingsError, match="not valid TOML"):
        config.write_text("= =")
        load_settings(config, environ={})
    settings = load_settings(environ={"FIREGRID_INFLUX_PASSWORD": "s3cret"})
    assert "s3cret" not in repr(settings)


def test_field_keys_need_no_escaping() -> None:
    """encode_trusted_fields relies on this for the kinds' own field names."""
    import re

    full = dict(KINDS[1].sample, temp_c=[1.0] * 8, current_a=[1.0] * 8, fault="x")
    for sample in [*(spec.sample for spec in KINDS), full]:
        spec = next(s for s in KINDS if set(s.sample) <= set(sample) or s.sample is sample)
        payload = spec.adapter.validate_json(orjson.dumps(sample))
        assert all(re.fullmatch(r"[a-z0-9_]+", key) for key in payload.influx_fields())


class _Tagged(SmokePayload):
    """A smoke reading with extra tags (as patrol's worker), which may need escaping."""

    has_influx_tags: ClassVar[bool] = True
    tags: dict[str, str]

    def influx_tags(self) -> Mapping[str, str]:
        return self.tags


def test_extra_tags_are_escaped_sorted_and_cached_per_set(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_encode, "TAGS_MAX", 2)
    encoder = PointEncoder(registry)
    slot = registry.slot_of["S0000"]
    base = series_key(
        "smoke",
        [
            ("district", registry.district_of(slot)),
            ("grid", registry.grid_of(slot)),
            ("site", registry.site_of(slot)),
            ("device", "S0000"),
        ],
    )
    sets = [{"worker": "W 1"}, {"z": "2", "worker": "a,b"}, {"worker": "W2"}, {"y": "", "worker": "x=y"}]
    for _ in range(2):  # the second time from the cache, or after it was emptied
        lines: list[str] = []
        readings = [Reading(slot, "S0000", 5, _Tagged(alarm=False, tags=tags)) for tags in sets]
        encoder.readings(readings, lines)
        tags = [",worker=W\\ 1", ",worker=a\\,b,z=2", ",worker=W2", ",worker=x\\=y"]
        assert lines == [f"{base}{t} alarm=false 5" for t in tags]
