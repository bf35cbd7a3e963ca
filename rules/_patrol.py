"""Patrol checkpoints: PATROL_HAZARD, PATROL_MISSED and PATROL_TOO_FAST.

Patrol traffic is small (a few thousand scans a day per district), so this family reads its
batch reading by reading, in batch order, which keeps each worker's scans in sequence.

* PATROL_HAZARD raises on every scan with ``result = hazard`` (no clear; the alerts layer counts).
* PATROL_TOO_FAST compares a worker's scan with that worker's previous scan (by ``ts``) of another
  checkpoint: haversine distance between the tags' registry positions over the time between the
  scans; above ``max_speed_m_s`` it raises (no clear).
* PATROL_MISSED is a timer per checkpoint: ``patrol_interval_h × factor`` after the last scan
  (its ``ts``, capped at the service time; the service start for checkpoints never scanned),
  shifted like DEVICE_OFFLINE over deaf intervals. It also runs on *data time*: the latest scan
  ``ts`` of any checkpoint is the patrol clock, and a checkpoint whose own last scan is older than
  that clock by its deadline is missed too. Live, both clocks agree; data time is what lets a
  replayed or time-accelerated patrol day (simulators, gateways uploading late) raise it, and the
  service clock still raises it when every scan stops. A scan clears it when it makes the
  checkpoint current again on both clocks (a late upload of an old scan does not).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from devices import PatrolPayload, haversine_m
from rules._family import NEVER, NO_TS, Batch, Cols, Column, Context, Family, Int64s, KindView, per_device
from rules._hit import Hit, duration, num

KIND = "patrol"


class PatrolRules(Family):
    state_key = "PatrolRules"
    kinds = (KIND,)
    types = ("PATROL_HAZARD", "PATROL_MISSED", "PATROL_TOO_FAST")
    rounds = False

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.deadline_ms: Int64s = np.zeros(0, dtype=np.int64)
        self.interval_h: np.ndarray = np.zeros(0)
        self.workers: dict[str, tuple[int, str]] = {}
        """worker_id → (ts, tag device_id) of the worker's latest scan."""
        self._slots: Int64s = np.zeros(0, dtype=np.int64)
        self.data_clock = NO_TS
        """The latest scan ``ts`` (capped at the service time) of any checkpoint."""
        self._data_due = NO_TS
        """A lower bound of the data time at which some checkpoint is missed (NO_TS: unknown).

        It spares the scan of every checkpoint on each patrol batch: scans only move it later."""

    def columns(self, kind: str) -> dict[str, Column]:
        return {
            "scanned": Column(np.int64, NO_TS),
            "due": Column(np.int64, NEVER),
            "missed": Column(np.bool_, False),
            "seen": Column(np.int64, NO_TS),
        }

    def configure(self, view: KindView, cols: Cols) -> None:
        self._slots = view.slots
        rule = self.ctx.config.patrol_missed
        self.interval_h = per_device(self.ctx, view, "patrol_interval_h", rule.interval_h)
        self.deadline_ms = np.rint(self.interval_h * rule.factor * 3_600_000).astype(np.int64)
        scanned, missed = cols["scanned"], cols["missed"]
        running = view.alive & ~missed & (scanned != NO_TS)
        cols["due"][:] = np.where(running, scanned + np.where(running, self.deadline_ms, 0), NEVER)
        self._data_due = NO_TS  # deadlines may have changed

    def started(self, view: KindView, cols: Cols, local: Int64s, now_ms: int) -> None:
        cols["seen"][local] = NO_TS
        cols["scanned"][local] = now_ms
        cols["missed"][local] = False
        cols["due"][local] = now_ms + self.deadline_ms[local]

    def stopped(self, view: KindView, cols: Cols, local: Int64s) -> None:
        cols["due"][local] = NEVER
        cols["seen"][local] = NO_TS

    def process(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        scanned, due, missed, seen = cols["scanned"], cols["due"], cols["missed"], cols["seen"]
        now = batch.now_ms
        for i, reading in enumerate(batch.readings):
            payload: PatrolPayload = reading.payload  # type: ignore[assignment]
            slot, local, ts = int(batch.slots[i]), int(batch.local[i]), int(batch.ts[i])
            if payload.result == "hazard":
                hazards = payload.hazards or []
                what = ", ".join(hazards) if hazards else "unspecified hazard"
                note = f" ({payload.note})" if payload.note else ""
                self.ctx.hit(
                    out,
                    "PATROL_HAZARD",
                    slot,
                    "raise",
                    value=float(len(hazards)),
                    threshold=None,
                    ts=ts,
                    message=f"Hazard reported by {payload.worker_id} at checkpoint {reading.device_id}: "
                    f"{what}{note}",
                )
            self._speed(out, payload.worker_id, slot, reading.device_id, ts)
            base = max(int(scanned[local]), min(ts, now))
            scanned[local] = base
            seen[local] = max(int(seen[local]), min(ts, now))
            self.data_clock = max(self.data_clock, min(ts, now))
            deadline = int(self.deadline_ms[local])
            if missed[local]:
                if now < base + deadline and int(seen[local]) + deadline > self.data_clock:
                    missed[local] = False
                    self._data_due = min(self._data_due, int(seen[local]) + deadline)
                    due[local] = base + deadline
                    self.ctx.hit(
                        out,
                        "PATROL_MISSED",
                        slot,
                        "clear",
                        value=None,
                        threshold=deadline / 3_600_000,
                        ts=ts,
                        message=f"Checkpoint scanned again by {payload.worker_id}",
                    )
            else:
                due[local] = base + deadline
                self._data_due = min(self._data_due, int(seen[local]) + deadline)
        self._missed_on_data_time(batch, cols, out)

    def _missed_on_data_time(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        seen, missed, due = cols["seen"], cols["missed"], cols["due"]
        clock = self.data_clock
        if clock == NO_TS or (self._data_due != NO_TS and clock < self._data_due):
            return
        eligible = (seen != NO_TS) & ~missed
        data_due = np.where(eligible, seen + np.where(eligible, self.deadline_ms, 0), NEVER)
        overdue = data_due <= clock
        for local in np.flatnonzero(overdue).tolist():
            missed[local] = True
            due[local] = NEVER
            silent_s = (clock - int(seen[local])) / 1000
            self._raise_missed(out, int(self._slots[local]), local, silent_s, clock)
        self._data_due = int(data_due[~overdue].min()) if (~overdue).any() else NEVER

    def _raise_missed(self, out: list[Hit], slot: int, local: int, silent_s: float, ts: int) -> None:
        self.ctx.hit(
            out,
            "PATROL_MISSED",
            slot,
            "raise",
            value=silent_s / 3600,
            threshold=int(self.deadline_ms[local]) / 3_600_000,
            ts=ts,
            message=f"Checkpoint not scanned for {duration(silent_s)} "
            f"(interval {num(float(self.interval_h[local]))} h "
            f"× {num(self.ctx.config.patrol_missed.factor)})",
        )

    def _speed(self, out: list[Hit], worker_id: str, slot: int, device_id: str, ts: int) -> None:
        reg = self.ctx.registry
        previous = self.workers.get(worker_id)
        if previous is None or previous[0] <= ts:
            self.workers[worker_id] = (ts, device_id)
        if previous is None or previous[1] == device_id:
            return
        other = reg.slot_of.get(previous[1])
        if other is None:
            return
        distance = haversine_m(
            float(reg.lat[other]), float(reg.lon[other]), float(reg.lat[slot]), float(reg.lon[slot])
        )
        seconds = max(abs(ts - previous[0]), 1) / 1000
        speed = distance / seconds
        limit = self.ctx.config.patrol_too_fast.max_speed_m_s
        if speed > limit:
            self.ctx.hit(
                out,
                "PATROL_TOO_FAST",
                slot,
                "raise",
                value=speed,
                threshold=limit,
                ts=ts,
                message=f"{worker_id} scanned {device_id} {num(distance)} m from {previous[1]} "
                f"in {duration(seconds)}: "
                f"{speed:.2f} m/s > {num(limit)} m/s",
            )

    def tick(self, view: KindView, cols: Cols, now_ms: int, out: list[Hit]) -> None:
        due = cols["due"]
        expired = np.flatnonzero(due <= now_ms)
        if not expired.size:
            return
        due[expired] = NEVER
        cols["missed"][expired] = True
        scanned = cols["scanned"]
        for local in expired.tolist():
            silent_s = (now_ms - int(scanned[local])) / 1000
            self._raise_missed(out, int(view.slots[local]), local, silent_s, now_ms)

    def deadline(self, view: KindView, cols: Cols) -> int | None:
        due = cols["due"]
        first = int(due.min()) if due.size else NEVER
        return None if first == NEVER else first

    def shift(self, view: KindView, cols: Cols, deaf_from_ms: int, delta_ms: int) -> None:
        due = cols["due"]
        running = (due != NEVER) & (due > deaf_from_ms)
        due[running] += delta_ms
        cols["scanned"][running] += delta_ms

    def extra_state(self) -> dict[str, Any]:
        return {"workers": {w: [ts, d] for w, (ts, d) in self.workers.items()}, "data_clock": self.data_clock}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        workers = state.get("workers", {})
        self.workers = {str(w): (int(v[0]), str(v[1])) for w, v in workers.items()}
        self.data_clock = int(state.get("data_clock", NO_TS))
