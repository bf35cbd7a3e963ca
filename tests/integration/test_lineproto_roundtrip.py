"""Arbitrary strings in tags and string fields round-trip through the real InfluxDB."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firegrid._services import Influxd
from ingest import encode_line, expected_string, series_key
from tests.helpers import HTTP, influx_query

_clock = itertools.count(1_000_000)
# Line protocol can carry every character except in the two mapped cases (see devices._lineproto);
# tags are compared exactly when they avoid those cases, strings always through expected_string.
text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
plain_tag = text.filter(lambda s: not s.endswith("\\") and "\n" not in s and "\r" not in s)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tag=plain_tag, note=st.text(max_size=200).filter(lambda s: "\x00" not in s), other=text)
def test_tags_and_strings_round_trip(
    influx: Influxd, influx_db: str, tag: str, note: str, other: str
) -> None:
    HTTP.post(f"{influx.url}/query", data={"q": f'CREATE DATABASE "{influx_db}"'}, timeout=10)
    ts = next(_clock)
    line = encode_line(series_key("m", (("t", tag), ("z", other))), {"note": note, "v": 1.0}, ts)
    response = HTTP.post(
        f"{influx.url}/write",
        params={"db": influx_db, "precision": "ms"},
        content=(line + "\n").encode(),
        timeout=10,
    )
    assert response.status_code == 204, (line, response.text)
    rows = influx_query(influx.url, influx_db, f"SELECT * FROM m WHERE time = {ts}ms")
    assert len(rows) == 1, line  # one point: nothing injected a second line
    row = rows[0]
    assert row["t"] == tag
    assert row["note"] == expected_string(note)
    assert row["v"] == 1.0
    assert set(row) == {"time", "t", "z", "note", "v"}
