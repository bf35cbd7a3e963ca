"""Patrol checkpoints: PATROL_HAZARD, PATROL_MISSED and PATROL_TOO_FAST.

A batch of distinct checkpoints is evaluated vectorised (the checkpoints' state gathered and
scattered at once, the data clock a running maximum, the distances of all workers' consecutive
scans at once); only the workers' latest scans move reading by reading, in batch order, which
keeps each worker's scans in sequence. Small batches, and batches that scan a checkpoint twice,
go scan by scan in plain Python. Hit messages are built only for enabled rules.

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

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from devices import PatrolPayload, Reading, haversine_m, haversine_m_array
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

KIND = "patrol"
VECTOR_FROM = 24
"""Batches of at least this many scans (of distinct checkpoints) are evaluated vectorised;
below, numpy's fixed cost is more than the loop's."""


class PatrolRules(DueTimers, Family):
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

    vector_from = VECTOR_FROM

    def process(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        if not batch.unique or len(batch.readings) < self.vector_from:
            # few scans, or a checkpoint scanned twice in one batch: one scan after the other
            self._scans(batch.readings, batch.local.tolist(), batch.now_ms, cols, out)
            self._missed_on_data_time(cols, out)
            return
        self._batch(batch, cols, out)
        self._missed_on_data_time(cols, out)

    def process_small(self, small: Small, cols: Cols, out: list[Hit]) -> bool:
        self._scans(small.readings, small.local, small.now_ms, cols, out)
        self._missed_on_data_time(cols, out)
        return True

    def _batch(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        """Scans of distinct checkpoints, vectorised; hits in the order of :meth:`_scans`."""
        scanned, due, missed, seen = cols["scanned"], cols["due"], cols["missed"], cols["seen"]
        readings, local, ts, now = batch.readings, batch.local, batch.ts, batch.now_ms
        payloads: list[PatrolPayload] = [r.payload for r in readings]  # type: ignore[misc]
        hits: list[tuple[int, int, Hit | None]] = []  # (reading, order within it, hit)
        if self.ctx.enabled("PATROL_HAZARD"):
            for i, payload in enumerate(payloads):
                if payload.result == "hazard":
                    hits.append((i, 0, self._hazard(readings[i], payload)))
        self._speeds(readings, payloads, ts.tolist(), hits)
        # checkpoints: each scanned once here, so a scan's state is its checkpoint's old state
        # and the data clock is the running maximum over the batch
        capped = np.minimum(ts, now)
        base = np.maximum(scanned[local], capped)
        last_seen = np.maximum(seen[local], capped)
        clock = np.maximum(np.maximum.accumulate(capped), self.data_clock)
        deadline = self.deadline_ms[local]
        was_missed = missed[local]
        cleared = was_missed & (now < base + deadline) & (last_seen + deadline > clock)
        current = ~was_missed | cleared
        scanned[local] = base
        seen[local] = last_seen
        due[local[current]] = (base + deadline)[current]
        if cleared.any():
            missed[local[cleared]] = False
            if self.ctx.enabled("PATROL_MISSED"):
                for i in np.flatnonzero(cleared).tolist():
                    hits.append((i, 2, self._rescanned(readings[i], payloads[i], int(deadline[i]))))
        if current.any():
            self._data_due = min(self._data_due, int((last_seen + deadline)[current].min()))
        self.data_clock = max(self.data_clock, int(clock[-1]))
        hits.sort(key=lambda h: (h[0], h[1]))
        out.extend(hit for _, _, hit in hits if hit is not None)

    def _speeds(
        self,
        readings: Sequence[Reading],
        payloads: list[PatrolPayload],
        ts: list[int],
        hits: list[tuple[int, int, Hit | None]],
    ) -> None:
        """PATROL_TOO_FAST: the workers' latest scans move in batch order (plain Python, a dict
        per worker); the distances of the pairs are computed at once, and only pairs near the
        limit again by :func:`haversine_m`, whose figures the hits carry."""
        workers = self.workers
        check = self.ctx.enabled("PATROL_TOO_FAST")
        slot_of = self.ctx.registry.slot_of
        pairs: list[tuple[int, int, str, int]] = []  # (reading, previous ts, previous tag, its slot)
        for i, (reading, payload) in enumerate(zip(readings, payloads, strict=True)):
            t, device_id = ts[i], reading.device_id
            previous = workers.get(payload.worker_id)
            if previous is None or previous[0] <= t:
                workers[payload.worker_id] = (t, device_id)
            if not check or previous is None or previous[1] == device_id:
                continue
            other = slot_of.get(previous[1])
            if other is not None:
                pairs.append((i, previous[0], previous[1], other))
        if not pairs:
            return
        reg = self.ctx.registry
        limit = self.ctx.config.patrol_too_fast.max_speed_m_s
        at = np.array([readings[i].slot for i, _, _, _ in pairs], dtype=np.int64)
        others = np.array([o for _, _, _, o in pairs], dtype=np.int64)
        gaps = np.array([max(abs(ts[i] - t), 1) for i, t, _, _ in pairs], dtype=np.float64) / 1000
        speed = haversine_m_array(reg.lat[others], reg.lon[others], reg.lat[at], reg.lon[at]) / gaps
        # numpy's trigonometry may differ from math's in the last bits: a margin, then math decides
        for j in np.flatnonzero(speed > limit - (1e-6 * limit + 1e-4)).tolist():
            i, previous_ts, previous_tag, other = pairs[j]
            hit = self._too_fast(readings[i], payloads[i].worker_id, other, previous_ts, previous_tag)
            if hit is not None:
                hits.append((i, 1, hit))

    def _scans(
        self, readings: Sequence[Reading], local: Sequence[int], now: int, cols: Cols, out: list[Hit]
    ) -> None:
        """Scans one after the other, in batch order (plain Python: small batches, repeats)."""
        scanned, due, missed, seen = cols["scanned"], cols["due"], cols["missed"], cols["seen"]
        hazard_on = self.ctx.enabled("PATROL_HAZARD")
        fast_on = self.ctx.enabled("PATROL_TOO_FAST")
        missed_on = self.ctx.enabled("PATROL_MISSED")
        workers, slot_of = self.workers, self.ctx.registry.slot_of
        for reading, i in zip(readings, local, strict=True):
            payload: PatrolPayload = reading.payload  # type: ignore[assignment]
            ts, device_id = reading.ts, reading.device_id
            if hazard_on and payload.result == "hazard":
                out.append(self._hazard(reading, payload))
            previous = workers.get(payload.worker_id)
            if previous is None or previous[0] <= ts:
                workers[payload.worker_id] = (ts, device_id)
            if fast_on and previous is not None and previous[1] != device_id:
                other = slot_of.get(previous[1])
                if other is not None:
                    hit = self._too_fast(reading, payload.worker_id, other, previous[0], previous[1])
                    if hit is not None:
                        out.append(hit)
            capped = min(ts, now)
            base = max(scanned.item(i), capped)
            scanned[i] = base
            last_seen = max(seen.item(i), capped)
            seen[i] = last_seen
            self.data_clock = max(self.data_clock, capped)
            deadline = self.deadline_ms.item(i)
            if missed.item(i):
                if now < base + deadline and last_seen + deadline > self.data_clock:
                    missed[i] = False
                    self._data_due = min(self._data_due, last_seen + deadline)
                    due[i] = base + deadline
                    if missed_on:
                        out.append(self._rescanned(reading, payload, deadline))
            else:
                due[i] = base + deadline
                self._data_due = min(self._data_due, last_seen + deadline)

    def _hazard(self, reading: Reading, payload: PatrolPayload) -> Hit:
        hazards = payload.hazards or []
        what = ", ".join(hazards) if hazards else "unspecified hazard"
        note = f" ({payload.note})" if payload.note else ""
        return self.ctx.make_hit(
            "PATROL_HAZARD",
            reading.slot,
            "raise",
            value=float(len(hazards)),
            threshold=None,
            ts=reading.ts,
            message=f"Hazard reported by {payload.worker_id} at checkpoint {reading.device_id}: {what}{note}",
        )

    def _rescanned(self, reading: Reading, payload: PatrolPayload, deadline: int) -> Hit:
        return self.ctx.make_hit(
            "PATROL_MISSED",
            reading.slot,
            "clear",
            value=None,
            threshold=deadline / 3_600_000,
            ts=reading.ts,
            message=f"Checkpoint scanned again by {payload.worker_id}",
        )

    def _too_fast(
        self, reading: Reading, worker_id: str, other: int, previous_ts: int, previous_tag: str
    ) -> Hit | None:
        """PATROL_TOO_FAST for a scan ``previous_ts - ts`` after (or before) the worker's scan of
        ``previous_tag`` (in slot ``other``), if the implied speed is over the limit."""
        reg = self.ctx.registry
        slot, ts = reading.slot, reading.ts
        distance = haversine_m(
            float(reg.lat[other]), float(reg.lon[other]), float(reg.lat[slot]), float(reg.lon[slot])
        )
        seconds = max(abs(ts - previous_ts), 1) / 1000
        speed = distance / seconds
        limit = self.ctx.config.patrol_too_fast.max_speed_m_s
        if not speed > limit:
            return None
        return self.ctx.make_hit(
            "PATROL_TOO_FAST",
            slot,
            "raise",
            value=speed,
            threshold=limit,
            ts=ts,
            message=f"{worker_id} scanned {reading.device_id} {num(distance)} m from {previous_tag} "
            f"in {duration(seconds)}: {speed:.2f} m/s > {num(limit)} m/s",
        )

    def _missed_on_data_time(self, cols: Cols, out: list[Hit]) -> None:
        seen, missed, due = cols["seen"], cols["missed"], cols["due"]
        clock = self.data_clock
        if clock == NO_TS or (self._data_due != NO_TS and clock < self._data_due):
            return
        # a timer a limited tick left due is missed already, as of that tick (only not yet told)
        eligible = (seen != NO_TS) & ~missed & ~self.ctx.ticks.waiting(due)
        data_due = np.where(eligible, seen + np.where(eligible, self.deadline_ms, 0), NEVER)
        overdue = data_due <= clock
        for local in np.flatnonzero(overdue).tolist():
            missed[local] = True
            due[local] = NEVER
            silent_s = (clock - int(seen[local])) / 1000
            self._raise_missed(out, int(self._slots[local]), local, silent_s, clock)
        self._data_due = int(data_due[~overdue].min()) if (~overdue).any() else NEVER

    def _raise_missed(self, out: list[Hit], slot: int, local: int, silent_s: float, ts: int) -> None:
        if not self.ctx.enabled("PATROL_MISSED"):
            return
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

    def _fire(self, view: KindView, cols: Cols, expired: Int64s, out: list[Hit]) -> None:
        """Missed on the service clock, each at the time its timer fired."""
        due, scanned = cols["due"], cols["scanned"]
        fired = self.ctx.ticks.fired(due[expired])
        due[expired] = NEVER
        cols["missed"][expired] = True
        for local, at in zip(expired.tolist(), fired.tolist(), strict=True):
            silent_s = (at - int(scanned[local])) / 1000
            self._raise_missed(out, int(view.slots[local]), local, silent_s, at)

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
