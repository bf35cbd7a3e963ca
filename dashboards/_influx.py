"""InfluxQL targets for Grafana panels, and the Grafana macro interpolation used to test them.

``grafana-foundation-sdk`` ships no InfluxDB query builder, so :class:`InfluxQuery` is a minimal
``Dataquery`` that serialises to the raw-InfluxQL target shape Grafana's InfluxDB datasource
stores (``rawQuery: true``). Every target points at the one provisioned datasource
(:data:`DATASOURCE_UID`). :func:`select` writes the one query shape every panel uses.

:func:`interpolate` substitutes the macros and template variables the dashboards use the way
Grafana does before it sends a query, so that the queries can be run against a real InfluxDB in
tests (no Grafana can run there).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as model

DATASOURCE_UID = "firegrid-influxdb"
"""The uid of the provisioned InfluxDB datasource (deploy/grafana/provisioning/datasources)."""

DATASOURCE_TYPE = "influxdb"

ALL_VALUE = ".*"
"""What a template variable's "All" expands to: a regex, used as ``=~ /^$var$/``."""

ResultFormat = Literal["time_series", "table"]


def datasource_ref() -> model.DataSourceRef:
    return model.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)


class InfluxQuery(cogvariants.Dataquery):
    """One raw InfluxQL target."""

    def __init__(self, ref_id: str, query: str, result_format: ResultFormat, alias: str | None) -> None:
        self.ref_id = ref_id
        self.query = query
        self.result_format: ResultFormat = result_format
        self.alias = alias

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "rawQuery": True,
            "query": self.query,
            "resultFormat": self.result_format,
            "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        return payload


class InfluxQueryBuilder(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, query: str) -> None:
        self._internal = InfluxQuery("A", " ".join(query.split()), "time_series", None)

    def build(self) -> cogvariants.Dataquery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self

    def table(self) -> Self:
        self._internal.result_format = "table"
        return self

    def alias(self, alias: str) -> Self:
        self._internal.alias = alias
        return self


def influx(query: str) -> InfluxQueryBuilder:
    """A raw InfluxQL target; whitespace in ``query`` is collapsed to single spaces."""
    return InfluxQueryBuilder(query)


def scope(*, grid: bool = True) -> str:
    """The WHERE condition that applies the ``district`` (and ``grid``) template variables."""
    cond = '"district" =~ /^$district$/'
    if grid:
        cond += ' AND "grid" =~ /^$grid$/'
    return cond


GRID_SCOPE = scope()
"""The ``district`` and ``grid`` variables: what most queries apply."""


# --- query text -------------------------------------------------------------------------------


def keys(*names: str) -> str:
    """Field or tag keys as an InfluxQL list: ``"a", "b"``."""
    return ", ".join(f'"{name}"' for name in names)


def per_interval(*tags: str, fill: str = "null") -> str:
    """GROUP BY one series per ``tags``, one value per ``$__interval``: ``time(…), "tag" fill(…)``."""
    return f"time($__interval), {keys(*tags)} fill({fill})"


def select(
    columns: str,
    measurement: str,
    *conditions: str,
    variables: str | None = GRID_SCOPE,
    group_by: str | None = None,
    newest: int | None = None,
) -> str:
    """``SELECT columns FROM "measurement" WHERE conditions… AND $timeFilter AND variables``.

    ``variables`` is the condition that applies the template variables (by default the
    ``district`` and ``grid`` ones; None for a measurement without those tags), ``group_by``
    the text after GROUP BY; ``newest`` keeps the newest points (``ORDER BY time DESC LIMIT``).
    """
    where = " AND ".join([*conditions, "$timeFilter", *([variables] if variables else [])])
    query = f'SELECT {columns} FROM "{measurement}" WHERE {where}'
    if group_by is not None:
        query += f" GROUP BY {group_by}"
    if newest is not None:
        query += f" ORDER BY time DESC LIMIT {newest}"
    return query


# --- interpolation ----------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_REGEX_SPECIAL = re.compile(r"([\\/^$.|?*+()\[\]{}])")


def format_interval(ms: int) -> str:
    """Grafana's rendering of an interval (``$__interval``): ``500ms``, ``10s``, ``5m``, ``1h``, ``1d``."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _regex_value(values: Sequence[str] | None) -> str:
    if values is None:
        return ALL_VALUE
    escaped = [_REGEX_SPECIAL.sub(r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(
    query: str,
    *,
    variables: Mapping[str, Sequence[str] | None],
    time_from_ms: int,
    time_to_ms: int,
    interval_ms: int,
) -> str:
    """Substitute Grafana macros and template variables in an InfluxQL ``query``.

    ``variables`` maps a variable name to its selected values, or to ``None`` for "All" (which
    expands to :data:`ALL_VALUE`). Values are regex-escaped, and several values become
    ``(a|b)``, as Grafana formats them for InfluxQL regex matches. Raises ``KeyError`` for a
    variable that is neither a known macro nor in ``variables``.
    """
    text = query.replace("$timeFilter", f"time >= {time_from_ms}ms and time <= {time_to_ms}ms")
    text = text.replace("$__interval_ms", str(interval_ms))
    text = text.replace("$__interval", format_interval(interval_ms))
    text = text.replace("$__from", str(time_from_ms)).replace("$__to", str(time_to_ms))

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in variables:
            raise KeyError(f"unknown template variable ${name} in query: {query}")
        return _regex_value(variables[name])

    return _VARIABLE.sub(replace, text)
