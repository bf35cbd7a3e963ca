"""Smoke detectors: FIRE_ALARM, TAMPER and FIRE_CONFIRMED (≥2 detectors of one site in alarm).

FIRE_CONFIRMED is evaluated at each detector's alarm onset (the reading that raises its
FIRE_ALARM): when other detectors of the same site have sent an alarm within ``window_s`` of it
(by reading ``ts``), the site's fire is confirmed. It has no clear; every further confirming
onset raises again (the alerts layer counts repeats on the site's open event).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from devices import Reading, SmokePayload
from rules._family import (
    Array,
    Batch,
    Cols,
    Column,
    Context,
    Family,
    KindView,
    Small,
    fault_flags,
    floats,
    machine_columns,
    positions,
    step_one,
)
from rules._hit import Hit, HitState, duration

KIND = "smoke"


def extract(readings: Sequence[Reading]) -> dict[str, Array]:
    """The smoke fields rules read, as arrays (NaN where absent)."""
    payloads: list[SmokePayload] = [r.payload for r in readings]  # type: ignore[misc]
    return {
        "alarm": np.array([p.alarm for p in payloads], dtype=np.bool_),
        "tamper": floats([p.tamper for p in payloads]),  # 1.0, 0.0 or NaN
        "battery_pct": floats([p.battery_pct for p in payloads]),
        "fault": fault_flags(payloads),
    }


class SmokeRules(Family):
    state_key = "SmokeRules"
    kinds = (KIND,)
    extract = staticmethod(extract)
    types = ("FIRE_ALARM", "TAMPER", "FIRE_CONFIRMED")

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._alarms: list[tuple[int, bool]] = []
        """(position in the kind's batch, FIRE_ALARM onset) of this batch's alarm readings."""
        self._small_alarms: list[tuple[int, int, bool]] = []
        """(slot, ts, FIRE_ALARM onset) of a small batch's alarm readings."""
        self.sites: dict[str, dict[str, int]] = {}
        """site_id → {device_id: ts of its latest alarm reading} within the window."""

    def columns(self, kind: str) -> dict[str, Column]:
        return {**machine_columns("FIRE_ALARM"), **machine_columns("TAMPER")}

    def process(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        cfg = self.ctx.config
        f = batch.fields
        alarm = f["alarm"]
        up, _ = self.condition(
            cols,
            out,
            "FIRE_ALARM",
            batch,
            up=alarm,
            down=~alarm,
            for_s=cfg.fire_alarm.for_s,
            value=alarm.astype(np.float64),
            threshold=1.0,
            raised=lambda i: "Smoke alarm",
            cleared=lambda i: "Smoke alarm cleared",
        )
        if alarm.any():
            for i in positions(alarm):
                self._alarms.append((int(batch.pos[i]), bool(up[i])))
        tamper = f["tamper"]
        self.condition(
            cols,
            out,
            "TAMPER",
            batch,
            up=tamper == 1.0,
            down=tamper == 0.0,
            valid=~np.isnan(tamper),
            for_s=cfg.tamper.for_s,
            value=tamper,
            threshold=1.0,
            raised=lambda i: "Detector tampered with (opened or removed)",
            cleared=lambda i: "Tamper cleared",
        )

    def process_small(self, small: Small, cols: Cols, out: list[Hit]) -> bool:
        """Always in plain Python: both conditions stepped per reading, hits in :meth:`process`'s
        order (FIRE_ALARM raises, its clears, TAMPER raises, its clears), the alarms kept for
        :meth:`finish_small`."""
        cfg = self.ctx.config
        alarm_active, alarm_since = cols["FIRE_ALARM.active"], cols["FIRE_ALARM.since"]
        tamper_active, tamper_since = cols["TAMPER.active"], cols["TAMPER.since"]
        alarm_ms, tamper_ms = cfg.fire_alarm.for_s * 1000, cfg.tamper.for_s * 1000
        hits: tuple[list[tuple[int, int, float]], ...] = ([], [], [], [])
        for reading, i, slot in zip(small.readings, small.local, small.slots, strict=True):
            payload: SmokePayload = reading.payload  # type: ignore[assignment]
            ts, alarm, tamper = reading.ts, bool(payload.alarm), payload.tamper
            fire, clear, alarm_active[i], since = step_one(
                alarm_active.item(i),
                alarm_since.item(i),
                ts,
                up=alarm,
                down=not alarm,
                valid=True,
                for_ms=alarm_ms,
            )
            if alarm_ms > 0:
                alarm_since[i] = since
            value = 1.0 if alarm else 0.0
            if fire:
                hits[0].append((slot, ts, value))
            if clear:
                hits[1].append((slot, ts, value))
            if alarm:
                self._small_alarms.append((slot, ts, fire))
            fire, clear, active, since = step_one(
                tamper_active.item(i),
                tamper_since.item(i),
                ts,
                up=tamper is True,
                down=tamper is False,
                valid=tamper is not None,
                for_ms=tamper_ms,
            )
            if fire or clear:
                tamper_active[i] = active
            if tamper_ms > 0:
                tamper_since[i] = since
            value = 1.0 if tamper else 0.0
            if fire:
                hits[2].append((slot, ts, value))
            if clear:
                hits[3].append((slot, ts, value))
        texts: tuple[tuple[str, HitState, str], ...] = (
            ("FIRE_ALARM", "raise", "Smoke alarm"),
            ("FIRE_ALARM", "clear", "Smoke alarm cleared"),
            ("TAMPER", "raise", "Detector tampered with (opened or removed)"),
            ("TAMPER", "clear", "Tamper cleared"),
        )
        for found, (rule_type, state, message) in zip(hits, texts, strict=True):
            if found and self.ctx.enabled(rule_type):
                for slot, ts, value in found:
                    self.ctx.hit(
                        out, rule_type, slot, state, value=value, threshold=1.0, ts=ts, message=message
                    )
        return True

    def finish_small(self, small: Small, cols: Cols, out: list[Hit]) -> None:
        alarms, self._small_alarms = self._small_alarms, []
        for slot, ts, onset in alarms:
            self._confirm(slot, ts, onset, out)

    def finish(self, batch: Batch, cols: Cols, out: list[Hit]) -> None:
        """FIRE_CONFIRMED over the alarms of every round, in batch order."""
        if not self._alarms:
            return
        alarms, self._alarms = sorted(self._alarms), []
        for i, onset in alarms:
            self._confirm(int(batch.slots[i]), int(batch.ts[i]), onset, out)

    def _confirm(self, slot: int, ts: int, onset: bool, out: list[Hit]) -> None:
        """An alarm reading of the detector in ``slot``: the site's bookkeeping, and at the
        detector's FIRE_ALARM onset, FIRE_CONFIRMED if enough detectors are in alarm together."""
        rule = self.ctx.config.fire_confirmed
        window = int(rule.window_s * 1000)
        reg = self.ctx.registry
        device_id = reg.device_ids[slot]
        site = self.sites.setdefault(reg.site_of(slot), {})
        site[device_id] = max(ts, site.get(device_id, ts))
        for old in [d for d, t in site.items() if t < ts - window]:
            del site[old]  # too old to confirm anything from now on
        if not onset:
            return
        together = sorted(d for d, t in site.items() if abs(t - ts) <= window)
        if len(together) >= rule.min_detectors:
            self.ctx.hit(
                out,
                "FIRE_CONFIRMED",
                slot,
                "raise",
                value=float(len(together)),
                threshold=float(rule.min_detectors),
                ts=ts,
                message=f"Fire confirmed at site {reg.site_of(slot)}: "
                f"{len(together)} detectors in alarm within "
                f"{duration(rule.window_s)} ({', '.join(together)})",
            )

    def extra_state(self) -> dict[str, Any]:
        return {"sites": self.sites}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        sites = state.get("sites", {})
        self.sites = {str(s): {str(d): int(t) for d, t in v.items()} for s, v in sites.items()}

    def tick(self, view: KindView, cols: Cols, now_ms: int, out: list[Hit], limit: int | None = None) -> int:
        """Forget alarms older than the window (by the service clock, with an hour of slack);
        no timer, nothing towards ``limit``."""
        horizon = now_ms - int(self.ctx.config.fire_confirmed.window_s * 1000) - 3_600_000
        for site_id in list(self.sites):
            entries = {d: t for d, t in self.sites[site_id].items() if t >= horizon}
            if entries:
                self.sites[site_id] = entries
            else:
                del self.sites[site_id]
        return 0
