"""DEVICE_OFFLINE: no valid message for ``factor × heartbeat_s + grace_s`` on the service clock.

Each device has a ``quiet`` time (the service time its silence started: its last message, or the
service start / the reload that added it) and a ``due`` time (``quiet + deadline``, or NEVER
while raised). :meth:`OfflineRules.tick` is one vectorised comparison over ``due`` (with a
limit, the earliest due: the rest wait, see :mod:`rules._family`); a deaf interval (broker
outage, firegrid down between snapshot and restart) moves ``quiet`` and ``due`` of every running
timer that had not expired when the deafness began.
"""

from __future__ import annotations

import numpy as np

from devices import KINDS
from rules._family import (
    NEVER,
    NO_TS,
    Batch,
    Cols,
    Column,
    Context,
    DueTimers,
    Family,
    Int64s,
    KindView,
    Small,
    per_device,
)
from rules._hit import Hit, duration, num

TYPE = "DEVICE_OFFLINE"


class OfflineRules(DueTimers, Family):
    state_key = "OfflineRules"
    kinds = tuple(spec.name for spec in KINDS if spec.can_go_offline)
    types = (TYPE,)
    rounds = False

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.deadline_ms: dict[str, Int64s] = {}
        self.heartbeat_s: dict[str, np.ndarray] = {}

    def columns(self, kind: str) -> dict[str, Column]:
        return {
            "quiet": Column(np.int64, NO_TS),
            "due": Column(np.int64, NEVER),
            "raised": Column(np.bool_, False),
        }

    def configure(self, view: KindView, cols: Cols) -> None:
        rule = self.ctx.config.device_offline
        default = rule.heartbeat_s.get(view.kind)
        if default is None:
            self.deadline_ms[view.kind] = np.full(view.n, -1, dtype=np.int64)
            cols["due"][:] = NEVER
            return
        heartbeat = per_device(self.ctx, view, "heartbeat_s", default)
        self.heartbeat_s[view.kind] = heartbeat
        deadline = np.rint((rule.factor * heartbeat + rule.grace_s) * 1000).astype(np.int64)
        self.deadline_ms[view.kind] = deadline
        quiet, raised = cols["quiet"], cols["raised"]
        running = view.alive & ~raised & (quiet != NO_TS)
        cols["due"][:] = np.where(running, quiet + np.where(running, deadline, 0), NEVER)

    def started(self, view: KindView, cols: Cols, local: Int64s, now_ms: int) -> None:
        deadline = self.deadline_ms[view.kind][local]
        cols["quiet"][local] = now_ms
        cols["raised"][local] = False
        cols["due"][local] = np.where(deadline >= 0, now_ms + deadline, NEVER)

    def stopped(self, view: KindView, cols: Cols, local: Int64s) -> None:
        cols["due"][local] = NEVER

    def process(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        local, slots = batch.local, batch.slots
        if not batch.unique:
            local, first = np.unique(local, return_index=True)
            slots = slots[first]
        now = batch.now_ms
        raised = cols["raised"]
        back = raised[local]
        deadline = self.deadline_ms[batch.kind][local]
        quiet = cols["quiet"]
        if back.any():
            for i in np.flatnonzero(back).tolist():
                silent_s = (now - int(quiet[local[i]])) / 1000
                self.ctx.hit(
                    out,
                    TYPE,
                    int(slots[i]),
                    "clear",
                    value=silent_s,
                    threshold=deadline[i] / 1000,
                    ts=now,
                    message=f"Device back online after {duration(silent_s)} without a message",
                )
            raised[local] = False
        quiet[local] = now
        cols["due"][local] = np.where(deadline >= 0, now + deadline, NEVER)

    def process_small(self, small: Small, cols: Cols, out: list[Hit]) -> bool:
        raised = cols["raised"]
        if any(raised.item(i) for i in small.local):
            return False  # back online: a clear
        quiet, due = cols["quiet"], cols["due"]
        deadline = self.deadline_ms[small.kind]
        now = small.now_ms
        for i in small.local:
            quiet[i] = now
            limit = deadline.item(i)
            due[i] = now + limit if limit >= 0 else NEVER
        return True

    def _fire(self, view: KindView, cols: Cols, expired: Int64s, out: list[Hit]) -> None:
        """Raise these entries, each at the time its timer fired."""
        rule = self.ctx.config.device_offline
        due, quiet = cols["due"], cols["quiet"]
        deadline = self.deadline_ms[view.kind]
        heartbeat = self.heartbeat_s[view.kind]
        fired = self.ctx.ticks.fired(due[expired])
        due[expired] = NEVER
        cols["raised"][expired] = True
        for local, at in zip(expired.tolist(), fired.tolist(), strict=True):
            silent_s = (at - int(quiet[local])) / 1000
            limit_s = int(deadline[local]) / 1000
            self.ctx.hit(
                out,
                TYPE,
                int(view.slots[local]),
                "raise",
                value=silent_s,
                threshold=limit_s,
                ts=at,
                message=f"No message for {duration(silent_s)} (≥ {num(rule.factor)} × heartbeat "
                f"{num(float(heartbeat[local]))} s + {num(rule.grace_s)} s)",
            )

    def deadline(self, view: KindView, cols: Cols) -> int | None:
        due = cols["due"]
        if not due.size:
            return None
        first = int(due.min())
        return None if first == NEVER else first

    def shift(self, view: KindView, cols: Cols, deaf_from_ms: int, delta_ms: int) -> None:
        due = cols["due"]
        running = (due != NEVER) & (due > deaf_from_ms)
        due[running] += delta_ms
        cols["quiet"][running] += delta_ms
