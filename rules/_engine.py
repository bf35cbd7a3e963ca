"""The rules engine: per-device state in numpy arrays, batches evaluated vectorised.

Time is always passed in: ``now_ms`` is the service clock (epoch ms) of the caller; durations of
``for`` conditions are measured on the readings' own ``ts``. The engine never reads a clock,
sleeps or does I/O, except through :mod:`rules._snapshot`, which saves and loads snapshots at a path.

Slots and local indices: every registry slot of kind *k* gets a local index into *k*'s state
arrays, stable across reloads (a reload only appends). A retired slot keeps its entry but stops
producing hits; a device that comes back continues with its old state and a fresh offline timer.

Repeated devices in one batch are evaluated in *rounds*: round *r* holds every device's *r*-th
reading of the batch, so each round has unique local indices and fancy-indexed gathers and
scatters are exact. A batch without repeats is one round.

Small batches (``small_batch``, 16 readings of a kind, distinct devices) are offered to each
family's :meth:`Family.process_small` first, in plain Python; only the families that decline
(something may raise or clear) run their vectorised ``process`` (see rules/README.md).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from devices import KIND_CODE, KINDS, RETIRED, Reading, Registry, RulesError
from rules._all import FAMILIES, extractor
from rules._config import RulesConfig
from rules._family import Array, Batch, Cols, Context, Drops, Family, Int64s, KindView, Small, Ticks
from rules._hit import Hit
from rules._offline import OfflineRules

log = logging.getLogger(__name__)

_SLOT = attrgetter("slot")
_TS = attrgetter("ts")

SNAPSHOT_VERSION = 1

SMALL_BATCH = 16
"""Batches of up to this many readings, and in larger batches the kinds with up to this many
readings, go through :meth:`RuleEngine._small_kind` (plain Python per reading, each family's
:meth:`Family.process_small`) rather than numpy: below it numpy's fixed cost per batch dominates."""


class RuleEngine:
    """Evaluate readings and timers; see the module docstring.

    ``RuleEngine(registry, config, now_ms)`` starts fresh at service time ``now_ms``: devices
    never heard from count as silent from then on.
    """

    small_batch: int = SMALL_BATCH
    """Batches of at most this many readings take the small path (0: never; tests compare both)."""

    def __init__(self, registry: Registry, config: RulesConfig | None = None, now_ms: int = 0) -> None:
        self._ctx = Context(registry, config or RulesConfig())
        self._families: list[Family] = [family(self._ctx) for family in FAMILIES]
        self._by_kind: dict[str, list[Family]] = {
            spec.name: [f for f in self._families if spec.name in f.kinds] for spec in KINDS
        }
        self._local: Int64s = np.zeros(0, dtype=np.int64)
        """slot → local index within its kind (-1: none)."""
        self._local_code: Array = np.zeros(0, dtype=np.int8)
        """slot → kind code of its local entry (-1: none)."""
        self._live: Array = np.zeros(0, dtype=np.int8)
        """slot → kind code of its local entry while the registry gives the device that kind
        (-1: none, retired, or of another kind now): the readings the engine evaluates."""
        self._views: dict[str, KindView] = {
            spec.name: KindView(spec.name, KIND_CODE[spec.name], np.zeros(0, np.int64), np.zeros(0, np.bool_))
            for spec in KINDS
        }
        self._cols: dict[str, dict[str, Cols]] = {
            spec.name: {f.name: _empty(f, spec.name) for f in self._by_kind[spec.name]} for spec in KINDS
        }
        self._small_order: dict[str, list[tuple[Family, Cols]]] = {
            kind: [(f, self._cols[kind][f.name]) for f in sorted(families, key=lambda f: f.rounds)]
            for kind, families in self._by_kind.items()
        }
        """For :meth:`_small_kind`, each kind's families (with their columns, dicts the engine
        keeps) in the order of :meth:`_process_kind` for a batch without repeats: the families
        that take the whole batch, then those that take rounds (then every finish)."""
        self._finish_order: dict[str, list[tuple[Family, Cols]]] = {
            kind: [(f, self._cols[kind][f.name]) for f in families]
            for kind, families in self._by_kind.items()
        }
        self._finish_small: dict[str, list[tuple[Family, Cols]]] = {
            kind: [(f, c) for f, c in order if type(f).finish_small is not Family.finish_small]
            for kind, order in self._finish_order.items()
        }
        self._id_texts: dict[str, Array] = {}
        self.started_ms = now_ms
        self._clock = now_ms
        self._suspended_at: int | None = None
        self._sync(registry, now_ms)

    # -- public API ---------------------------------------------------------------------------

    def fleet(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(district, kind) → (registered, offline) for the kinds that can be offline."""
        districts = self.registry.districts
        counts: dict[tuple[str, str], tuple[int, int]] = {}
        for kind, cols in self._cols.items():
            offline_cols = cols.get(OfflineRules.state_key)
            if offline_cols is None:
                continue
            view = self._views[kind]
            slots = view.slots[view.alive & (view.slots >= 0)]
            raised = offline_cols["raised"][view.alive & (view.slots >= 0)]
            district = self.registry.district_idx[slots]
            registered = np.bincount(district, minlength=len(districts))
            offline = np.bincount(district, weights=raised.astype(np.float64), minlength=len(districts))
            for index, name in enumerate(districts):
                if registered[index]:
                    counts[(name, kind)] = (int(registered[index]), int(offline[index]))
        return counts

    @property
    def registry(self) -> Registry:
        return self._ctx.registry

    @property
    def config(self) -> RulesConfig:
        return self._ctx.config

    @property
    def suspended(self) -> bool:
        return self._suspended_at is not None

    def process(self, readings: Sequence[Reading], now_ms: int) -> list[Hit]:
        """Evaluate a batch of valid readings received at service time ``now_ms``.

        Readings of one device must be in ``ts`` order; readings of unknown or retired slots, or
        whose kind differs from the registry's, are ignored.
        """
        self._clock = max(self._clock, now_ms)
        out: list[Hit] = []
        if not readings:
            return out
        if self._ctx.ticks:
            out += self.overdue(readings)
        n = len(readings)
        if n <= self.small_batch:
            self._process_small(readings, now_ms, out)
            return out
        slots = np.fromiter(map(_SLOT, readings), dtype=np.int64, count=n)
        ts = np.fromiter(map(_TS, readings), dtype=np.int64, count=n)
        codes = self._codes(slots)
        present = np.unique(codes)
        if present.size == 1 and present[0] >= 0:
            self._process_kind(KINDS[int(present[0])].name, list(readings), slots, ts, now_ms=now_ms, out=out)
            return out
        if present[0] < 0:
            log.debug("rules: ignoring %d readings of unknown or retired devices", int((codes < 0).sum()))
        for code in present.tolist():
            if code < 0:
                continue
            idx = np.flatnonzero(codes == code)
            group = [readings[i] for i in idx.tolist()]
            if idx.size <= self.small_batch:  # a kind with few readings in a mixed batch
                self._small_kind(KINDS[code].name, group, now_ms, out)
            else:
                self._process_kind(KINDS[code].name, group, slots[idx], ts[idx], now_ms=now_ms, out=out)
        return out

    def limited(self, dropped: Mapping[int, int], now_ms: int, limit_per_s: float | None = None) -> list[Hit]:
        """Ingest's per-device rate limit dropped ``dropped[slot]`` messages of each device in the
        batch handled at service time ``now_ms`` (DEVICE_FLOODING, CONTRACT §10); ``limit_per_s``
        is the sustained limit, for the hits' threshold. Unknown or retired slots are ignored."""
        self._clock = max(self._clock, now_ms)
        out: list[Hit] = []
        if not dropped:
            return out
        n = len(dropped)
        slots = np.fromiter(dropped.keys(), dtype=np.int64, count=n)
        counts = np.fromiter(dropped.values(), dtype=np.int64, count=n)
        codes = self._codes(slots)
        for code in np.unique(codes).tolist():
            if code < 0:
                continue
            idx = np.flatnonzero(codes == code)
            kind = KINDS[code].name
            drops = Drops(kind, slots[idx], self._local[slots[idx]], counts[idx], now_ms, limit_per_s)
            for family in self._by_kind[kind]:
                family.limited(drops, self._cols[kind][family.name], out)
        return out

    def tick(self, now_ms: int, limit: int | None = None) -> list[Hit]:
        """Fire the timers due at ``now_ms`` (DEVICE_OFFLINE, PATROL_MISSED, the clear of
        DEVICE_FLOODING); nothing while suspended. With ``limit``, at most ``limit`` offline and
        missed timers, the earliest due first (a mass silence, issue 17): the rest wait, and
        :attr:`behind` says so until a later tick has fired them. A hit's ``ts`` (and the silence
        in its ``value``) is the time its timer fired, the first tick at or after its due time:
        the same hits as unlimited ticks at the same times."""
        self._clock = max(self._clock, now_ms)
        out: list[Hit] = []
        if self._suspended_at is not None:
            return out
        ticks = self._ctx.ticks
        ticks.record(now_ms)
        room = limit
        for kind, families in self._by_kind.items():
            view = self._views[kind]
            for family in families:
                fired = family.tick(view, self._cols[kind][family.name], now_ms, out, room)
                if room is not None:
                    room -= fired
        if room is None or room > 0 or not self._due(now_ms):
            ticks.clear()
        return out

    def overdue(self, readings: Sequence[Reading]) -> list[Hit]:
        """The raises of the timers of these readings' devices that a limited :meth:`tick` left
        waiting, at the times they fired (their ``ts``): a caller that applies hits at their time
        takes them before :meth:`process`, which otherwise puts them ahead of its own (a device
        back online: the raise, then the clear)."""
        out: list[Hit] = []
        if not self._ctx.ticks:
            return out
        slots = np.fromiter(map(_SLOT, readings), dtype=np.int64, count=len(readings))
        codes = self._codes(slots)
        for code in np.unique(codes[codes >= 0]).tolist():
            kind = KINDS[code].name
            local = np.unique(self._local[slots[codes == code]])
            for family in self._by_kind[kind]:
                family.overdue(self._views[kind], self._cols[kind][family.name], local, out)
        return out

    def catch_up(self) -> list[Hit]:
        """Fire every timer a limited :meth:`tick` left waiting, as it would have, and no other
        (a clean stop)."""
        ticks = self._ctx.ticks
        return self.tick(ticks.times[-1]) if self.behind else []

    def _due(self, now_ms: int) -> bool:
        due = self.next_deadline()
        return due is not None and due <= now_ms

    @property
    def behind(self) -> bool:
        """A limited :meth:`tick` left timers due (the next ticks fire them); never while suspended."""
        return bool(self._ctx.ticks) and self._suspended_at is None

    def next_deadline(self) -> int | None:
        """The earliest service time at which :meth:`tick` has something to do (None: nothing)."""
        if self._suspended_at is not None:
            return None
        best: int | None = None
        for kind, families in self._by_kind.items():
            view = self._views[kind]
            for family in families:
                due = family.deadline(view, self._cols[kind][family.name])
                if due is not None and (best is None or due < best):
                    best = due
        return best

    def suspend(self, now_ms: int) -> None:
        """firegrid cannot receive from ``now_ms`` on (broker connection lost)."""
        if self._suspended_at is None:
            self._suspended_at = now_ms

    def resume(self, now_ms: int) -> None:
        """Receiving again: timers that were running move by the deaf interval."""
        if self._suspended_at is None:
            return
        deaf_from, self._suspended_at = self._suspended_at, None
        self._shift(deaf_from, now_ms - deaf_from)
        self._clock = max(self._clock, now_ms)

    def reload(self, registry: Registry, now_ms: int | None = None) -> None:
        """Take a reloaded registry (``Registry.load(path, previous=...)``: known slots stay put)."""
        if registry.slots < self.registry.slots:
            raise ValueError("a reloaded registry must keep every slot (load it with previous=...)")
        self._ctx.registry = registry
        self._sync(registry, self._clock if now_ms is None else now_ms)

    # -- snapshot -----------------------------------------------------------------------------

    def snapshot(self, now_ms: int | None = None) -> bytes:
        """The whole rule state as bytes (numpy ``.npz``, no pickle), saved at service time ``now_ms``."""
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **self.snapshot_arrays(now_ms))
        return buffer.getvalue()

    def snapshot_arrays(self, now_ms: int | None = None) -> dict[str, Array]:
        """What :meth:`snapshot` stores, as named arrays. The state columns are the live arrays,
        not copies: copy them before the engine runs on (see :class:`rules.SnapshotWriter`)."""
        saved_at = self._clock if now_ms is None else now_ms
        arrays: dict[str, Array] = {}
        kinds: dict[str, int] = {}
        for kind, view in self._views.items():
            kinds[kind] = view.n
            arrays[f"ids/{kind}"] = self._id_text(kind)
            for family_name, cols in self._cols[kind].items():
                for column, values in cols.items():
                    arrays[f"col/{kind}/{family_name}/{column}"] = values
        meta = {
            "version": SNAPSHOT_VERSION,
            "saved_at": saved_at,
            "suspended_at": self._suspended_at,
            "started_ms": self.started_ms,
            "ticks": self._ctx.ticks.times,
            "kinds": kinds,
            "extra": {f.name: f.extra_state() for f in self._families},
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        return arrays

    def _id_text(self, kind: str) -> Array:
        """The device_id of each local entry of ``kind``, newline-separated (changes only on reload)."""
        cached = self._id_texts.get(kind)
        if cached is None:
            ids = self.registry.device_ids
            text = "\n".join(ids[s] if s >= 0 else "" for s in self._views[kind].slots.tolist())
            cached = self._id_texts[kind] = np.frombuffer(text.encode(), dtype=np.uint8)
        return cached

    @classmethod
    def restore(
        cls,
        registry: Registry,
        config: RulesConfig | None,
        data: bytes,
        now_ms: int,
        source: str = "snapshot",
    ) -> RuleEngine:
        """An engine continuing from ``data`` at service time ``now_ms``.

        Devices are matched by device_id, so the registry may have been edited in between.
        firegrid heard nothing between the snapshot (or the suspension before it) and ``now_ms``:
        running timers move by that interval. Raises :class:`RulesError` for unreadable data.
        """
        engine = cls(registry, config, now_ms)
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                stored = {name: npz[name] for name in npz.files}
            meta = json.loads(bytes(stored["meta"]).decode())
            if meta.get("version") != SNAPSHOT_VERSION:
                raise ValueError(f"version {meta.get('version')!r}, expected {SNAPSHOT_VERSION}")
            engine._load(stored, meta)
        except (ValueError, KeyError, TypeError, OSError, json.JSONDecodeError) as exc:
            raise RulesError(f"rule state {source}: unreadable snapshot: {exc}") from exc
        deaf_from = meta["suspended_at"] if meta.get("suspended_at") is not None else int(meta["saved_at"])
        engine.started_ms = int(meta.get("started_ms", now_ms))
        engine._ctx.ticks = Ticks(int(t) for t in meta.get("ticks", []))
        if now_ms > deaf_from:
            engine._shift(int(deaf_from), now_ms - int(deaf_from))
        return engine

    def _load(self, stored: dict[str, Array], meta: dict[str, Any]) -> None:
        reg = self.registry
        for kind in meta["kinds"]:
            if kind not in self._views:
                continue
            view = self._views[kind]
            code = KIND_CODE[kind]
            old_ids = bytes(stored[f"ids/{kind}"]).decode().split("\n") if meta["kinds"][kind] else []
            new_local = np.full(len(old_ids), -1, dtype=np.int64)
            for i, device_id in enumerate(old_ids):
                slot = reg.slot_of.get(device_id) if device_id else None
                if slot is not None and self._local_code[slot] == code:
                    new_local[i] = self._local[slot]
            ok = new_local >= 0
            src, dst = np.flatnonzero(ok), new_local[ok]
            stored_families = {name.split("/")[2] for name in stored if name.startswith(f"col/{kind}/")}
            for lost in sorted(stored_families - set(self._cols[kind])):
                log.warning(
                    "rule state: no family %r for %s any more; its stored state is dropped", lost, kind
                )
            for family_name, cols in self._cols[kind].items():
                for column, values in cols.items():
                    old = stored.get(f"col/{kind}/{family_name}/{column}")
                    if old is None or old.shape[1:] != values.shape[1:] or old.shape[0] != len(old_ids):
                        continue
                    values[dst] = old[src].astype(values.dtype)
            for family in self._by_kind[kind]:
                family.configure(view, self._cols[kind][family.name])
        for family in self._families:
            family.load_extra_state(meta.get("extra", {}).get(family.name, {}))

    # -- internals ----------------------------------------------------------------------------

    def _codes(self, slots: Int64s) -> Array:
        """The kind code each slot's readings are evaluated as (-1: ignored; see ``_live``)."""
        known = (slots >= 0) & (slots < self._live.size)
        codes = self._live[np.where(known, slots, 0)]
        codes[~known] = -1
        return codes

    def _process_small(self, readings: Sequence[Reading], now_ms: int, out: list[Hit]) -> None:
        """:meth:`process` for a few readings: kinds found in plain Python, then each kind's
        group offered to its families' :meth:`Family.process_small` (same hits, same order)."""
        live = self._live
        size = live.size
        codes = [live.item(slot) if 0 <= (slot := r.slot) < size else -1 for r in readings]
        present = sorted(set(codes))
        if present[0] < 0:
            log.debug("rules: ignoring %d readings of unknown or retired devices", codes.count(-1))
        for code in present:
            if code < 0:
                continue
            group = (
                readings
                if len(present) == 1
                else [r for r, c in zip(readings, codes, strict=True) if c == code]
            )
            self._small_kind(KINDS[code].name, group, now_ms, out)

    def _small_kind(self, kind: str, group: Sequence[Reading], now_ms: int, out: list[Hit]) -> None:
        families = self._small_order.get(kind)
        if not families:
            return
        local_of = self._local
        slots: list[int] = []
        local: list[int] = []
        foreign = False
        for r in group:
            slots.append(r.slot)
            local.append(local_of.item(r.slot))
            foreign = foreign or r.payload.kind != kind
        if foreign or (len(local) > 1 and len(set(local)) < len(local)):
            # a foreign payload or repeats (rounds): the general path
            n = len(group)
            slot_arr = np.fromiter(slots, dtype=np.int64, count=n)
            ts = np.fromiter((r.ts for r in group), dtype=np.int64, count=n)
            self._process_kind(kind, list(group), slot_arr, ts, now_ms=now_ms, out=out)
            return
        small = Small(kind, group, slots, local, now_ms)
        whole: Batch | None = None
        ran: list[Family] = []
        for family, cols in families:
            if family.process_small(small, cols, out):
                continue
            if whole is None:
                n = len(group)
                whole = Batch(
                    kind,
                    group,
                    np.array(slots, dtype=np.int64),
                    np.array(local, dtype=np.int64),
                    np.fromiter((r.ts for r in group), dtype=np.int64, count=n),
                    extractor(kind)(group),
                    now_ms,
                    True,
                    np.arange(n),
                )
            family.process(whole, cols, out)
            ran.append(family)
        if whole is None:  # every family handled it: only the finish_small that do something
            for family, cols in self._finish_small[kind]:
                family.finish_small(small, cols, out)
            return
        for family, cols in self._finish_order[kind]:
            if family in ran:
                family.finish(whole, cols, out)
            else:
                family.finish_small(small, cols, out)

    def _process_kind(
        self, kind: str, group: list[Reading], slots: Int64s, ts: Int64s, *, now_ms: int, out: list[Hit]
    ) -> None:
        families = self._by_kind.get(kind)
        if not families:
            return
        try:
            fields = extractor(kind)(group)
            # an extractor that read no field (patrol's) cannot have tripped over a foreign payload
            ok = bool(fields) or all(r.payload.kind == kind for r in group)
        except AttributeError:  # a payload of another kind than the registry's device
            ok = False
        if not ok:
            keep = np.array([i for i, r in enumerate(group) if r.payload.kind == kind], dtype=np.int64)
            log.debug("rules: ignoring %d readings whose kind is not %s", len(group) - keep.size, kind)
            if not keep.size:
                return
            group = [group[i] for i in keep.tolist()]
            slots, ts = slots[keep], ts[keep]
            fields = extractor(kind)(group)
        local = self._local[slots]
        ordered = np.sort(local)
        unique = not bool((ordered[1:] == ordered[:-1]).any())
        whole = Batch(kind, group, slots, local, ts, fields, now_ms, unique, np.arange(slots.size))
        cols = self._cols[kind]
        for family in families:
            if not family.rounds:
                family.process(whole, cols[family.name], out)
        round_families = [f for f in families if f.rounds]
        if unique:
            for family in round_families:
                family.process(whole, cols[family.name], out)
        else:
            self._process_rounds(whole, round_families, out)
        for family in families:
            family.finish(whole, cols[family.name], out)

    def _process_rounds(self, whole: Batch, families: list[Family], out: list[Hit]) -> None:
        kind, group, slots, local, ts, fields = (
            whole.kind,
            whole.readings,
            whole.slots,
            whole.local,
            whole.ts,
            whole.fields,
        )
        cols = self._cols[kind]
        for idx in _rounds(local):
            part = Batch(
                kind,
                [group[i] for i in idx.tolist()],
                slots[idx],
                local[idx],
                ts[idx],
                {name: values[idx] for name, values in fields.items()},
                whole.now_ms,
                True,
                idx,
            )
            for family in families:
                family.process(part, cols[family.name], out)

    def _sync(self, registry: Registry, now_ms: int) -> None:
        """Map slots to local entries, grow state arrays, (re)configure, start and stop timers."""
        self._id_texts.clear()
        n = registry.slots
        codes = registry.kind_code
        old_n = self._local.size
        local = np.full(n, -1, dtype=np.int64)
        local[:old_n] = self._local
        local_code = np.full(n, -1, dtype=np.int8)
        local_code[:old_n] = self._local_code
        for spec in KINDS:
            kind, code = spec.name, KIND_CODE[spec.name]
            view = self._views[kind]
            l2s = view.slots.copy()
            # a device whose kind changed leaves its old entry behind
            moved = np.flatnonzero((local_code == code) & (codes != code) & (codes != RETIRED))
            if moved.size:
                l2s[local[moved]] = -1
                local[moved] = -1
                local_code[moved] = -1
            fresh = np.flatnonzero((codes == code) & (local_code == -1))
            if fresh.size:
                local[fresh] = np.arange(l2s.size, l2s.size + fresh.size)
                local_code[fresh] = code
                l2s = np.concatenate([l2s, fresh])
            alive = np.zeros(l2s.size, dtype=np.bool_)
            mapped = l2s >= 0
            alive[mapped] = codes[l2s[mapped]] == code
            was_alive = np.zeros(l2s.size, dtype=np.bool_)
            was_alive[: view.alive.size] = view.alive
            new_view = KindView(kind, code, l2s, alive)
            self._views[kind] = new_view
            for family in self._by_kind[kind]:
                cols = self._cols[kind][family.name]
                for column, spec_ in family.columns(kind).items():
                    cols[column] = _grow(cols[column], l2s.size, spec_.fill)
                family.configure(new_view, cols)
                started = np.flatnonzero(alive & ~was_alive)
                if started.size:
                    family.started(new_view, cols, started, now_ms)
                stopped = np.flatnonzero(was_alive & ~alive)
                if stopped.size:
                    family.stopped(new_view, cols, stopped)
        self._local, self._local_code = local, local_code
        self._live = np.where(codes == local_code, local_code, -1).astype(np.int8)

    def _shift(self, deaf_from: int, delta_ms: int) -> None:
        if delta_ms <= 0:
            return
        for kind, families in self._by_kind.items():
            for family in families:
                family.shift(self._views[kind], self._cols[kind][family.name], deaf_from, delta_ms)


def _empty(family: Family, kind: str) -> Cols:
    return {
        name: np.full((0, c.width) if c.width else 0, c.fill, dtype=c.dtype)
        for name, c in family.columns(kind).items()
    }


def _grow(values: Array, n: int, fill: int | float | bool) -> Array:
    if values.shape[0] >= n:
        return values
    grown = np.full((n, *values.shape[1:]), fill, dtype=values.dtype)
    grown[: values.shape[0]] = values
    return grown


def _rounds(local: Int64s) -> list[Int64s]:
    """Index arrays (in batch order) of each device's 1st, 2nd, … reading."""
    order = np.argsort(local, kind="stable")
    ordered = local[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    run = np.repeat(starts, np.diff(np.r_[starts, ordered.size]))
    rank = np.empty(local.size, dtype=np.int64)
    rank[order] = np.arange(local.size) - run
    return [np.flatnonzero(rank == r) for r in range(int(rank.max()) + 1)]
