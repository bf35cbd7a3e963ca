"""Effects: how a scenario step changes a device's messages, installed on the fleet's devices.

Each effect is active in a window of simulated time; :meth:`apply` changes a message in place
(``False`` suppresses it). See :class:`simulators._physics.Effect`.
"""

from __future__ import annotations

from simulators._physics import NORMAL_TEMP_C, Message


class _Window:
    def __init__(self, start_ms: int, end_ms: float) -> None:
        self.start_ms = start_ms
        self.end_ms = end_ms

    def active(self, t_ms: int) -> bool:
        return self.start_ms <= t_ms < self.end_ms


class SetFields(_Window):
    """Fixed field values inside a time window (alarm, tamper, fault, battery)."""

    def __init__(self, start_ms: int, end_ms: float, values: Message) -> None:
        super().__init__(start_ms, end_ms)
        self.values = values

    def apply(self, message: Message, t_ms: int) -> bool:
        if self.active(t_ms):
            message.update(self.values)
        return True


class Suppress(_Window):
    def apply(self, message: Message, t_ms: int) -> bool:
        return not self.active(t_ms)


class SmokeAlarm(_Window):
    """Alarm with obscuration climbing from 0.3 to 1.5 dB/m over the first five minutes."""

    def apply(self, message: Message, t_ms: int) -> bool:
        if self.active(t_ms):
            grown = min(1.0, (t_ms - self.start_ms) / 300_000)
            message["alarm"] = True
            message["obscuration_db_m"] = round(0.3 + 1.2 * grown, 3)
        return True


class Ramp(_Window):
    """A scalar field moves linearly from its value at the start to ``target`` over ``ramp_ms``,
    holds for ``hold_ms`` and moves back over ``ramp_ms``."""

    def __init__(
        self, start_ms: int, field_name: str, target: float, ramp_ms: int, hold_ms: int, *, digits: int = 3
    ) -> None:
        super().__init__(start_ms, start_ms + 2 * ramp_ms + hold_ms)
        self.field_name = field_name
        self.target = target
        self.ramp_ms = ramp_ms
        self.hold_ms = hold_ms
        self.digits = digits
        self.base: float | None = None

    def apply(self, message: Message, t_ms: int) -> bool:
        if not self.active(t_ms):
            return True
        if self.base is None:
            self.base = float(message[self.field_name])
        dt = t_ms - self.start_ms
        if dt < self.ramp_ms:
            share = dt / self.ramp_ms
        elif dt < self.ramp_ms + self.hold_ms:
            share = 1.0
        else:
            share = max(0.0, 1.0 - (dt - self.ramp_ms - self.hold_ms) / max(self.ramp_ms, 1))
        message[self.field_name] = round(self.base + (self.target - self.base) * share, self.digits)
        return True


class CableHeat(_Window):
    """Cable temperatures rise at ``rate`` °C/min to ``peak``, hold, then cool at the same rate;
    phase currents optionally climb to ``factor`` × their value at the start."""

    def __init__(
        self, start_ms: int, rate_c_min: float, peak_c: float, hold_ms: int, factor: float = 1.0
    ) -> None:
        longest = (peak_c - NORMAL_TEMP_C[0]) / rate_c_min * 60_000
        super().__init__(start_ms, start_ms + 2 * longest + hold_ms)
        self.rate = rate_c_min / 60_000.0
        self.peak = peak_c
        self.hold_ms = hold_ms
        self.factor = factor
        self.temps: list[float] | None = None
        self.currents: list[float] | None = None

    def apply(self, message: Message, t_ms: int) -> bool:
        if not self.active(t_ms):
            return True
        if self.temps is None:
            self.temps = [float(v) for v in message["temp_c"]]
            self.currents = [float(v) for v in message["current_a"]]
            hottest = max(self.temps)
            up_ms = max(self.peak - hottest, 0.0) / self.rate
            self.end_ms = self.start_ms + 2 * up_ms + self.hold_ms
        dt = t_ms - self.start_ms
        rise = max(self.peak - max(self.temps), 0.0)
        up_ms = rise / self.rate
        if dt < up_ms:
            delta, share = self.rate * dt, dt / up_ms
        elif dt < up_ms + self.hold_ms:
            delta, share = rise, 1.0
        else:
            delta = max(0.0, rise - self.rate * (dt - up_ms - self.hold_ms))
            share = delta / rise if rise > 0 else 0.0
        message["temp_c"] = [round(v + delta, 2) for v in self.temps]
        if self.factor != 1.0 and self.currents is not None:
            message["current_a"] = [round(v * (1 + (self.factor - 1) * share), 2) for v in self.currents]
        return True
