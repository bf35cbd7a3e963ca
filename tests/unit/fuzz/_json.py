"""A JSON writer for fuzzing: what orjson refuses to write (duplicated keys, NaN, 1e400, huge
integers, lone surrogate escapes), and the value a strict parser would see (last key wins).

A document is built from plain JSON values plus two markers:

* :class:`Raw` — bytes written as they are (``NaN``, ``-Infinity``, ``1e400``, ``"\\ud800"``);
  a document holding one has no known value (:func:`value_of` answers :data:`UNKNOWN`);
* :class:`Pairs` — an object written from a list of (key, value), so keys may repeat.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes written verbatim into the document."""

    text: bytes
    nonfinite: bool = False
    """True for the literals a strict JSON parser must refuse (``NaN``, ``Infinity``, ``-Infinity``)."""


@dataclass(frozen=True, slots=True)
class Pairs:
    """An object as (key, value) pairs, in order; a key may appear more than once."""

    items: tuple[tuple[str, object], ...]


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()
"""The value of a document holding a :class:`Raw` token."""


def dumps(value: object, *, ascii_only: bool = False, spaced: bool = False) -> bytes:
    """The document as UTF-8 bytes (``ascii_only``: non-ASCII as ``\\u`` escapes)."""
    out: list[bytes] = []
    _write(value, out, ascii_only, b", " if spaced else b",", b": " if spaced else b":")
    return b"".join(out)


def _write(value: object, out: list[bytes], ascii_only: bool, comma: bytes, colon: bytes) -> None:
    if isinstance(value, Raw):
        out.append(value.text)
    elif value is None:
        out.append(b"null")
    elif value is True:
        out.append(b"true")
    elif value is False:
        out.append(b"false")
    elif isinstance(value, int):
        out.append(str(value).encode())
    elif isinstance(value, float):
        out.append(repr(value).encode())  # finite only: the generators never put inf/nan here
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=ascii_only).encode())
    elif isinstance(value, list | tuple):
        out.append(b"[")
        written: dict[int, bytes] = {}  # a big batch repeats a few element objects: write each once
        for i, item in enumerate(value):
            if i:
                out.append(comma)
            text = written.get(id(item))
            if text is None:
                part: list[bytes] = []
                _write(item, part, ascii_only, comma, colon)
                text = written[id(item)] = b"".join(part)
            out.append(text)
        out.append(b"]")
    elif isinstance(value, dict | Pairs):
        items = value.items if isinstance(value, Pairs) else tuple(value.items())
        out.append(b"{")
        for i, (key, item) in enumerate(items):
            if i:
                out.append(comma)
            out.append(json.dumps(key, ensure_ascii=ascii_only).encode())
            out.append(colon)
            _write(item, out, ascii_only, comma, colon)
        out.append(b"}")
    else:
        raise TypeError(f"not a JSON value: {value!r}")


def value_of(value: object) -> object:
    """What a parser makes of the document (duplicated keys: the last wins), or :data:`UNKNOWN`."""
    if isinstance(value, Raw):
        return UNKNOWN
    if isinstance(value, list | tuple):
        items = [value_of(item) for item in value]
        return UNKNOWN if any(item is UNKNOWN for item in items) else items
    if isinstance(value, dict | Pairs):
        pairs = value.items if isinstance(value, Pairs) else tuple(value.items())
        document: dict[str, object] = {}
        for key, item in pairs:
            parsed = value_of(item)
            if parsed is UNKNOWN:  # even when a later duplicate replaces it: the parser saw it
                return UNKNOWN
            document.pop(key, None)
            document[key] = parsed
        return document
    return value


def has_nonfinite(value: object) -> bool:
    """True when the document holds a ``NaN``/``Infinity`` literal anywhere."""
    if isinstance(value, Raw):
        return value.nonfinite
    if isinstance(value, list | tuple):
        return any(has_nonfinite(item) for item in value)
    if isinstance(value, dict):
        return any(has_nonfinite(item) for item in value.values())
    if isinstance(value, Pairs):
        return any(has_nonfinite(item) for _, item in value.items)
    return False


def depth(value: object) -> int:
    """Nesting of the document as written (values a later duplicate key replaces included)."""
    if isinstance(value, list | tuple):
        return 1 + max((depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    if isinstance(value, Pairs):
        return 1 + max((depth(item) for _, item in value.items), default=0)
    return 0


def overflows(value: object) -> bool:
    """True when the document holds an integer beyond a double's range (orjson refuses it)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return abs(value) > sys.float_info.max
    if isinstance(value, list | tuple):
        return any(overflows(item) for item in value)
    if isinstance(value, dict):
        return any(overflows(item) for item in value.values())
    if isinstance(value, Pairs):
        return any(overflows(item) for _, item in value.items)
    return False
