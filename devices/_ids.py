"""Identifier rules shared by every part of the contract (CONTRACT §2)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from itertools import filterfalse
from typing import Annotated

from pydantic import StringConstraints

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""A pydantic type for device_id, grid_id, site_id, worker_id, station_id and district."""


def is_identifier(value: str) -> bool:
    """True when ``value`` is a valid identifier; identifiers need no escaping in line protocol."""
    return _ID_RE.fullmatch(value) is not None


def invalid_identifiers(values: Iterable[str]) -> set[str]:
    """The distinct ``values`` that are not identifiers (each distinct value matched once)."""
    return set(filterfalse(_ID_RE.fullmatch, set(values)))
