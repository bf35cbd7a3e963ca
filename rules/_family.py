"""The seam between the engine and the rule families, and the shared `for` + hysteresis machine.

A rule family (one module per family) declares the device kinds it reads, the event types it can
emit and its state *columns*: numpy arrays whose first axis is the kind's local index (the
engine maps registry slots to per-kind local indices so that a province of 1,000,000 devices
keeps only the state its kinds need). The engine owns the arrays: it sizes them, grows them on a
registry reload, remaps them on restore, and hands each family its own columns.

Families are pure: :meth:`Family.process` gets a batch of readings (with the service time
``now_ms``) and appends hits; :meth:`Family.tick` does the same for timers, and
:meth:`Family.limited` for the devices ingest's rate limit dropped messages of. No wall clock,
no I/O.

A tick may be given a ``limit`` (issue 17, a mass silence): the families with a timer per device
(offline, patrol) then fire only the earliest due timers and leave the rest due; :class:`Ticks`
keeps the times of the ticks since, so that a timer fires, whenever it is taken, at the time of
the first tick at or after its due time: the hits one unlimited tick would have given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from devices import Reading, Registry
from rules._config import EXTENSION_RULES, RulesConfig, RuleSettings
from rules._hit import SITE_TYPES, Hit, HitState, Severity

NO_TS = int(np.iinfo(np.int64).min)
"""``since`` of a condition that is not pending."""
NEVER = int(np.iinfo(np.int64).max)
"""``due`` of a timer that is not running."""

Int64s = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Array = npt.NDArray[Any]
Cols = dict[str, Array]
"""One family's columns for one kind, by column name."""


@dataclass(frozen=True, slots=True)
class Column:
    """A state column: dtype, the value of a fresh entry and an optional second axis."""

    dtype: type[np.generic]
    fill: int | float | bool
    width: int = 0


@dataclass(frozen=True, slots=True)
class KindView:
    """The engine's map of one kind: local index → registry slot, and which entries are alive."""

    kind: str
    code: int
    slots: Int64s
    """Local index → slot (-1 for an entry whose device changed kind)."""
    alive: Bools
    """Local entries whose device is in the registry now (not retired)."""

    @property
    def n(self) -> int:
        return int(self.slots.size)


@dataclass(frozen=True, slots=True)
class Batch:
    """Readings of one kind, in ts order per device.

    With ``unique`` the local indices have no repeats (one *round*), so state may be gathered
    and scattered with fancy indexing; families with ``rounds = False`` get the whole kind's
    readings in batch order instead, repeats included.
    """

    kind: str
    readings: Sequence[Reading]
    slots: Int64s
    local: Int64s
    ts: Int64s
    fields: Mapping[str, Array]
    now_ms: int
    unique: bool
    pos: Int64s
    """Positions of these readings in the kind's whole batch (ascending)."""


@dataclass(slots=True)
class Small:
    """A small batch of one kind's readings, each of a different device, as plain Python values.

    The engine offers it to :meth:`Family.process_small` before building a numpy :class:`Batch`:
    for a handful of readings, numpy's fixed cost per operation (about a microsecond) is most of
    the work, so a family that can tell in plain Python that nothing happens skips it.
    """

    kind: str
    readings: Sequence[Reading]
    slots: Sequence[int]
    local: Sequence[int]
    """Local indices, no repeats."""
    now_ms: int


@dataclass(frozen=True, slots=True)
class Drops:
    """Devices of one kind whose messages ingest's rate limit dropped in one batch (CONTRACT §10)."""

    kind: str
    slots: Int64s
    local: Int64s
    dropped: Int64s
    """Messages of each device dropped in the batch (≥ 1)."""
    now_ms: int
    """The service time the batch was handled at."""
    limit_per_s: float | None
    """The sustained limit (messages a second), if the caller said it."""


class Ticks:
    """The service times of the engine's ticks since one left timers due (over its ``limit``),
    ascending; empty while no timer due at the latest tick waits."""

    def __init__(self, times: Iterable[int] = ()) -> None:
        self.times: list[int] = list(times)

    def __bool__(self) -> bool:
        return bool(self.times)

    def record(self, now_ms: int) -> None:
        if not self.times or now_ms > self.times[-1]:
            self.times.append(now_ms)

    def clear(self) -> None:
        self.times.clear()

    def waiting(self, due: Int64s) -> Bools:
        """Which of these due times a tick has passed (their timers wait to be fired)."""
        return due <= self.times[-1] if self.times else np.zeros(due.shape, dtype=np.bool_)

    def fired(self, due: Int64s) -> Int64s:
        """The time each timer fired at: the first tick at or after its due time (every due time
        given must be one a tick has passed)."""
        times = np.array(self.times, dtype=np.int64)
        return times[np.searchsorted(times, due, side="left")]


WHO_MAX = 1 << 16
"""Devices whose identity :class:`Context` keeps for building hits (emptied when full)."""


class Context:
    """What families share: the registry (replaced on reload), the config, the ticks that left
    timers due, and hit building."""

    def __init__(self, registry: Registry, config: RulesConfig) -> None:
        self._registry = registry
        self._who: dict[int, tuple[str, str, str, str, str]] = {}
        """slot → (device_id, site_id, kind, grid_id, district) of the devices with hits: four
        numpy lookups a hit otherwise, and a storm of repeats hits the same devices (issue 17)."""
        self.config = config
        self.ticks = Ticks()

    @property
    def registry(self) -> Registry:
        return self._registry

    @registry.setter
    def registry(self, registry: Registry) -> None:
        self._registry = registry
        self._who.clear()

    def _identify(self, slot: int) -> tuple[str, str, str, str, str]:
        reg = self._registry
        who = (
            reg.device_ids[slot],
            reg.site_of(slot),
            reg.kind_of(slot),
            reg.grid_of(slot),
            reg.district_of(slot),
        )
        if len(self._who) >= WHO_MAX:
            self._who.clear()
        self._who[slot] = who
        return who

    def enabled(self, rule_type: str) -> bool:
        return self.config.rule(rule_type).enabled

    def severity(self, rule_type: str) -> Severity:
        return self.config.rule(rule_type).severity

    def hit(
        self,
        out: list[Hit],
        rule_type: str,
        slot: int,
        state: HitState,
        *,
        value: float | None,
        threshold: float | None,
        ts: int,
        message: str,
        severity: Severity | None = None,
    ) -> None:
        """Append a hit for the device in ``slot`` (unless the rule is disabled)."""
        if self.config.rule(rule_type).enabled:
            out.append(
                self.make_hit(
                    rule_type,
                    slot,
                    state,
                    value=value,
                    threshold=threshold,
                    ts=ts,
                    message=message,
                    severity=severity,
                )
            )

    def make_hit(
        self,
        rule_type: str,
        slot: int,
        state: HitState,
        *,
        value: float | None,
        threshold: float | None,
        ts: int,
        message: str,
        severity: Severity | None = None,
    ) -> Hit:
        """A hit for the device in ``slot``, whether or not the rule is enabled: callers that
        check :meth:`enabled` first, so as to build no message for a disabled rule."""
        rule = self.config.rule(rule_type)
        device_id, site_id, kind, grid_id, district = self._who.get(slot) or self._identify(slot)
        scope, subject = ("site", site_id) if rule_type in SITE_TYPES else ("device", device_id)
        return Hit(
            type=rule_type,
            severity=severity or rule.severity,
            kind=kind,
            slot=slot,
            device_id=device_id,
            site_id=site_id,
            grid_id=grid_id,
            district=district,
            key=(scope, subject, rule_type),
            state=state,
            value=None if value is None else float(value),
            threshold=None if threshold is None else float(threshold),
            ts=int(ts),
            message=message,
        )


_STATE_KEYS: dict[str, str] = {}


class Family:
    """Base of a rule family; override what the family needs."""

    state_key: ClassVar[str]
    """The family's name in rule-state snapshots: fixed, so that renaming the class keeps the
    state (these began as the class names)."""
    kinds: ClassVar[tuple[str, ...]] = ()
    types: ClassVar[tuple[str, ...]] = ()
    settings: ClassVar[Mapping[str, type[RuleSettings]]] = {}
    """Settings models of types this family brings beyond ``RulesConfig``'s own fields (a new
    kind's rules); each becomes a table of the rules file."""
    rounds: ClassVar[bool] = True
    """True: :meth:`process` gets one round at a time (unique local indices)."""

    @staticmethod
    def extract(readings: Sequence[Reading]) -> dict[str, Array]:
        """The kind's field arrays, overridden by the one family that owns the kind; a kind
        without one (patrol) gives its families no arrays."""
        return {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "state_key" not in cls.__dict__:
            raise TypeError(f"rule family {cls.__name__} must name its state_key")
        if _STATE_KEYS.setdefault(cls.state_key, cls.__qualname__) != cls.__qualname__:
            raise TypeError(
                f"rule families {_STATE_KEYS[cls.state_key]} and {cls.__name__} share a state_key"
            )
        EXTENSION_RULES.update(cls.settings)

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @property
    def name(self) -> str:
        return self.state_key

    def columns(self, kind: str) -> dict[str, Column]:
        return {}

    def configure(self, view: KindView, cols: Cols) -> None:
        """Derive per-device parameters (limits, deadlines) from registry and config."""

    def started(self, view: KindView, cols: Cols, local: Int64s, now_ms: int) -> None:
        """Entries that became alive (service start, new or returning device) at ``now_ms``."""

    def stopped(self, view: KindView, cols: Cols, local: Int64s) -> None:
        """Entries whose device left the registry: stop their timers."""

    def process(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        raise NotImplementedError

    def process_small(self, small: Small, cols: Cols, out: list[Hit]) -> bool:
        """Handle a small batch without numpy if the family can: return True having done exactly
        what :meth:`process` (then :meth:`finish`) would have done, state and hits alike; or
        return False having changed nothing, and the engine calls :meth:`process` on the
        :class:`Batch`. The usual case is a batch in which no device is near a limit or has a
        condition running: only plain state moves (timers, pending ``for`` runs, rings), and the
        fixed cost of the vectorised path is skipped. The default always declines."""
        return False

    def finish_small(self, small: Small, cols: Cols, out: list[Hit]) -> None:
        """:meth:`finish` after a :meth:`process_small` that returned True (in the order the
        engine calls every family's ``finish``)."""

    def condition(
        self,
        cols: Cols,
        out: list[Hit],
        rule_type: str,
        batch: Batch,
        *,
        up: Bools,
        down: Bools,
        valid: Bools | None = None,
        for_s: float = 0.0,
        value: Floats | float | None,
        threshold: Floats | float | None,
        raised: Callable[[int], str],
        cleared: Callable[[int], str],
        severity: Callable[[int], Severity | None] | None = None,
        rows: Int64s | None = None,
    ) -> tuple[Bools, Bools]:
        """Advance one `for` + hysteresis condition (:func:`step`) and append its hits.

        Arrays are per reading of ``batch`` or, with ``rows``, of those positions of it; the
        callbacks get such an index and say the hit's message (and severity, None: the rule's).
        """
        local, ts, slots = batch.local, batch.ts, batch.slots
        if rows is not None:
            local, ts, slots = local[rows], ts[rows], slots[rows]
        fire, clear = step(
            cols,
            rule_type,
            local,
            ts,
            up=up,
            down=down,
            valid=np.ones(up.size, dtype=np.bool_) if valid is None else valid,
            for_ms=for_s * 1000,
        )
        if not self.ctx.enabled(rule_type):
            return fire, clear  # no hit: spare the messages
        outcomes: tuple[tuple[HitState, Bools, Callable[[int], str]], ...] = (
            ("raise", fire, raised),
            ("clear", clear, cleared),
        )
        for state, mask, text in outcomes:
            for i in positions(mask):
                self.ctx.hit(
                    out,
                    rule_type,
                    int(slots[i]),
                    state,
                    value=_at(value, i),
                    threshold=_at(threshold, i),
                    ts=int(ts[i]),
                    message=text(i),
                    severity=severity(i) if severity is not None and state == "raise" else None,
                )
        return fire, clear

    def limited(self, drops: Drops, cols: Cols, out: list[Hit]) -> None:
        """Ingest's per-device rate limit dropped messages of these devices (not readings: the
        messages were never decoded)."""

    def finish(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        """After every round of ``batch`` (the kind's whole batch, in batch order)."""

    def tick(self, view: KindView, cols: Cols, now_ms: int, out: list[Hit], limit: int | None = None) -> int:
        """Timers due at ``now_ms``; a family with a timer per device fires at most ``limit`` of
        them, the earliest due first (see the module doc), and says how many it fired."""
        return 0

    def overdue(self, view: KindView, cols: Cols, local: Int64s, out: list[Hit]) -> None:
        """Fire the timers of these entries that a tick's limit left due, as that tick would have
        (their devices have readings: a clear, say, must follow the raise)."""

    def deadline(self, view: KindView, cols: Cols) -> int | None:
        """The earliest time a timer of this kind fires, if any."""
        return None

    def shift(self, view: KindView, cols: Cols, deaf_from_ms: int, delta_ms: int) -> None:
        """firegrid could not receive from ``deaf_from_ms`` for ``delta_ms``: move running timers."""

    def extra_state(self) -> dict[str, Any]:
        """JSON-able state not indexed by device (per site, per worker)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass


def machine_columns(rule_type: str) -> dict[str, Column]:
    """Columns of one `for` + hysteresis condition: raised flag and start of the pending run."""
    return {f"{rule_type}.active": Column(np.bool_, False), f"{rule_type}.since": Column(np.int64, NO_TS)}


def step(
    cols: Cols,
    rule_type: str,
    local: Int64s,
    ts: Int64s,
    *,
    up: Bools,
    down: Bools,
    valid: Bools,
    for_ms: float,
) -> tuple[Bools, Bools]:
    """Advance one condition over one round; return the (raised, cleared) masks of the round.

    ``up``: the raise condition holds; ``down``: the clear condition holds (hysteresis: both are
    false in the band between them); ``valid``: the reading carries the value at all (a reading
    without it leaves the state alone). With ``for_ms`` the raise condition must hold on every
    reading from the first violating one to one at least ``for_ms`` later.
    """
    active = cols[f"{rule_type}.active"]
    a = active[local]
    clear = down & a
    any_up = bool(up.any())
    if for_ms <= 0:
        fire = up & ~a if any_up else up
    else:
        since = cols[f"{rule_type}.since"]
        s = since[local]
        running = s != NO_TS
        if any_up:
            pending = up & ~a
            s = np.where(pending & ~running, ts, s)
            fire = pending & (ts - s >= for_ms)
            since[local] = np.where(fire | (valid & ~up), NO_TS, s)
        else:  # the common case: nothing violates, only runs in progress may break
            fire = up
            if running.any():
                since[local] = np.where(valid, NO_TS, s)
    if any_up or clear.any():
        active[local] = (a | fire) & ~clear
    return fire, clear


def quiet_step(
    active: bool, since: int, ts: int, *, up: bool, down: bool, valid: bool, for_ms: float
) -> int | None:
    """:func:`step` for one reading in plain Python, when it neither raises nor clears: the
    condition's new ``since`` (``active`` does not change then); None when it raises or clears
    (the caller then leaves the reading to :func:`step`)."""
    if down and active:
        return None
    if for_ms <= 0:
        return None if up and not active else since
    if not up:
        return NO_TS if valid else since
    if active:
        return since
    start = ts if since == NO_TS else since
    return None if ts - start >= for_ms else start


def quiet_condition(
    small: Small,
    cols: Cols,
    type_: str,
    for_s: float,
    condition: Callable[[Reading], tuple[bool, bool, bool]],
) -> bool:
    """:meth:`Family.process_small` of a family with one condition per reading (``condition``:
    its up, down and valid): True when no reading raises or clears (its ``since`` moved), False,
    changing nothing, when one would (numpy then decides)."""
    active, since = cols[f"{type_}.active"], cols[f"{type_}.since"]
    for_ms = for_s * 1000
    moves: list[tuple[int, int]] = []
    for reading, i in zip(small.readings, small.local, strict=True):
        up, down, valid = condition(reading)
        s = quiet_step(
            active.item(i), since.item(i), reading.ts, up=up, down=down, valid=valid, for_ms=for_ms
        )
        if s is None:
            return False
        moves.append((i, s))
    if for_ms > 0:
        for i, s in moves:
            since[i] = s
    return True


def step_one(
    active: bool, since: int, ts: int, *, up: bool, down: bool, valid: bool, for_ms: float
) -> tuple[bool, bool, bool, int]:
    """:func:`step` for one reading in plain Python: (raised, cleared, new active, new since)."""
    clear = down and active
    if for_ms <= 0:
        fire = up and not active
    elif up:
        start = ts if not active and since == NO_TS else since
        fire = not active and ts - start >= for_ms
        since = NO_TS if fire else start
    else:
        fire = False
        since = NO_TS if valid else since
    return fire, clear, (active or fire) and not clear, since


class DueTimers:
    """Mixed into a family (before :class:`Family`) with one timer per device in a ``due``
    column (offline, missed patrols): ticks fire the earliest due first, at most ``limit``;
    :meth:`_fire` raises what fired."""

    ctx: Context

    def tick(self, view: KindView, cols: Cols, now_ms: int, out: list[Hit], limit: int | None = None) -> int:
        expired = earliest(cols["due"], now_ms, limit)
        if expired.size:
            self._fire(view, cols, expired, out)
        return int(expired.size)

    def overdue(self, view: KindView, cols: Cols, local: Int64s, out: list[Hit]) -> None:
        waiting = local[self.ctx.ticks.waiting(cols["due"][local])]
        if waiting.size:
            self._fire(view, cols, waiting, out)

    def _fire(self, view: KindView, cols: Cols, expired: Int64s, out: list[Hit]) -> None:
        """Raise these entries, each at the time its timer fired."""
        raise NotImplementedError


def earliest(due: Int64s, now_ms: int, limit: int | None) -> Int64s:
    """The entries whose ``due`` time has come, ascending; with ``limit``, only the ``limit``
    earliest due (on a tie the lower entries), found in linear time (a mass silence: 10⁵ of them)."""
    if limit is not None and limit <= 0:
        return np.zeros(0, dtype=np.int64)
    expired = np.flatnonzero(due <= now_ms)
    if limit is None or expired.size <= limit:
        return expired
    times = due[expired]
    last = np.partition(times, limit - 1)[limit - 1]
    before = expired[times < last]
    return np.sort(np.concatenate([before, expired[times == last][: limit - before.size]]))


def _at(values: Floats | float | None, i: int) -> float | None:
    """The value for reading ``i``: one per reading, or one for all (None: no value)."""
    if values is None:
        return None
    if isinstance(values, int | float):
        return float(values)
    return float(values[i])


def positions(mask: Bools) -> list[int]:
    return np.flatnonzero(mask).tolist() if mask.any() else []


def per_device(ctx: Context, view: KindView, column: str, default: float) -> Floats:
    """A devices.csv override column for the kind's entries, ``default`` where the cell is empty."""
    values = np.full(view.n, default, dtype=np.float64)
    ok = np.flatnonzero(view.slots >= 0)
    given = ctx.registry.overrides[column][view.slots[ok]]
    cells = np.flatnonzero(~np.isnan(given))
    # the registry stores float32: take the shortest decimal (0.15, not 0.15000000596)
    values[ok[cells]] = [float(str(v)) for v in given[cells]]
    return values


def exact(values: Floats) -> Floats:
    """Derived thresholds (limit + delta) without binary noise: 0.1 + 0.02 is 0.12."""
    return np.round(values, 9)


def floats(values: Sequence[float | None]) -> Floats:
    """A float array with NaN for absent values."""
    return np.array(values, dtype=np.float64)


def fault_flags(payloads: Sequence[Any]) -> Bools:
    """True where the payload reports a non-empty fault."""
    return np.array([bool(p.fault) for p in payloads], dtype=np.bool_)
