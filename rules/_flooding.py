"""DEVICE_FLOODING (CONTRACT §10): a device over ingest's per-device rate limit.

Not a condition on readings: after each batch, ingest tells the engine which devices' messages
its rate limit dropped (:meth:`rules.RuleEngine.limited`). The first drop raises (minor, every
kind; ``value`` the messages dropped in that batch, ``threshold`` the sustained limit in
messages a second); later drops only add to the episode's count; ``quiet_s`` (600) on the
service clock without a drop clears, with the episode's total in the message. A device that
floods again raises again: the event store counts it as a repeat of the same event.

Flooding devices are few, so the state is sparse (kind → slot → episode, saved in the
snapshot's extra state by device_id) rather than columns for a million devices. The clear
timer is a timer like DEVICE_OFFLINE's: a deaf interval (broker outage, restart) moves it,
since firegrid could not see whether the device went on flooding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from devices import KINDS
from rules._config import Positive, RuleSettings
from rules._family import Batch, Cols, Context, Drops, Family, KindView, Small
from rules._hit import Hit, Severity, duration, num

TYPE = "DEVICE_FLOODING"


class DeviceFloodingRule(RuleSettings):
    """The ``[DEVICE_FLOODING]`` table of the rules file."""

    severity: Severity = "minor"
    quiet_s: Positive = 600.0
    """Clears after this long (service clock) without a message over the limit."""


@dataclass(slots=True)
class _Episode:
    since: int
    """Service time of the first drop."""
    last: int
    """Service time of the latest drop."""
    dropped: int


class FloodingRules(Family):
    state_key = "FloodingRules"
    kinds = tuple(spec.name for spec in KINDS)
    types = (TYPE,)
    settings: ClassVar[Mapping[str, type[RuleSettings]]] = {TYPE: DeviceFloodingRule}
    rounds = False

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._episodes: dict[str, dict[int, _Episode]] = {spec.name: {} for spec in KINDS}

    def _quiet_ms(self) -> int:
        rule = self.ctx.config.rule(TYPE)
        assert isinstance(rule, DeviceFloodingRule)
        return round(rule.quiet_s * 1000)

    def configure(self, view: KindView, cols: Cols) -> None:
        """Forget the episodes of devices that left the kind (retired, or now of another kind)."""
        episodes = self._episodes.setdefault(view.kind, {})
        codes = self.ctx.registry.kind_code
        for slot in [s for s in episodes if s >= codes.size or codes[s] != view.code]:
            del episodes[slot]

    def process(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        """Readings change nothing: only drops count (:meth:`limited`)."""

    def process_small(self, small: Small, cols: Cols, out: list[Hit]) -> bool:
        return True

    def limited(self, drops: Drops, cols: Cols, out: list[Hit]) -> None:
        episodes = self._episodes[drops.kind]
        now = drops.now_ms
        limit = drops.limit_per_s
        over = (
            f"over the rate limit of {num(limit)} messages/s" if limit is not None else "over the rate limit"
        )
        for slot, dropped in zip(drops.slots.tolist(), drops.dropped.tolist(), strict=True):
            episode = episodes.get(slot)
            if episode is not None:
                episode.last = max(episode.last, now)
                episode.dropped += dropped
                continue
            episodes[slot] = _Episode(now, now, dropped)
            plural = "" if dropped == 1 else "s"
            self.ctx.hit(
                out,
                TYPE,
                slot,
                "raise",
                value=float(dropped),
                threshold=limit,
                ts=now,
                message=f"Device {over}: {dropped} message{plural} dropped",
            )

    def tick(self, view: KindView, cols: Cols, now_ms: int, out: list[Hit], limit: int | None = None) -> int:
        """Every clear due, whatever ``limit`` (none counts towards it): the devices over the rate
        limit are few next to a mass silence's (each one misbehaving, or a long queue of its own)."""
        episodes = self._episodes[view.kind]
        if not episodes:
            return 0
        quiet_ms = self._quiet_ms()
        for slot in [s for s, e in episodes.items() if e.last + quiet_ms <= now_ms]:
            episode = episodes.pop(slot)
            plural = "" if episode.dropped == 1 else "s"
            self.ctx.hit(
                out,
                TYPE,
                slot,
                "clear",
                value=float(episode.dropped),
                threshold=None,
                ts=now_ms,
                message=f"Under the rate limit for {duration(quiet_ms / 1000)}: {episode.dropped} "
                f"message{plural} dropped over {duration((episode.last - episode.since) / 1000)}",
            )
        return 0

    def deadline(self, view: KindView, cols: Cols) -> int | None:
        episodes = self._episodes[view.kind]
        if not episodes:
            return None
        return min(e.last for e in episodes.values()) + self._quiet_ms()

    def shift(self, view: KindView, cols: Cols, deaf_from_ms: int, delta_ms: int) -> None:
        quiet_ms = self._quiet_ms()
        for episode in self._episodes[view.kind].values():
            if episode.last + quiet_ms > deaf_from_ms:  # still running when firegrid went deaf
                episode.last += delta_ms

    def extra_state(self) -> dict[str, Any]:
        ids = self.ctx.registry.device_ids
        return {
            ids[slot]: [e.since, e.last, e.dropped]
            for episodes in self._episodes.values()
            for slot, e in episodes.items()
        }

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        registry = self.ctx.registry
        for device_id, (since, last, dropped) in state.items():
            slot = registry.slot_of.get(device_id)
            if slot is None:  # left the registry meanwhile
                continue
            self._episodes[registry.kind_of(slot)][slot] = _Episode(int(since), int(last), int(dropped))
