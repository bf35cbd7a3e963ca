"""The per-device rate limit (CONTRACT §10): the bucket, the decoder's early check, the
``rate_limited`` rejects aggregated per device and minute, the pipeline's wiring, the setting."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson
import pytest

from devices import Reading, Registry, SettingsError
from ingest import Decoded, Decoder, DeviceRate, IngestMetrics, InMessage, Pipeline, RateLimiter, RejectReason
from ingest._ratelimit import MINUTE_MS
from tests.helpers import write_registry

T0 = 1_764_583_200_000
"""A whole minute (epoch ms)."""
assert T0 % MINUTE_MS == 0


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return Registry.load(write_registry(tmp_path_factory.mktemp("reg") / "r"))


def admitted(limiter: RateLimiter, slot: int, times: Sequence[int]) -> int:
    return sum(limiter.admit(slot, t, "fire/D01/smoke/S0000", b"{}") for t in times)


# -- the setting ------------------------------------------------------------------------------------


def test_parse() -> None:
    assert DeviceRate.parse("5/300") == DeviceRate(5.0, 300)
    assert DeviceRate.parse(" 0.5 / 10 ") == DeviceRate(0.5, 10)
    assert DeviceRate.parse("0") is None
    assert str(DeviceRate(5.0, 300)) == "5/s, bursts of 300"
    for bad in ("", "5", "fast", "5/", "/300", "-1/10", "0/300", "5/0", "5/1.5", "inf/3", "1e3/5"):
        with pytest.raises(ValueError):
            DeviceRate.parse(bad)


def test_setting_defaults_off_and_errors(tmp_path: Path) -> None:
    from firegrid._settings import load_settings

    assert load_settings(environ={}).device_rate_limit == DeviceRate(5.0, 300)
    assert load_settings(environ={"FIREGRID_DEVICE_RATE": "0"}).device_rate_limit is None
    assert load_settings(environ={"FIREGRID_DEVICE_RATE": "20/50"}).device_rate_limit == DeviceRate(20.0, 50)
    config = tmp_path / "firegrid.toml"
    config.write_text("device_rate = 0\n")
    assert load_settings(config, environ={}).device_rate_limit is None
    config.write_text('device_rate = "2/20"\n')
    assert load_settings(config, environ={}).device_rate_limit == DeviceRate(2.0, 20)
    with pytest.raises(
        SettingsError, match=r"^invalid setting FIREGRID_DEVICE_RATE: must be RATE/BURST"
    ) as info:
        load_settings(environ={"FIREGRID_DEVICE_RATE": "lots"})
    assert "\n" not in str(info.value)
    with pytest.raises(SettingsError, match="FIREGRID_DEVICE_RATE: the burst must be"):
        load_settings(environ={"FIREGRID_DEVICE_RATE": "5/0"})


# -- the bucket -------------------------------------------------------------------------------------


def test_a_burst_passes_whole_and_the_rest_is_dropped() -> None:
    limiter = RateLimiter(DeviceRate(5, 300), 4)
    assert admitted(limiter, 1, [T0] * 400) == 300
    assert limiter.dropped == 100
    assert admitted(limiter, 2, [T0] * 10) == 10  # other devices have buckets of their own


def test_sustained_rate_after_the_burst() -> None:
    limiter = RateLimiter(DeviceRate(5, 300), 1)
    # 50 messages a second for 30 s: the burst, then 5 a second
    times = [T0 + i * 20 for i in range(50 * 30)]
    passed = admitted(limiter, 0, times)
    assert 300 + 5 * 30 - 1 <= passed <= 300 + 5 * 30 + 1
    # a device at or under the rate never loses a message
    steady = RateLimiter(DeviceRate(5, 1), 1)
    assert admitted(steady, 0, [T0 + i * 200 for i in range(10_000)]) == 10_000


def test_the_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    limiter = RateLimiter(DeviceRate(2, 10), 1)
    assert admitted(limiter, 0, [T0] * 20) == 10
    assert admitted(limiter, 0, [T0 + 499] * 5) == 0  # not yet a whole token
    assert admitted(limiter, 0, [T0 + 500] * 5) == 1
    assert admitted(limiter, 0, [T0 + 3000] * 20) == 5  # 2.5 s more: 5 tokens
    assert admitted(limiter, 0, [T0 + 600_000] * 20) == 10  # full again, never more than the burst


def test_fractional_rates_keep_the_exact_burst() -> None:
    limiter = RateLimiter(DeviceRate(3, 7), 1)  # 333.33… ms a token
    assert admitted(limiter, 0, [T0] * 10) == 7
    assert admitted(limiter, 0, [T0 + 1000] * 10) == 3


def test_a_clock_step_back_is_absorbed_by_the_burst() -> None:
    """The state is the next message's theoretical arrival time: a step back of the service clock
    looks like messages sent early, which the burst absorbs (300 × 200 ms = 60 s by default)."""
    limiter = RateLimiter(DeviceRate(5, 300), 1)
    assert admitted(limiter, 0, [T0 + 30_000, T0, T0 + 1]) == 3
    small = RateLimiter(DeviceRate(1, 2), 1)
    assert admitted(small, 0, [T0 + 10_000, T0]) == 1  # a step longer than the burst's worth


def test_grow_keeps_the_buckets_of_known_slots() -> None:
    limiter = RateLimiter(DeviceRate(1, 5), 2)
    assert admitted(limiter, 1, [T0] * 5) == 5
    limiter.grow(10)
    assert limiter.slots == 10
    assert admitted(limiter, 1, [T0]) == 0  # still empty
    assert admitted(limiter, 9, [T0] * 5) == 5
    limiter.grow(3)  # never shrinks
    assert limiter.slots == 10


# -- aggregation ------------------------------------------------------------------------------------


def test_one_reject_per_device_and_minute_with_its_count() -> None:
    limiter = RateLimiter(DeviceRate(1, 1), 3)
    # device 0 floods at 10 msg/s for 2.5 minutes, device 1 sends 5 at once in the second minute
    for i in range(1500):
        limiter.admit(0, T0 + i * 100, "fire/D01/smoke/S0000", b'{"alarm": false}')
    for _ in range(5):
        limiter.admit(1, T0 + MINUTE_MS + 10, "fire/D01/smoke/S0001", b'{"alarm": true}')
    assert limiter.take_batch() == {0: 1350, 1: 4}
    assert limiter.take_batch() == {}
    # device 0's minutes 0 and 1 are closed by its own later drops; device 1's minute 1 once
    # nothing received before the end of minute 1 can still come
    first = limiter.closed(T0 + 2 * MINUTE_MS - 1)
    assert [(r.topic, r.count) for r in first] == [("fire/D01/smoke/S0000", 540.0)] * 2
    second = limiter.closed(T0 + 2 * MINUTE_MS)
    assert [(r.topic, r.count) for r in second] == [("fire/D01/smoke/S0001", 4.0)]
    assert limiter.closed(T0 + 2 * MINUTE_MS + 1) == []
    last = limiter.closed(T0 + 10 * MINUTE_MS, final=True)
    assert [(r.topic, r.count) for r in last] == [("fire/D01/smoke/S0000", 270.0)]
    assert sum(r.count or 0 for r in first + second + last) == limiter.dropped
    reject = first[0]
    assert reject.reason is RejectReason.RATE_LIMITED
    assert reject.received_ms == T0 + 100  # the first drop of the minute
    assert reject.payload == b'{"alarm": false}'
    assert "540 messages over the device rate limit (1/s, bursts of 1)" in reject.error
    assert "2025-12-01T10:00Z" in reject.error


def test_a_clean_stop_writes_the_open_minutes() -> None:
    limiter = RateLimiter(DeviceRate(1, 1), 1)
    assert admitted(limiter, 0, [T0 + 5] * 4) == 1
    assert limiter.closed(T0 + 10) == []
    assert [r.count for r in limiter.closed(T0 + 10, final=True)] == [3.0]
    assert limiter.closed(T0 + 10, final=True) == []


# -- decoder and pipeline ---------------------------------------------------------------------------


def test_the_decoder_drops_before_size_json_or_schema(registry: Registry) -> None:
    limiter = RateLimiter(DeviceRate(1, 2), registry.slots)
    decoder = Decoder(registry, limiter=limiter)
    out = Decoded()
    for payload in (b'{"alarm": false}', b"not json", b"x" * 300_000, b'{"alarm": false}'):
        decoder.decode("fire/D01/smoke/S0000", payload, T0, out)
    assert len(out.readings) == 1
    assert [r.reason for r in out.rejects] == [RejectReason.INVALID_JSON]  # the 3rd and 4th: dropped
    assert limiter.take_batch() == {registry.slot_of["S0000"]: 2}
    # unknown devices and bad topics have no bucket: rejected as before, never limited
    for _ in range(5):
        decoder.decode("fire/D01/smoke/NOPE", b"{}", T0, out)
        decoder.decode("fire/D01/laser/S0000", b"{}", T0, out)
    assert limiter.take_batch() == {registry.slot_of["S0000"]: 5}  # the laser topic names S0000
    assert sum(r.reason is RejectReason.UNKNOWN_DEVICE for r in out.rejects) == 5


class Sink:
    def __init__(self) -> None:
        self.limited: list[dict[int, int]] = []
        self.readings = 0

    def on_readings(self, readings: Sequence[Reading], now_ms: int, limited: Mapping[int, int]) -> list[str]:
        self.readings += len(readings)
        self.limited.append(dict(limited))
        return []


def _count(line: str) -> float:
    match = re.search(r"[ ,]count=([0-9.]+)[ ,]", line)
    assert match is not None, line
    return float(match[1])


def _messages(device: str, count: int, at: int, seq0: int = 0) -> list[InMessage]:
    topic = f"fire/D01/smoke/{device}"
    return [
        InMessage(i, 1, topic, orjson.dumps({"alarm": False, "seq": seq0 + i, "ts": at - 1000}), at, 0)
        for i in range(count)
    ]


def test_the_pipeline_limits_counts_and_writes_one_point_per_device_minute(registry: Registry) -> None:
    clock = [T0]
    sink = Sink()
    metrics = IngestMetrics()
    pipeline = Pipeline(
        registry, metrics, sinks=[sink], clock_ms=lambda: clock[0], device_rate=DeviceRate(5, 30)
    )
    lines: list[str] = []
    seq = 0
    for second in range(90):  # S0000 floods at 50 msg/s for 90 s, S0001 sends 1 msg/s
        at = T0 + second * 1000
        clock[0] = at + 5
        batch = _messages("S0000", 50, at, seq) + _messages("S0001", 1, at, second)
        seq += 50
        lines += pipeline.process(batch)
    clock[0] = T0 + 2 * MINUTE_MS
    lines += pipeline.rate_limited_lines()
    lines += pipeline.rate_limited_lines(final=True)
    readings = [line for line in lines if line.startswith("smoke,")]
    assert sum(",device=S0001," in line for line in readings) == 90  # the other device loses nothing
    passed = sum(",device=S0000," in line for line in readings)
    assert passed == 30 + 5 * 89 + 1 or passed == 30 + 5 * 89  # the burst, then the rate
    rejects = [line for line in lines if line.startswith("rejects,")]
    assert len(rejects) == 2, rejects  # minutes 0 and 1, one point each
    assert all(line.startswith("rejects,reason=rate_limited ") for line in rejects)
    counts = [_count(line) for line in rejects]
    dropped = 90 * 50 - passed
    assert sum(counts) == dropped
    assert counts[0] == 60 * 50 - (30 + 5 * 59) or counts[0] == 60 * 50 - (30 + 5 * 59) - 1
    totals = metrics.totals()
    assert totals["firegrid_rate_limited_total"] == dropped
    assert totals["firegrid_rejects_total"] == dropped
    assert totals["firegrid_messages_received_total"] == 90 * 51
    s0 = registry.slot_of["S0000"]
    assert sum(batch.get(s0, 0) for batch in sink.limited) == dropped
    assert all(set(batch) <= {s0} for batch in sink.limited)
    assert sink.limited[0] == {s0: 20}  # the first second: 50 sent, 30 pass


def test_a_pipeline_running_late_still_writes_one_point_per_device_minute(registry: Registry) -> None:
    """Minutes close by the receipt times of the messages decoded, not by the clock, while
    messages flow: a backlog decoded minutes later adds no second point for a minute."""
    pipeline = Pipeline(
        registry, IngestMetrics(), clock_ms=lambda: T0 + 30 * MINUTE_MS, device_rate=DeviceRate(1, 1)
    )
    lines: list[str] = []
    for second in range(150):  # 2.5 minutes of a 10 msg/s flood, in batches of one second
        lines += pipeline.process(_messages("S0000", 10, T0 + second * 1000, second * 10))
    assert sum(line.startswith("rejects,") for line in lines) == 2  # minutes 0 and 1 are over
    lines += pipeline.rate_limited_lines()  # the clock says minute 2 is over too
    rejects = [line for line in lines if line.startswith("rejects,")]
    assert len(rejects) == 3
    assert [_count(line) for line in rejects] == [540.0, 540.0, 270.0]
    assert pipeline.rate_limited_lines(final=True) == []


def test_without_traffic_a_minute_closes_by_the_clock(registry: Registry) -> None:
    clock = [T0 + 10]
    pipeline = Pipeline(registry, IngestMetrics(), clock_ms=lambda: clock[0], device_rate=DeviceRate(1, 1))
    assert not any(line.startswith("rejects,") for line in pipeline.process(_messages("S0000", 5, T0 + 10)))
    clock[0] = T0 + MINUTE_MS + 999
    assert pipeline.rate_limited_lines() == []
    clock[0] = T0 + MINUTE_MS + 1000
    assert [_count(line) for line in pipeline.rate_limited_lines()] == [4.0]


def test_reload_keeps_the_buckets(registry: Registry) -> None:
    pipeline = Pipeline(registry, IngestMetrics(), clock_ms=lambda: T0, device_rate=DeviceRate(1, 10))
    pipeline.process(_messages("S0000", 10, T0))
    assert pipeline.limiter is not None and pipeline.limiter.dropped == 0
    pipeline.reload(registry)
    pipeline.process(_messages("S0000", 3, T0, 10))
    assert pipeline.limiter.dropped == 3


def test_no_limit_without_a_rate(registry: Registry) -> None:
    pipeline = Pipeline(registry, IngestMetrics(), clock_ms=lambda: T0)
    lines = pipeline.process(_messages("S0000", 1000, T0))
    assert pipeline.limiter is None
    assert sum(line.startswith("smoke,") for line in lines) == 1000
    assert pipeline.rate_limited_lines(final=True) == []
