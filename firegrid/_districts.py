"""Several `firegrid ingest` instances, each owning a set of districts (``FIREGRID_DISTRICTS``,
issue 17): the registry an instance works on, the MQTT subscriptions it makes, who answers a
worker's action, and the claim on its data dir.

An instance sees the whole registry but *works* on its own districts only: the devices of the
other districts are retired in its working copy (same slots, so rule snapshots keep their
layout), and only its districts' grids and stations are in it. So its decoder, rules, timers
(offline, missed patrols, escalation), event store, ``fleet`` points and ``/index`` cover its
districts and nothing else, without any of those packages knowing of instances. HTTP rights
(``access.Access``) are built from the whole registry: a worker of another district is still a
worker here, who simply has no events on this instance.

Worker actions (``actions/{worker_id}``) reach every instance, since a topic names the worker,
not the district. Exactly one instance answers each (see :class:`ActionRouter`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import orjson

from devices import RETIRED, Registry, SettingsError, Topics

IDENTITY_FILE = "instance.json"
LOCK_FILE = "instance.lock"


def parse_districts(value: str) -> tuple[str, ...]:
    """``FIREGRID_DISTRICTS``: comma-separated district ids, sorted, without repeats; empty: all."""
    return tuple(sorted({part.strip() for part in value.split(",") if part.strip()}))


def districts_suffix(districts: Iterable[str]) -> str:
    """A short, stable name for a set of districts: the ids joined by ``_`` while that stays
    short (``D01_D02``), otherwise ``h`` and 10 hex digits of their SHA-1."""
    names = sorted(districts)
    joined = "_".join(names)
    if len(joined) <= 40:
        return joined
    return "h" + hashlib.sha1(",".join(names).encode()).hexdigest()[:10]


def check_districts(registry: Registry, districts: tuple[str, ...]) -> None:
    """SettingsError (one line) when ``districts`` names a district the registry does not have."""
    unknown = [d for d in districts if d not in set(registry.districts)]
    if unknown:
        known = ", ".join(registry.districts[:20]) + (" …" if len(registry.districts) > 20 else "")
        raise SettingsError(
            f"invalid setting FIREGRID_DISTRICTS: unknown district{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} (the registry {registry.path} has {known})"
        )


def own_registry(registry: Registry, districts: tuple[str, ...]) -> Registry:
    """``registry`` as an instance owning ``districts`` works on it: every other district's
    devices retired (their slots kept), only these districts' grids and stations."""
    wanted = set(districts)
    mine = np.array([name in wanted for name in registry.districts], dtype=np.bool_)
    kind_code = registry.kind_code.copy()
    if len(registry.districts):
        kind_code[~mine[registry.district_idx]] = RETIRED
    return Registry(
        path=registry.path,
        grids={gid: g for gid, g in registry.grids.items() if g.district in wanted},
        workers=registry.workers,
        stations=tuple(s for s in registry.stations if s.district in wanted),
        device_ids=registry.device_ids,
        kind_code=kind_code,
        district_idx=registry.district_idx,
        districts=registry.districts,
        grid_idx=registry.grid_idx,
        grid_names=registry.grid_names,
        site_idx=registry.site_idx,
        sites=registry.sites,
        lat=registry.lat,
        lon=registry.lon,
        overrides=registry.overrides,
        warnings=registry.warnings,
    )


def readings_subscriptions(topics: Topics, districts: tuple[str, ...]) -> list[str]:
    """``fire/{district}/#`` for each district; ``fire/#`` for an instance owning them all."""
    if not districts:
        return [topics.readings_subscription]
    base = topics.readings_subscription.removesuffix("#")
    return [f"{base}{district}/#" for district in districts]


class ActionRouter:
    """Which instance answers a worker's action (CONTRACT §8), when each owns some districts.

    - A plain worker whose grids all lie in one instance's districts acts only on events of
      those grids (any other is refused): that instance answers all of the worker's actions,
      an unknown event included; every other instance ignores them.
    - A supervisor (who may close any event) or a worker whose grids span instances: the
      instance that has the event answers; the others ignore it. An action on an event no
      instance has gets no answer (no instance can know that no other has it).
    - An action without a readable ``event_id``, or by a worker with no grid or unknown to the
      registry: the instance owning the registry's first district answers (with the refusal).

    ``districts`` empty: one instance owns everything and answers every action.
    """

    def __init__(self, registry: Registry, districts: tuple[str, ...]) -> None:
        self.districts = frozenset(districts)
        self.all = not districts
        self._first = registry.districts[0] if registry.districts else ""
        districts_of: dict[str, set[str]] = {}
        for grid in registry.grids.values():
            for worker in grid.workers:
                districts_of.setdefault(worker, set()).add(grid.district)
        self._districts_of = districts_of
        self._supervisors = frozenset(w for w, worker in registry.workers.items() if worker.is_supervisor)

    def decide(self, worker_id: str | None, payload: bytes | bytearray, knows: Callable[[str], bool]) -> bool:
        """Whether this instance handles the action ``payload`` of ``worker_id``; ``knows(id)``
        tells whether the event is in this instance's store."""
        if self.all:
            return True
        event_id = _event_id(payload)
        owners = self._districts_of.get(worker_id or "", set())
        if worker_id is not None and worker_id not in self._supervisors and owners:
            if owners <= self.districts:
                return True  # the worker's only instance
            if owners.isdisjoint(self.districts):
                return False  # the worker's events are all elsewhere
        if event_id is None or (not owners and worker_id not in self._supervisors):
            return self._first in self.districts
        return knows(event_id)


def _event_id(payload: bytes | bytearray) -> str | None:
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    event_id = body.get("event_id") if isinstance(body, dict) else None
    return event_id if isinstance(event_id, str) and event_id else None


@dataclass
class DataDirClaim:
    """The lock an instance holds on its data dir while it runs, and the identity (its
    districts) written there: two instances never share a spool, event store or snapshot."""

    path: Path
    handle: IO[str]

    def release(self) -> None:
        if not self.handle.closed:
            self.handle.close()  # closing the file releases the lock


def claim_data_dir(data_dir: Path, districts: tuple[str, ...], client_id: str) -> DataDirClaim:
    """Lock ``data_dir`` for this process and check (then write) which districts it belongs to;
    SettingsError with one line when another running instance holds it or it belongs to an
    instance of other districts."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_path = data_dir / LOCK_FILE
    handle = lock_path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        handle.close()
        raise SettingsError(
            f"invalid setting FIREGRID_DATA_DIR: {data_dir} is in use by another running firegrid "
            f"ingest ({holder}); each instance needs a data dir of its own"
        ) from None
    try:
        identity_path = data_dir / IDENTITY_FILE
        owned = list(districts) if districts else "all"
        if identity_path.exists():
            try:
                recorded = json.loads(identity_path.read_text(encoding="utf-8")).get("districts")
            except (OSError, ValueError, AttributeError):
                recorded = None
            if recorded is not None and recorded != owned:
                shown = "all districts" if recorded == "all" else f"districts {', '.join(map(str, recorded))}"
                raise SettingsError(
                    f"invalid setting FIREGRID_DATA_DIR: {data_dir} belongs to an instance of {shown} "
                    f"(its {IDENTITY_FILE}); each instance needs a data dir of its own (remove that "
                    "file only when its events and spool really move to this district set)"
                )
        temp = identity_path.with_suffix(".tmp")
        temp.write_text(json.dumps({"districts": owned, "client_id": client_id}) + "\n", encoding="utf-8")
        os.replace(temp, identity_path)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, client id {client_id}\n")
        handle.flush()
    except BaseException:
        handle.close()
        raise
    return DataDirClaim(data_dir, handle)


__all__ = [
    "ActionRouter",
    "DataDirClaim",
    "check_districts",
    "claim_data_dir",
    "districts_suffix",
    "own_registry",
    "parse_districts",
    "readings_subscriptions",
]
