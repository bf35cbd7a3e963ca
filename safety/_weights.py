"""The weights of the index tree (groups → indicators): the packaged defaults (``index.toml``
next to this module, with the reason for each) overlaid with the file ``FIREGRID_INDEX`` names.

:func:`load_weights` raises :class:`WeightsError` with one readable line for anything wrong: a
file that cannot be read or is not TOML, an unknown group or indicator, a weight that is not a
non-negative number, a group (or the set of groups) whose weights add up to 0.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

DEFAULTS: Final = Path(__file__).with_name("index.toml")
GROUPS: Final = "groups"


class WeightsError(ValueError):
    """The weights file is wrong; the message is one line naming the file and the problem."""


@dataclass(frozen=True, slots=True)
class Weights:
    groups: Mapping[str, float]
    """group → its weight in the index."""
    indicators: Mapping[str, Mapping[str, float]]
    """group → indicator → its weight in the group."""
    source: str
    """Where they came from: ``defaults`` or the file's path."""

    def weight(self, group: str, indicator: str | None = None) -> float:
        return self.groups[group] if indicator is None else self.indicators[group][indicator]


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read it: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise WeightsError(f"{path}: not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise WeightsError(f"{path}: not valid TOML: {exc}") from exc


def _number(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise WeightsError(f"{where} must be a non-negative number, not {value!r}")
    return float(value)


def _overlay(base: dict[str, dict[str, float]], raw: Mapping[str, Any], origin: str) -> None:
    for section, table in raw.items():
        if section not in base:
            known = ", ".join(base)
            raise WeightsError(f"{origin}: unknown section [{section}] (known: {known})")
        if not isinstance(table, dict):
            raise WeightsError(f"{origin}: [{section}] must be a table of weights")
        for name, value in table.items():
            if name not in base[section]:
                known = ", ".join(base[section])
                raise WeightsError(f"{origin}: unknown weight {name} in [{section}] (known: {known})")
            base[section][name] = _number(f"{origin}: [{section}] {name}", value)


def _defaults() -> dict[str, dict[str, float]]:
    raw = _read(DEFAULTS)
    return {section: {name: float(value) for name, value in table.items()} for section, table in raw.items()}


def load_weights(path: Path | None = None) -> Weights:
    """The defaults, overlaid with ``path`` when given."""
    tree = _defaults()
    origin = "defaults"
    if path is not None:
        origin = str(path)
        _overlay(tree, _read(path), origin)
    groups = tree.pop(GROUPS)
    if not sum(groups.values()) > 0:
        raise WeightsError(f"{origin}: the weights of [groups] add up to 0")
    for group, indicators in tree.items():
        if not sum(indicators.values()) > 0:
            raise WeightsError(f"{origin}: the weights of [{group}] add up to 0")
    return Weights(groups=groups, indicators=tree, source=origin)
