"""InfluxDB line protocol encoding with exact, per-element escaping.

Escaping differs by element (PITFALLS): measurement names escape comma and space; tag keys, tag
values and field keys escape comma, equals sign and space; string field values escape double
quote and backslash. A newline can never appear inside a line. Two things line protocol cannot
carry are mapped instead of being allowed to break a line:

* newlines and carriage returns (anywhere) become the two characters ``\\n`` / ``\\r``;
* a tag value ending in a backslash (1.x refuses it) gets the backslash replaced by U+29F5 (⧵);

and an empty tag value drops the tag, since InfluxDB refuses empty tags. firegrid's own tags are
validated identifiers and enums, which need none of this; the rules matter for the strings
devices send (patrol notes, hazards) and for the ``rejects`` measurement (topic, error, payload).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # devices._kind encodes with this module
    from devices._kind import FieldValue

_NEWLINES = str.maketrans({"\n": "\\n", "\r": "\\r"})
_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\n", "\r": "\\r"})
_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n", "\r": "\\r"})
_STRING = str.maketrans({'"': '\\"', "\\": "\\\\", "\n": "\\\\n", "\r": "\\\\r"})


def escape_measurement(name: str) -> str:
    return name.translate(_MEASUREMENT)


def escape_key(key: str) -> str:
    """Escape a tag key, a tag value or a field key."""
    if key.endswith("\\"):
        key = key[:-1] + "\u29f5"
    return key.translate(_KEY)


def quote_string(value: str) -> str:
    """A string field value, quoted and escaped."""
    return '"' + value.translate(_STRING) + '"'


FLOAT_TEXTS_MAX = 1 << 14
"""Entries of :data:`FLOAT_TEXT` (~2 MB at most); it is emptied when full."""


class _FloatTexts(dict[float, str]):
    """``repr(float(x))`` by value, each distinct value formatted once: readings repeat a small
    set of values (a sensor's resolution), and ``repr`` of a float (~150 ns) was most of the
    cost of a reading's fields (issue 17). Zero is never stored: ``0.0 == -0.0`` as a key, but
    their texts differ."""

    def __missing__(self, value: float) -> str:
        text = repr(float(value))
        if value:
            if len(self) >= FLOAT_TEXTS_MAX:
                self.clear()
            self[value] = text
        return text


FLOAT_TEXT: Mapping[float, str] = _FloatTexts()
"""``FLOAT_TEXT[x]`` is ``repr(float(x))`` for an int or a float (the line protocol of a number
field); shared by every thread (a dict's operations are atomic)."""


def format_value(value: FieldValue) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return quote_string(value)
    return repr(float(value))


def series_key(measurement: str, tags: Iterable[tuple[str, str]]) -> str:
    """``measurement,tag=value,...`` with tags sorted by key (InfluxDB's preferred order)."""
    parts = [escape_measurement(measurement)]
    parts.extend(f"{escape_key(k)}={escape_key(v)}" for k, v in sorted(tags) if v)
    return ",".join(parts)


def encode_fields(fields: Mapping[str, FieldValue]) -> str:
    return ",".join(f"{escape_key(k)}={format_value(v)}" for k, v in fields.items())


def encode_trusted_fields(fields: Mapping[str, FieldValue]) -> str:
    """Like :func:`encode_fields` for field keys that need no escaping (the device kinds' own
    names, checked by a test): the hot path of ingest, several times faster."""
    parts = []
    for key, value in fields.items():
        kind = type(value)
        if kind is float:
            parts.append(f"{key}={value!r}")
        elif kind is bool:
            parts.append(f"{key}=true" if value else f"{key}=false")
        else:
            parts.append(f"{key}={quote_string(str(value))}")
    return ",".join(parts)


def encode_line(series: str, fields: Mapping[str, FieldValue], ts_ms: int) -> str:
    """One line (no trailing newline). ``series`` comes from :func:`series_key`."""
    if not fields:
        raise ValueError("a point needs at least one field")
    return f"{series} {encode_fields(fields)} {ts_ms}"


def expected_string(value: str) -> str:
    """What InfluxDB returns for a string field written from ``value`` (newlines are rendered)."""
    return value.translate(_NEWLINES)
