"""Scenarios: YAML files of timed steps that change device behaviour, and their ground truth.

A scenario is validated with pydantic (errors name the file and the key), then *planned* against
a registry and a run (start time, length, time scale): targets are picked (deterministically),
effects are installed on the fleet's devices, extra timed messages are scheduled and the events
and rejects the run must cause are computed from CONTRACT §7 with safety margins. Parameters
that would leave an expectation on a knife's edge (a temperature rise of 5 °C/min, a low
pressure held for exactly 60 s) are refused rather than guessed. See simulators/README.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import orjson
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from devices import MAX_BATCH, is_identifier
from simulators._physics import DAY_S, Fleet, Message, Scan, haversine_m

# -- defaults of CONTRACT §7 (a registry may override some of them per device) -------------------

TEMP_LIMIT_C = 70.0
TEMP_FOR_S = 10.0
RISE_FAST_C_MIN = 5.0
RESIDUAL_LIMIT_MA = 300.0
RESIDUAL_FOR_S = 10.0
MIN_PRESSURE = 0.10
MAX_PRESSURE = 1.20
PRESSURE_FOR_S = 60.0
LOSS_PRESSURE = 0.05
LOW_BATTERY_PCT = 15.0
CONFIRM_WINDOW_S = 120.0
PATROL_INTERVAL_H = 24.0
PATROL_GRACE = 1.1
TOO_FAST_M_S = 10.0
NORMAL_TEMP_C = (18.0, 50.0)
NORMAL_PRESSURE = (0.20, 0.70)
NORMAL_RESIDUAL_MA = (0.0, 60.0)
IDLE_MARGIN_S = 2 * 3600
"""A worker with no scan this close to a step's scans is off duty (preferred for the step)."""
SAFE_SPEED_M_S = TOO_FAST_M_S / 2
"""A step's patrol scan implies at most this speed to or from any other scan of its worker."""
MIN_FAST_M = 100.0
"""The two checkpoints of a too-fast pair lie at least this far apart."""
CLOCK_MARGIN_MS = 60_000
"""The scan that moves the patrol clock past a skipped checkpoint's deadline comes this late."""
SKIP_MARGIN_MS = 2 * 3_600_000
"""A skipped checkpoint stays silent this long after the patrol clock passes its deadline."""
INJECTION = 'a,b=c d\n"x'
MAX_PAYLOAD = 256 * 1024


class ScenarioError(ValueError):
    """A scenario file is wrong or cannot be planned; the message names file and key."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def _seconds(value: object) -> object:
    """Accept 90, 1.5, "90s", "5m", "26h", "2d" (seconds of simulated time)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration (use a number of seconds or e.g. 90s, 5m, 2h, 1d)")
        return float(match.group(1)) * _UNIT_S[match.group(2)]
    return value


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0, allow_inf_nan=False)]
Kind = Literal["smoke", "electrical", "water", "patrol"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Target(_Model):
    """Which devices a step acts on: explicit ``devices`` or ``count`` picked at random."""

    devices: list[str] | None = None
    count: int | None = Field(default=None, ge=1, le=100_000)
    grid: str | None = None
    kind: Kind | None = None

    @model_validator(mode="after")
    def _one_way(self) -> Target:
        if self.devices is not None and self.count is not None:
            raise ValueError("give either devices or count, not both")
        if self.devices is not None and not self.devices:
            raise ValueError("devices must not be empty")
        for device in self.devices or []:
            if not is_identifier(device):
                raise ValueError(f"invalid device id {device!r}")
        return self


class _Step(_Model):
    at: Seconds = 0.0
    """Simulated seconds after the start of the run."""
    label: str | None = None


class CableRise(_Model):
    rise_c_per_min: float = Field(default=10.0, gt=0, le=120)
    peak_c: float = Field(default=95.0, gt=0, le=400)


class Fire(_Step):
    """A fire in one building: a first detector, then the others one by one; cables heat up."""

    action: Literal["fire"]
    site: str = "auto"
    detectors: int | Literal["all"] = "all"
    spread_every: Seconds = 20.0
    burn: Seconds = 600.0
    """How long each detector stays in alarm."""
    cable: CableRise | None = CableRise()

    @model_validator(mode="after")
    def _check(self) -> Fire:
        if isinstance(self.detectors, int) and self.detectors < 1:
            raise ValueError("detectors must be at least 1 (or 'all')")
        if self.spread_every > 90:
            raise ValueError(
                "spread_every above 90 s leaves FIRE_CONFIRMED (2 detectors within 120 s) ambiguous"
            )
        if self.cable is not None:
            _check_rise(self.cable.rise_c_per_min, self.cable.peak_c)
        return self


class Alarm(_Step):
    """Detectors alarm without a fire spreading (one per building unless listed)."""

    action: Literal["alarm"]
    target: Target = Target()
    duration: Seconds = 300.0


class Overload(_Step):
    """Phase currents climb to ``current_factor`` × normal; cable temperature follows."""

    action: Literal["overload"]
    target: Target = Target()
    current_factor: float = Field(default=1.8, ge=1.0, le=10.0)
    rise_c_per_min: float = Field(default=3.0, gt=0, le=120)
    peak_c: float = Field(default=82.0, gt=0, le=400)
    hold: Seconds = 180.0

    @model_validator(mode="after")
    def _check(self) -> Overload:
        _check_rise(self.rise_c_per_min, self.peak_c)
        return self


class Leakage(_Step):
    """Insulation fault: the residual current ramps up to ``residual_ma`` and holds."""

    action: Literal["leakage"]
    target: Target = Target()
    residual_ma: float = Field(default=450.0, ge=0, le=100_000)
    ramp: Seconds = 20.0
    hold: Seconds = 120.0


class Pressure(_Step):
    """Water pressure moves to ``to`` MPa over ``ramp``, holds, and recovers over ``ramp``."""

    action: Literal["pressure"]
    target: Target = Target()
    to: float = Field(ge=0, le=5)
    ramp: Seconds = 10.0
    hold: Seconds = 180.0


class Silence(_Step):
    """Devices stop sending (power cut, broken radio) for ``duration`` or until the run ends."""

    action: Literal["silence"]
    target: Target = Target()
    duration: Seconds | None = None


class Tamper(_Step):
    action: Literal["tamper"]
    target: Target = Target()
    duration: Seconds = 120.0


class Battery(_Step):
    """Batteries drop to ``to`` percent (and stay there)."""

    action: Literal["battery"]
    target: Target = Target()
    to: float = Field(default=8.0, ge=0, le=100)

    @model_validator(mode="after")
    def _check(self) -> Battery:
        if LOW_BATTERY_PCT - 1 <= self.to < LOW_BATTERY_PCT + 1:
            raise ValueError(f"to {self.to} is too close to the LOW_BATTERY threshold of {LOW_BATTERY_PCT} %")
        return self


class Fault(_Step):
    action: Literal["fault"]
    target: Target = Target()
    text: str = Field(default="sensor fault E07", min_length=1, max_length=200)
    duration: Seconds = 300.0


class PatrolSkip(_Step):
    """A worker leaves checkpoints out of their rounds for ``duration``."""

    action: Literal["patrol_skip"]
    worker: str = "auto"
    checkpoints: int = Field(default=1, ge=1, le=1000)
    duration: Seconds = 2 * DAY_S


class PatrolFast(_Step):
    """A worker's two consecutive scans are too far apart for the time between them."""

    action: Literal["patrol_fast"]
    worker: str = "auto"
    speed_m_s: float = Field(default=30.0, ge=15.0, le=1000.0)


class PatrolHazard(_Step):
    action: Literal["patrol_hazard"]
    worker: str = "auto"
    hazards: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=lambda: ["blocked fire exit"], min_length=1, max_length=50
    )
    note: str | None = Field(default=None, max_length=2000)


HostileCase = Literal[
    "bad_json",
    "not_utf8",
    "empty",
    "not_an_object",
    "empty_batch",
    "batch_too_big",
    "deep_nesting",
    "wrong_type",
    "missing_field",
    "out_of_range",
    "nan",
    "infinity",
    "kind_mismatch",
    "district_mismatch",
    "unknown_device",
    "unknown_kind",
    "short_topic",
    "long_topic",
    "topic_injection",
    "worker_injection",
    "oversize",
    "ts_future",
    "ts_too_old",
    "ts_string",
    "negative_seq",
    "unknown_worker",
    "bad_result",
    "fault_injection",
    "note_injection",
    "hazard_injection",
    "unicode_note",
    "unknown_fields",
]
HOSTILE_CASES: tuple[str, ...] = HostileCase.__args__  # type: ignore[attr-defined]


class Hostile(_Step):
    """Malformed and hostile messages, one per case, ``every`` seconds apart."""

    action: Literal["hostile"]
    cases: list[HostileCase] | Literal["all"] = "all"
    every: Seconds = 0.5


Step = Annotated[
    Fire
    | Alarm
    | Overload
    | Leakage
    | Pressure
    | Silence
    | Tamper
    | Battery
    | Fault
    | PatrolSkip
    | PatrolFast
    | PatrolHazard
    | Hostile,
    Field(discriminator="action"),
]


class Scenario(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    time_scale: float = Field(default=1.0, gt=0, le=1_000_000)
    """The time scale the scenario is written for (``--time-scale`` overrides it)."""
    duration: Seconds | None = None
    """Suggested run length in wall seconds (default: long enough for every step)."""
    cadence: Seconds = Field(default=5.0, gt=0, le=300)
    """While a step acts on a device, the device reports at least this often (simulated s)."""
    seed: int = 1
    steps: list[Step] = Field(min_length=1)


def _check_rise(rate: float, peak: float) -> None:
    if 0.8 * RISE_FAST_C_MIN < rate < 1.2 * RISE_FAST_C_MIN:
        raise ValueError(
            f"rise_c_per_min {rate} is within 20 % of the TEMP_RISE_FAST threshold of "
            f"{RISE_FAST_C_MIN} °C/min: choose ≤ 4 or ≥ 6"
        )
    if rate >= 1.2 * RISE_FAST_C_MIN and (peak - NORMAL_TEMP_C[1]) / rate < 2.0:
        raise ValueError(
            f"a rise at {rate} °C/min to peak_c {peak} lasts under 2 minutes: "
            "TEMP_RISE_FAST needs readings over 60 s; raise peak_c"
        )


def _where(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file; :class:`ScenarioError` names the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc.strerror or exc}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{path}: not valid YAML{where}: {problem}") from exc
    if not isinstance(document, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping with name and steps")
    try:
        return Scenario.model_validate(document)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [p for p in error["loc"] if not (isinstance(p, str) and (p in _STEP_TAGS or "[" in p))]
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{_where(loc)}: {message}")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ScenarioError(f"{path}: {problems[0]}{more}") from exc


_STEP_TAGS = {
    "fire",
    "alarm",
    "overload",
    "leakage",
    "pressure",
    "silence",
    "tamper",
    "battery",
    "fault",
    "patrol_skip",
    "patrol_fast",
    "patrol_hazard",
    "hostile",
}


def builtin_scenarios() -> dict[str, Path]:
    """The scenarios shipped with the package, by file stem."""
    folder = Path(__file__).resolve().parent / "scenarios"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_scenario(name: str | Path) -> Path:
    """A scenario path, or the name of a shipped scenario (``fire``, ``hostile``, ...)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = builtin_scenarios()
    if str(name) in shipped:
        return shipped[str(name)]
    raise ScenarioError(f"{name}: no such scenario file (shipped: {', '.join(shipped)})")


# -- ground truth ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpectedEvent:
    type: str
    grid_id: str
    district: str
    kind: str
    device_id: str | None = None
    site_id: str | None = None
    step: int = 0

    def key(self) -> tuple[str, str, str]:
        return (self.type, self.grid_id, self.device_id or self.site_id or "")


@dataclass(frozen=True, slots=True)
class ExpectedReject:
    reason: str
    topic: str
    case: str
    step: int = 0


@dataclass(frozen=True, slots=True)
class ExpectedStored:
    kind: str
    topic: str
    device_id: str
    case: str
    field: str
    value: Any
    """The value the field must be stored with; ``None``: the field must not be stored."""
    step: int = 0


Out = tuple[str, bytes, str]
"""(topic, payload, kind) of one message to publish; kind is the topic's kind or ``hostile``."""


@dataclass(order=True, slots=True)
class Timed:
    """A message (or several) due at simulated time ``t_ms``; ``emit(wall_ms)`` builds them."""

    t_ms: int
    order: int
    emit: Callable[[int], list[Out]] = field(compare=False)


@dataclass(slots=True)
class RunWindow:
    """The run a scenario is planned for."""

    start_ms: int
    """Simulated time of the start."""
    sim_s: float
    """Length of the run in simulated seconds (duration × time scale)."""
    time_scale: float
    wall_interval_s: dict[str, float] = field(default_factory=dict)
    """Each kind's background reporting interval in wall seconds (offline margins)."""
    prefix: str = ""

    @property
    def end_ms(self) -> int:
        return self.start_ms + round(self.sim_s * 1000)


@dataclass(slots=True)
class Plan:
    scenario: Scenario
    path: Path | None
    events: list[ExpectedEvent] = field(default_factory=list)
    rejects: list[ExpectedReject] = field(default_factory=list)
    stored: list[ExpectedStored] = field(default_factory=list)
    timed: list[Timed] = field(default_factory=list)
    needs_sim_s: float = 0.0
    """Simulated seconds the run must last for every expectation to come true."""
    needs_wall_s: float = 0.0
    """Wall seconds the run must last (offline detection runs on the service clock)."""

    def truth_lines(self) -> list[bytes]:
        name = self.scenario.name
        seen: set[tuple[str, str, str]] = set()
        lines: list[bytes] = []
        for event in self.events:
            if event.key() in seen:
                continue
            seen.add(event.key())
            record: dict[str, Any] = {"type": event.type, "grid_id": event.grid_id}
            if event.device_id is not None:
                record["device_id"] = event.device_id
            if event.site_id is not None:
                record["site_id"] = event.site_id
            record.update(district=event.district, kind=event.kind, scenario=name, step=event.step)
            lines.append(orjson.dumps(record))
        for reject in self.rejects:
            lines.append(
                orjson.dumps(
                    {
                        "reject": reject.reason,
                        "topic": reject.topic,
                        "case": reject.case,
                        "scenario": name,
                        "step": reject.step,
                    }
                )
            )
        for stored in self.stored:
            lines.append(
                orjson.dumps(
                    {
                        "accepted": stored.kind,
                        "topic": stored.topic,
                        "device_id": stored.device_id,
                        "case": stored.case,
                        "field": stored.field,
                        "value": stored.value,
                        "scenario": name,
                        "step": stored.step,
                    }
                )
            )
        return lines

    def write_truth(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(line + b"\n" for line in self.truth_lines()))


# -- effects (installed on the fleet's devices) ----------------------------------------------------


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


# -- planning -------------------------------------------------------------------------------------


def _expect(beyond_min_s: float, beyond_max_s: float, for_s: float, cadence_s: float) -> bool | None:
    """Does a condition that holds between ``beyond_min_s`` and ``beyond_max_s`` raise a rule with
    ``for_s``? ``None`` when the answer depends on where readings fall."""
    if beyond_min_s >= for_s + 3 * cadence_s and beyond_min_s > 0:
        return True
    if beyond_max_s <= 0 or (for_s > 0 and beyond_max_s < for_s - 1.0):
        return False
    return None


def _ramp_beyond(
    base: float, target: float, threshold: float, ramp_s: float, hold_s: float, *, below: bool
) -> float:
    """Seconds a ramp(base → target, hold, back) spends beyond ``threshold`` (below or above)."""

    def beyond(value: float) -> bool:
        return value < threshold if below else value > threshold

    if not beyond(target):
        return 0.0
    if beyond(base):
        return 2 * ramp_s + hold_s
    share = (base - threshold) / (base - target) if base != target else 1.0
    return hold_s + 2 * ramp_s * (1.0 - share)


@dataclass(frozen=True, slots=True)
class _Skip:
    """A checkpoint a ``patrol_skip`` step leaves out."""

    step: int
    tag: int
    last: int
    """Its last scan the service sees before the skip (``ts``)."""
    deadline: int
    """When PATROL_MISSED is due on the patrol clock."""
    resume: int | None
    """Its first scan after the skip."""


class _Planner:
    def __init__(self, scenario: Scenario, path: Path | None, fleet: Fleet, run: RunWindow) -> None:
        self.scenario = scenario
        self.file = str(path) if path is not None else scenario.name
        self.fleet = fleet
        self.run = run
        self.registry = fleet.registry
        self.plan = Plan(scenario, path)
        self.used: set[str] = set()
        self.used_workers: set[int] = set()
        self.injected: dict[int, list[tuple[int, int]]] = {}
        """worker → (t_ms, tag) of the scans steps gave them."""
        self.skips: list[_Skip] = []
        self.used_sites: set[str] = set()
        self.alarms: dict[str, list[tuple[int, int, int, int]]] = {}
        """site → (smoke index, onset_ms, end_ms, step) of every scripted alarm."""
        self.order = 0
        self.cadence_ms = round(scenario.cadence * 1000)
        self.step = 0

    # helpers ----------------------------------------------------------------------------------

    def fail(self, key: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.file}: steps[{self.step}].{key}: {problem}")

    def ms(self, seconds: float) -> int:
        return self.run.start_ms + round(seconds * 1000)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng([self.scenario.seed, self.step, 0x5CE7])

    def need(self, end_ms: float) -> None:
        self.plan.needs_sim_s = max(self.plan.needs_sim_s, (end_ms - self.run.start_ms) / 1000)

    def timed(self, t_ms: int, emit: Callable[[int], list[Out]]) -> None:
        self.order += 1
        self.plan.timed.append(Timed(t_ms, self.order, emit))

    def event(self, type_: str, kind: str, index: int, *, site_event: bool = False) -> None:
        """Expect ``type_`` for the device (or, for a site event, the device's site)."""
        registry = self.registry
        slot = int(self.fleet.banks[kind].slots[index])
        grid, district = registry.grid_of(slot), registry.district_of(slot)
        if site_event:
            expected = ExpectedEvent(
                type_, grid, district, kind, site_id=registry.site_of(slot), step=self.step
            )
        else:
            expected = ExpectedEvent(
                type_, grid, district, kind, device_id=registry.device_ids[slot], step=self.step
            )
        self.plan.events.append(expected)

    def override(self, kind: str, index: int, name: str) -> float:
        slot = int(self.fleet.banks[kind].slots[index])
        value = self.registry.override(name, slot)
        return float("nan") if value is None else value

    def limit(self, kind: str, index: int, name: str, default: float) -> float:
        value = self.override(kind, index, name)
        return default if math.isnan(value) else value

    def report(self, kind: str, index: int, t_ms: int) -> None:
        bank = self.fleet.banks[kind]
        topic = f"{self.run.prefix}fire/{bank.districts[index]}/{kind}/{bank.device_ids[index]}"
        idx = np.array([index], dtype=np.int64)

        def emit(_wall_ms: int) -> list[Out]:
            return [(topic, orjson.dumps(m), kind) for _, m in bank.messages(idx, t_ms)]

        self.timed(t_ms, emit)

    def focus(self, kind: str, index: int, start_ms: int, end_ms: float) -> None:
        """The device reports every ``cadence`` while the step acts on it (and a little after)."""
        stop = min(end_ms + 2 * self.cadence_ms, self.run.end_ms)
        for t in range(start_ms, int(stop), self.cadence_ms):
            self.report(kind, index, t)

    def pick(self, target: Target, kind: str, key: str = "target", per_site: bool = False) -> list[int]:
        """Bank indices of the step's devices (explicit, or ``count`` picked among unused ones)."""
        if target.kind is not None and target.kind != kind:
            raise self.fail(f"{key}.kind", f"this step acts on {kind} devices, not {target.kind}")
        bank = self.fleet.banks[kind]
        if target.devices is not None:
            out = []
            for device_id in target.devices:
                found = self.fleet.locate(device_id)
                if found is None:
                    raise self.fail(f"{key}.devices", f"device {device_id} is not in the registry")
                if found[0] != kind:
                    raise self.fail(
                        f"{key}.devices", f"device {device_id} is a {found[0]} device, not {kind}"
                    )
                out.append(found[1])
            self.used.update(target.devices)
            return out
        count = target.count or 1
        candidates = [i for i in range(bank.size) if bank.device_ids[i] not in self.used]
        if target.grid is not None:
            if target.grid not in self.registry.grids:
                raise self.fail(f"{key}.grid", f"grid {target.grid} is not in the registry")
            candidates = [i for i in candidates if self.registry.grid_of(int(bank.slots[i])) == target.grid]
        if per_site:
            taken = set(self.used_sites) | set(self.alarms)
            by_site: dict[str, int] = {}
            for i in candidates:
                site = self.registry.site_of(int(bank.slots[i]))
                if site not in taken and site not in by_site:
                    by_site[site] = i
            candidates = list(by_site.values())
        if len(candidates) < count:
            raise self.fail(
                f"{key}.count", f"only {len(candidates)} unused {kind} devices to choose {count} from"
            )
        chosen = sorted(self.rng().choice(len(candidates), size=count, replace=False).tolist())
        out = [candidates[c] for c in chosen]
        self.used.update(bank.device_ids[i] for i in out)
        if per_site:
            self.used_sites.update(self.registry.site_of(int(bank.slots[i])) for i in out)
        return out

    # steps ------------------------------------------------------------------------------------

    def build(self) -> Plan:
        for number, step in enumerate(self.scenario.steps):
            self.step = number
            start = self.ms(step.at)
            if start >= self.run.end_ms:
                raise self.fail(
                    "at", f"starts at {step.at:g} s but the run lasts {self.run.sim_s:g} simulated s"
                )
            getattr(self, f"_{step.action}")(step, start)
        self._confirmations()
        self._patrol_clocks()
        self.plan.timed.sort()
        return self.plan

    def _alarm_on(self, index: int, onset: int, end: float) -> None:
        fleet = self.fleet
        fleet.add_effect("smoke", index, SmokeAlarm(onset, end))
        self.report("smoke", index, onset)
        self.focus("smoke", index, onset + self.cadence_ms, end)
        self.event("FIRE_ALARM", "smoke", index)
        slot = int(fleet.smoke.slots[index])
        site = self.registry.site_of(slot)
        self.alarms.setdefault(site, []).append((index, onset, round(end), self.step))
        self.need(onset + 3 * self.cadence_ms)

    def _fire(self, step: Fire, start: int) -> None:
        fleet, registry = self.fleet, self.registry
        smoke = fleet.smoke
        site_of = [registry.site_of(int(s)) for s in smoke.slots.tolist()]
        by_site: dict[str, list[int]] = {}
        for i, site in enumerate(site_of):
            if smoke.device_ids[i] not in self.used:
                by_site.setdefault(site, []).append(i)
        elec_site = [registry.site_of(int(s)) for s in fleet.electrical.slots.tolist()]
        if step.site == "auto":
            want = 2 if step.detectors == "all" else max(step.detectors, 1)
            ranked = sorted(
                (
                    s
                    for s, d in by_site.items()
                    if len(d) >= want and s not in self.alarms and s not in self.used_sites
                ),
                key=lambda s: (-(s in elec_site), -len(by_site[s]), s),
            )
            if not ranked:
                raise self.fail("site", f"no unused site with {want} smoke detectors")
            site = ranked[0]
        else:
            site = step.site
            if site not in by_site:
                raise self.fail("site", f"site {site} has no (unused) smoke detector in the registry")
        self.used_sites.add(site)
        detectors = by_site[site]
        if step.detectors != "all":
            if step.detectors > len(detectors):
                raise self.fail("detectors", f"site {site} has only {len(detectors)} smoke detectors")
            detectors = detectors[: step.detectors]
        spread = round(step.spread_every * 1000)
        burn = round(step.burn * 1000)
        for n, index in enumerate(detectors):
            onset = start + n * spread
            self._alarm_on(index, onset, onset + burn)
            self.used.add(smoke.device_ids[index])
        if step.cable is not None:
            for index, s in enumerate(elec_site):
                if s == site and fleet.electrical.device_ids[index] not in self.used:
                    self.used.add(fleet.electrical.device_ids[index])
                    self._heat(
                        index,
                        start + spread,
                        step.cable.rise_c_per_min,
                        step.cable.peak_c,
                        round(step.burn * 1000),
                        factor=1.0,
                    )

    def _heat(self, index: int, start: int, rate: float, peak: float, hold_ms: int, *, factor: float) -> None:
        effect = CableHeat(start, rate, peak, hold_ms, factor)
        self.fleet.add_effect("electrical", index, effect)
        self.focus("electrical", index, start, effect.end_ms)
        limit = self.limit("electrical", index, "temp_limit_c", TEMP_LIMIT_C)
        if limit - 5 < peak < limit + 3:
            raise self.fail("peak_c", f"{peak} °C is too close to the cable limit of {limit} °C")
        # above the limit: from the crossing on the way up, through the hold, to the crossing down
        above = hold_ms / 1000 + 2 * (peak - limit) / rate * 60 if peak > limit else 0.0
        overheat = _expect(above, above, TEMP_FOR_S, self.scenario.cadence)
        if overheat is None:
            raise self.fail("hold", f"the time above {limit} °C leaves CABLE_OVERHEAT ambiguous; hold longer")
        cadence_ms = 3 * self.cadence_ms
        if overheat:
            self.event("CABLE_OVERHEAT", "electrical", index)
            crossing = (limit + 3 - NORMAL_TEMP_C[0]) / rate * 60_000
            self.need(start + crossing + TEMP_FOR_S * 1000 + cadence_ms)
        if rate >= 1.2 * RISE_FAST_C_MIN:
            self.event("TEMP_RISE_FAST", "electrical", index)
            self.need(start + 150_000 + cadence_ms)

    def _alarm(self, step: Alarm, start: int) -> None:
        explicit = step.target.devices is not None
        for index in self.pick(step.target, "smoke", per_site=not explicit):
            self._alarm_on(index, start, start + round(step.duration * 1000))

    def _confirmations(self) -> None:
        """FIRE_CONFIRMED for every site where two detectors alarm within 90 s of each other."""
        for site, alarms in self.alarms.items():
            confirmed: bool | None = False
            ordered = sorted(alarms, key=lambda a: a[1])
            for a, first in enumerate(ordered):
                for second in ordered[a + 1 :]:
                    if first[0] == second[0]:
                        continue
                    if second[1] - first[1] <= 90_000:
                        confirmed = True
                    elif confirmed is False and second[1] - first[2] < 150_000:
                        confirmed = None  # one still (or just) in alarm when the other starts
            if confirmed is None:
                self.step = ordered[-1][3]
                raise self.fail(
                    "at",
                    f"alarms at site {site} leave FIRE_CONFIRMED ambiguous: two detectors "
                    "alarm more than 90 s apart while the first is (nearly) still in alarm",
                )
            if confirmed:
                self.step = ordered[0][3]
                self.event("FIRE_CONFIRMED", "smoke", ordered[0][0], site_event=True)

    def _overload(self, step: Overload, start: int) -> None:
        for index in self.pick(step.target, "electrical"):
            self._heat(
                index,
                start,
                step.rise_c_per_min,
                step.peak_c,
                round(step.hold * 1000),
                factor=step.current_factor,
            )

    def _leakage(self, step: Leakage, start: int) -> None:
        ramp, hold = round(step.ramp * 1000), round(step.hold * 1000)
        for index in self.pick(step.target, "electrical"):
            effect = Ramp(start, "residual_ma", step.residual_ma, ramp, hold, digits=1)
            self.fleet.add_effect("electrical", index, effect)
            self.focus("electrical", index, start, effect.end_ms)
            limit = self.limit("electrical", index, "residual_ma_limit", RESIDUAL_LIMIT_MA)
            if 0.9 * limit <= step.residual_ma < 1.05 * limit:
                raise self.fail(
                    "residual_ma", f"{step.residual_ma} mA is too close to the limit of {limit} mA"
                )
            low, high = NORMAL_RESIDUAL_MA
            beyond = [
                _ramp_beyond(b, step.residual_ma, limit, step.ramp, step.hold, below=False)
                for b in (low, high)
            ]
            expected = _expect(min(beyond), max(beyond), RESIDUAL_FOR_S, self.scenario.cadence)
            if expected is None:
                raise self.fail(
                    "hold", "the time above the residual-current limit leaves the event ambiguous"
                )
            if expected:
                self.event("RESIDUAL_CURRENT_HIGH", "electrical", index)
                self.need(start + ramp + RESIDUAL_FOR_S * 1000 + 3 * self.cadence_ms)

    def _pressure(self, step: Pressure, start: int) -> None:
        ramp, hold = round(step.ramp * 1000), round(step.hold * 1000)
        for index in self.pick(step.target, "water"):
            effect = Ramp(start, "pressure_mpa", step.to, ramp, hold)
            self.fleet.add_effect("water", index, effect)
            self.focus("water", index, start, effect.end_ms)
            low = self.limit("water", index, "min_pressure_mpa", MIN_PRESSURE)
            high = self.limit("water", index, "max_pressure_mpa", MAX_PRESSURE)
            rules = (
                ("LOW_PRESSURE", low, PRESSURE_FOR_S, True),
                ("PRESSURE_LOSS", LOSS_PRESSURE, 0.0, True),
                ("HIGH_PRESSURE", high, PRESSURE_FOR_S, False),
            )
            for type_, threshold, for_s, below in rules:
                if abs(step.to - threshold) < 0.015:
                    raise self.fail(
                        "to", f"{step.to} MPa is too close to the {type_} threshold of {threshold} MPa"
                    )
                beyond = [
                    _ramp_beyond(b, step.to, threshold, step.ramp, step.hold, below=below)
                    for b in NORMAL_PRESSURE
                ]
                expected = _expect(min(beyond), max(beyond), for_s, self.scenario.cadence)
                if expected is None:
                    raise self.fail("hold", f"the time beyond {threshold} MPa leaves {type_} ambiguous")
                if expected:
                    self.event(type_, "water", index)
                    self.need(start + ramp + for_s * 1000 + 3 * self.cadence_ms)

    def _silence(self, step: Silence, start: int) -> None:
        kind = step.target.kind or "electrical"
        if kind == "patrol":
            raise self.fail("target.kind", "patrol tags only speak when scanned: use patrol_skip")
        end = math.inf if step.duration is None else start + step.duration * 1000
        ts = self.run.time_scale
        for index in self.pick(step.target, kind):
            self.fleet.add_effect(kind, index, Suppress(start, end))
            heartbeat = self.fleet.heartbeat_s(kind)[index]
            threshold = 2 * heartbeat + 60
            interval = self.run.wall_interval_s.get(kind, 0.0)
            silent_wall = (min(end, self.run.end_ms) - start) / 1000 / ts
            if step.duration is None or silent_wall >= threshold + 15:
                need_wall = (start - self.run.start_ms) / 1000 / ts + threshold + 15
                if need_wall > self.run.sim_s / ts:
                    raise self.fail(
                        "at",
                        f"{kind} devices are reported offline after {threshold:g} s of silence "
                        f"(service clock); the run must last at least {math.ceil(need_wall)} s",
                    )
                self.plan.needs_wall_s = max(self.plan.needs_wall_s, need_wall)
                self.event("DEVICE_OFFLINE", kind, index)
            elif silent_wall + interval > threshold - 15:
                raise self.fail(
                    "duration",
                    f"a silence of {silent_wall:g} wall s is too close to the offline "
                    f"threshold of {threshold:g} s",
                )

    def _tamper(self, step: Tamper, start: int) -> None:
        self._flag(step.target, "smoke", start, step.duration, {"tamper": True}, type_="TAMPER")

    def _fault(self, step: Fault, start: int) -> None:
        kind = step.target.kind or "electrical"
        if kind == "patrol":
            raise self.fail("target.kind", "patrol tags report no fault field")
        self._flag(step.target, kind, start, step.duration, {"fault": step.text}, type_="DEVICE_FAULT")

    def _flag(
        self, target: Target, kind: str, start: int, duration: float, values: Message, *, type_: str
    ) -> None:
        if duration < 3 * self.scenario.cadence:
            raise self.fail("duration", f"lasts under 3 reports ({3 * self.scenario.cadence:g} s)")
        end = start + round(duration * 1000)
        for index in self.pick(target, kind):
            self.fleet.add_effect(kind, index, SetFields(start, end, values))
            self.report(kind, index, start)
            self.focus(kind, index, start + self.cadence_ms, end)
            self.event(type_, kind, index)
            self.need(start + 3 * self.cadence_ms)

    def _battery(self, step: Battery, start: int) -> None:
        kind = step.target.kind or "smoke"
        if kind not in ("smoke", "water"):
            raise self.fail("target.kind", "only smoke detectors and water monitors report a battery")
        for index in self.pick(step.target, kind):
            self.fleet.add_effect(kind, index, SetFields(start, math.inf, {"battery_pct": step.to}))
            self.report(kind, index, start)
            self.focus(kind, index, start + self.cadence_ms, start + 3 * self.cadence_ms)
            if step.to < LOW_BATTERY_PCT:
                self.event("LOW_BATTERY", kind, index)
            self.need(start + 3 * self.cadence_ms)

    # patrols ----------------------------------------------------------------------------------
    #
    # PATROL_TOO_FAST compares each scan with its worker's latest scan (by ts) of another
    # checkpoint, and PATROL_MISSED runs on the patrol clock (the latest scan ts of any
    # checkpoint). A step's own scans are placed so that they imply at most SAFE_SPEED_M_S to and
    # from every other scan of their worker, and a skip so that the patrol clock passes the
    # deadline while the checkpoint is still silent: the planner looks for a worker and
    # checkpoints that allow it, and refuses only when none does.

    def _round_scans(self, worker: int, t0_ms: int, t1_ms: int) -> list[tuple[int, int]]:
        """(t_ms, tag) of the worker's normal scans, and of the scans earlier steps gave them,
        with ``t0_ms <= t < t1_ms``."""
        patrol = self.fleet.patrol
        out = [
            (t, tag) for tag in patrol.routes[worker].tolist() for t in patrol.tag_scans(tag, t0_ms, t1_ms)
        ]
        out.extend((t, tag) for t, tag in self.injected.get(worker, []) if t0_ms <= t < t1_ms)
        return sorted(out)

    def _fits(self, worker: int, scans: list[tuple[int, int]], *, idle: bool) -> bool:
        """Can ``worker`` make ``scans`` ((t_ms, tag), the step's own) with none of them implying
        more than SAFE_SPEED_M_S to or from any other scan of theirs, whatever order the scans
        arrive in? ``idle``: also no other scan of theirs within IDLE_MARGIN_S (off duty)."""
        patrol = self.fleet.patrol
        lat, lon, route = patrol.lat, patrol.lon, patrol.routes[worker]
        t0, t1 = min(t for t, _ in scans), max(t for t, _ in scans)
        far = max(float(np.max(haversine_m(lat[tag], lon[tag], lat[route], lon[route]))) for _, tag in scans)
        reach = math.ceil(far / SAFE_SPEED_M_S * 1000) + 60_000  # any scan further off is slower
        idle_ms = IDLE_MARGIN_S * 1000 if idle else 0
        margin = max(reach, idle_ms)
        for t, tag in self._round_scans(worker, t0 - margin, t1 + margin + 1):
            if t0 - idle_ms <= t <= t1 + idle_ms:
                return False  # also: no scan of theirs between the step's own
            for own_t, own in scans:
                metres = float(haversine_m(lat[own], lon[own], lat[tag], lon[tag]))
                if own != tag and metres * 1000 > SAFE_SPEED_M_S * abs(t - own_t):
                    return False
        return True

    def _patrol_worker(
        self,
        name: str,
        key: str,
        offers: Callable[[int], list[list[tuple[int, int]]]],
        needs: str,
    ) -> tuple[int, list[tuple[int, int]]]:
        """The worker and the scans ((t_ms, tag), from ``offers(worker)``, best first) of a step.

        ``name`` or, for ``auto``, a worker no other step uses, in the step's random order. An
        off-duty worker is preferred; else any whose scans fit between their round's (see
        :meth:`_fits`)."""
        patrol = self.fleet.patrol
        if name != "auto":
            if name not in patrol.workers:
                raise self.fail(key, f"worker {name} patrols no checkpoint in the registry")
            workers = [patrol.workers.index(name)]
        else:
            order = [int(w) for w in self.rng().permutation(len(patrol.workers))]
            workers = [
                w
                for w in order
                if w not in self.used_workers
                and not any(patrol.device_ids[t] in self.used for t in patrol.routes[w].tolist())
            ]
        offered: dict[int, list[list[tuple[int, int]]]] = {}
        for idle in (True, False):
            for w in workers:
                if w not in offered:
                    offered[w] = offers(w)
                for scans in offered[w]:
                    if self._fits(w, scans, idle=idle):
                        self.used_workers.add(w)
                        self.injected.setdefault(w, []).extend(scans)
                        return w, scans
        who = f"worker {name}" if name != "auto" else f"every worker with {needs}"
        if not any(offered.values()):
            raise self.fail(
                key,
                f"worker {name} has no {needs}"
                if name != "auto"
                else f"no worker that no other step uses has {needs}",
            )
        raise self.fail(
            key,
            f"{who} is on a round at that time (a scan then would imply over {SAFE_SPEED_M_S:g} m/s "
            "to or from one of their own, a PATROL_TOO_FAST not in the ground truth): pick another time",
        )

    def _single(self, t_ms: int) -> Callable[[int], list[list[tuple[int, int]]]]:
        """Offers of one scan at ``t_ms``: each unused checkpoint of the worker's round, in order."""
        patrol = self.fleet.patrol

        def offers(worker: int) -> list[list[tuple[int, int]]]:
            return [
                [(t_ms, t)] for t in patrol.routes[worker].tolist() if patrol.device_ids[t] not in self.used
            ]

        return offers

    def _scan(
        self,
        tag: int,
        worker: int,
        t_ms: int,
        extra: Message | None = None,
        record: Callable[[str], None] | None = None,
    ) -> None:
        patrol = self.fleet.patrol
        topic = f"{self.run.prefix}fire/{patrol.districts[tag]}/patrol/{patrol.device_ids[tag]}"

        def emit(_wall_ms: int) -> list[Out]:
            made = patrol.scan_message(Scan(t_ms, tag, worker))
            if made is None:
                return []
            message = made[1]
            if extra:
                message.update(extra)
            return [(topic, orjson.dumps(message), "patrol")]

        self.timed(t_ms, emit)
        if record is not None:
            record(topic)

    def _patrol_clock(self, t_ms: int, silent: set[int]) -> int | None:
        """The first normal scan at or after ``t_ms`` (within two days) that goes out: of a
        checkpoint not in ``silent`` and not suppressed by a step. It moves the patrol clock."""
        patrol = self.fleet.patrol
        for hour in range(48):
            lo = t_ms + hour * 3_600_000
            for scan in patrol.scans(lo, lo + 3_600_000):
                if scan.tag in silent:
                    continue
                if all(effect.apply({}, scan.t_ms) for effect in patrol.effects.get(scan.tag, ())):
                    return scan.t_ms
        return None

    def _skip(self, tag: int, start: int, end: int, silent: set[int]) -> _Skip | None:
        """How skipping ``tag`` from ``start`` to ``end`` raises PATROL_MISSED; ``None`` if it
        cannot: the checkpoint is scanned again before the patrol clock passes its deadline."""
        patrol = self.fleet.patrol
        last = patrol.last_scan_before(tag, start + 1)
        if last is None or last < self.run.start_ms:
            # not scanned yet in this run: the service has not seen it; its first scan counts
            following = patrol.tag_scans(tag, start, start + 2 * DAY_S * 1000)
            if not following:
                return None
            last = following[0]
        interval_h = self.limit("patrol", tag, "patrol_interval_h", PATROL_INTERVAL_H)
        deadline = last + round(interval_h * PATROL_GRACE * 3_600_000)
        resumed = patrol.tag_scans(tag, end, end + 2 * DAY_S * 1000)
        resume = resumed[0] if resumed else None
        clock = self._patrol_clock(deadline + CLOCK_MARGIN_MS, silent | {tag})
        if clock is None or (resume is not None and resume < clock + SKIP_MARGIN_MS):
            return None
        return _Skip(self.step, tag, last, deadline, resume)

    def _patrol_skip(self, step: PatrolSkip, start: int) -> None:
        patrol = self.fleet.patrol
        end = start + round(step.duration * 1000)
        wanted = step.checkpoints
        if step.worker == "auto":
            order = [int(w) for w in self.rng().permutation(len(patrol.workers))]
            workers = [w for w in order if w not in self.used_workers and patrol.routes[w].size >= wanted]
            if not workers:
                raise self.fail("worker", f"no worker patrols {wanted} checkpoints")
        else:
            if step.worker not in patrol.workers:
                raise self.fail("worker", f"worker {step.worker} patrols no checkpoint in the registry")
            workers = [patrol.workers.index(step.worker)]
            if patrol.routes[workers[0]].size < wanted:
                raise self.fail(
                    "checkpoints", f"the worker patrols only {patrol.routes[workers[0]].size} checkpoints"
                )
        taken = {i for i, device in enumerate(patrol.device_ids) if device in self.used}
        chosen: list[_Skip] = []
        for worker in workers:
            chosen = []
            for tag in patrol.routes[worker].tolist():
                if tag in taken:
                    continue
                skip = self._skip(tag, start, end, taken | {c.tag for c in chosen})
                if skip is not None:
                    chosen.append(skip)
                    if len(chosen) == wanted:
                        break
            if len(chosen) == wanted:
                break
        else:
            whose = (
                f"{wanted} of worker {step.worker}'s checkpoints"
                if step.worker != "auto"
                else (f"no worker's {wanted} checkpoints")
            )
            raise self.fail(
                "duration",
                f"{whose} stay unscanned until the patrol clock passes their deadline "
                f"({PATROL_INTERVAL_H * PATROL_GRACE:g} h after the last scan, "
                f"+ {SKIP_MARGIN_MS / 3_600_000:g} h): skip longer",
            )
        self.used_workers.add(worker)
        for skip in chosen:
            self.used.add(patrol.device_ids[skip.tag])
            self.fleet.add_effect("patrol", skip.tag, Suppress(skip.last + 1, end))
            self.event("PATROL_MISSED", "patrol", skip.tag)
            self.skips.append(skip)

    def _patrol_clocks(self) -> None:
        """Once every step is planned: the run lasts until the patrol clock passes each skipped
        checkpoint's deadline, before the checkpoint is scanned again."""
        for skip in self.skips:
            self.step = skip.step
            clock = self._patrol_clock(skip.deadline + CLOCK_MARGIN_MS, {skip.tag})
            if clock is None or (skip.resume is not None and skip.resume < clock + SKIP_MARGIN_MS):
                raise self.fail(
                    "at",
                    f"later steps silence the checkpoints whose scans would move the patrol clock past "
                    f"the deadline of {self.fleet.patrol.device_ids[skip.tag]}",
                )
            self.need(clock + CLOCK_MARGIN_MS)

    def _patrol_fast(self, step: PatrolFast, start: int) -> None:
        patrol = self.fleet.patrol

        def pairs(worker: int) -> list[list[tuple[int, int]]]:
            """Per unused checkpoint of the round: it, then the one furthest from it."""
            route = [t for t in patrol.routes[worker].tolist() if patrol.device_ids[t] not in self.used]
            tags = np.array(route, dtype=np.int64)
            out = []
            for first in route:
                distance = haversine_m(
                    patrol.lat[first], patrol.lon[first], patrol.lat[tags], patrol.lon[tags]
                )
                far = int(np.argmax(distance))
                metres = float(distance[far])
                if metres >= MIN_FAST_M:
                    gap_ms = max(1, round(metres / step.speed_m_s * 1000))
                    out.append([(start, first), (start + gap_ms, route[far])])
            return out

        worker, scans = self._patrol_worker(
            step.worker, "worker", pairs, f"two unused checkpoints at least {MIN_FAST_M:g} m apart"
        )
        (_, first), (second_ms, second) = scans
        self.used.update((patrol.device_ids[first], patrol.device_ids[second]))
        self._scan(first, worker, start)
        self._scan(second, worker, second_ms)
        self.event("PATROL_TOO_FAST", "patrol", second)
        self.need(second_ms + 1000)

    def _patrol_hazard(self, step: PatrolHazard, start: int) -> None:
        worker, scans = self._patrol_worker(
            step.worker, "worker", self._single(start), "an unused checkpoint"
        )
        tag = scans[0][1]
        self.used.add(self.fleet.patrol.device_ids[tag])
        extra: Message = {"result": "hazard", "hazards": list(step.hazards)}
        if step.note is not None:
            extra["note"] = step.note
        self._scan(tag, worker, start, extra)
        self.event("PATROL_HAZARD", "patrol", tag)
        self.need(start + 1000)

    # hostile messages -------------------------------------------------------------------------

    def _hostile(self, step: Hostile, start: int) -> None:
        cases = list(HOSTILE_CASES) if step.cases == "all" else list(dict.fromkeys(step.cases))
        hostile = _Hostile(self, start)
        every = round(step.every * 1000)
        for n, case in enumerate(cases):
            getattr(hostile, case)(start + n * every)
        self.need(start + len(cases) * every + 1000)


class _Hostile:
    """One builder per hostile case: schedules the message and records its expectation."""

    def __init__(self, planner: _Planner, start: int) -> None:
        self.p = planner
        self.fleet = planner.fleet
        self.prefix = planner.run.prefix
        self.devices: dict[str, int] = {}
        self.start = start
        self.unknown = 0

    def device(self, kind: str) -> int:
        """An unused device of ``kind`` (the same one for every case of this step)."""
        if kind not in self.devices:
            bank = self.fleet.banks[kind]
            free = [i for i in range(bank.size) if bank.device_ids[i] not in self.p.used]
            if not free:
                raise self.p.fail("cases", f"no unused {kind} device to send hostile messages from")
            self.devices[kind] = free[0]
            self.p.used.add(bank.device_ids[free[0]])
        return self.devices[kind]

    def topic(
        self,
        kind: str,
        index: int | None = None,
        *,
        district: str | None = None,
        device: str | None = None,
        topic_kind: str | None = None,
    ) -> str:
        bank = self.fleet.banks[kind]
        i = self.device(kind) if index is None else index
        return (
            f"{self.prefix}fire/{district or bank.districts[i]}/{topic_kind or kind}/"
            f"{device or bank.device_ids[i]}"
        )

    def raw(
        self, t_ms: int, case: str, reason: str, topic: str, payload: bytes | Callable[[int], bytes]
    ) -> None:
        def emit(wall_ms: int) -> list[Out]:
            body = payload(wall_ms) if callable(payload) else payload
            return [(topic, body, "hostile")]

        self.p.timed(t_ms, emit)
        self.p.plan.rejects.append(ExpectedReject(reason, topic, case, self.p.step))

    def reading(self, kind: str, t_ms: int) -> Message:
        """A normal reading of this step's ``kind`` device (no ``ts``/``seq``)."""
        bank = self.fleet.banks[kind]
        return bank.values(np.array([self.device(kind)], dtype=np.int64), t_ms)[0]

    def unknown_id(self) -> str:
        self.unknown += 1
        district = self.fleet.registry.districts[0] if self.fleet.registry.districts else "D01"
        while True:
            candidate = f"{district}-XX{self.p.step:02d}{self.unknown:04d}"
            if candidate not in self.fleet.registry.slot_of:
                return candidate
            self.unknown += 1

    # rejected ---------------------------------------------------------------------------------

    def bad_json(self, t: int) -> None:
        self.raw(t, "bad_json", "invalid_json", self.topic("smoke"), b'{"alarm": tru')

    def not_utf8(self, t: int) -> None:
        self.raw(t, "not_utf8", "invalid_json", self.topic("smoke"), b'\xff\xfe{"alarm": false}')

    def empty(self, t: int) -> None:
        self.raw(t, "empty", "invalid_json", self.topic("smoke"), b"")

    def not_an_object(self, t: int) -> None:
        self.raw(t, "not_an_object", "schema", self.topic("smoke"), b'"hello"')

    def empty_batch(self, t: int) -> None:
        self.raw(t, "empty_batch", "schema", self.topic("smoke"), b"[]")

    def batch_too_big(self, t: int) -> None:
        item = orjson.dumps({"alarm": False})
        self.raw(
            t,
            "batch_too_big",
            "schema",
            self.topic("smoke"),
            b"[" + b",".join([item] * (MAX_BATCH + 1)) + b"]",
        )

    def deep_nesting(self, t: int) -> None:
        self.raw(t, "deep_nesting", "invalid_json", self.topic("smoke"), b"[" * 50_000 + b"]" * 50_000)

    def wrong_type(self, t: int) -> None:
        self.raw(t, "wrong_type", "schema", self.topic("smoke"), b'{"alarm": "yes"}')

    def missing_field(self, t: int) -> None:
        self.raw(t, "missing_field", "schema", self.topic("electrical"), b'{"temp_c": [30.0]}')

    def out_of_range(self, t: int) -> None:
        self.raw(t, "out_of_range", "schema", self.topic("smoke"), b'{"alarm": false, "battery_pct": 150}')

    def nan(self, t: int) -> None:
        self.raw(t, "nan", "invalid_json", self.topic("water"), b'{"pressure_mpa": NaN}')

    def infinity(self, t: int) -> None:
        self.raw(t, "infinity", "invalid_json", self.topic("electrical"), b'{"residual_ma": 1e999}')

    def kind_mismatch(self, t: int) -> None:
        message = orjson.dumps({**self.reading("water", t)})
        self.raw(t, "kind_mismatch", "kind_mismatch", self.topic("smoke", topic_kind="water"), message)

    def district_mismatch(self, t: int) -> None:
        districts = set(self.fleet.registry.districts)
        other = next(f"D{n:02d}" for n in range(99, 0, -1) if f"D{n:02d}" not in districts)
        message = orjson.dumps(self.reading("smoke", t))
        self.raw(t, "district_mismatch", "district_mismatch", self.topic("smoke", district=other), message)

    def unknown_device(self, t: int) -> None:
        self.raw(
            t,
            "unknown_device",
            "unknown_device",
            self.topic("smoke", device=self.unknown_id()),
            b'{"alarm": false}',
        )

    def unknown_kind(self, t: int) -> None:
        self.raw(t, "unknown_kind", "bad_topic", self.topic("smoke", topic_kind="laser"), b'{"alarm": false}')

    def short_topic(self, t: int) -> None:
        bank = self.fleet.smoke
        i = self.device("smoke")
        self.raw(
            t, "short_topic", "bad_topic", f"{self.prefix}fire/{bank.districts[i]}/smoke", b'{"alarm": false}'
        )

    def long_topic(self, t: int) -> None:
        self.raw(t, "long_topic", "bad_topic", self.topic("smoke") + "/extra", b'{"alarm": false}')

    def topic_injection(self, t: int) -> None:
        self.raw(
            t, "topic_injection", "bad_topic", self.topic("smoke", device='a,b=c d"x'), b'{"alarm": false}'
        )

    def worker_injection(self, t: int) -> None:
        body = orjson.dumps({"worker_id": INJECTION, "result": "ok"})
        self.raw(t, "worker_injection", "schema", self.topic("patrol"), body)

    def oversize(self, t: int) -> None:
        body = orjson.dumps({"alarm": False, "note": "x" * (MAX_PAYLOAD + 40_000)})
        self.raw(t, "oversize", "too_large", self.topic("smoke"), body)

    def ts_future(self, t: int) -> None:
        self.raw(
            t,
            "ts_future",
            "ts_future",
            self.topic("smoke"),
            lambda wall: orjson.dumps({"ts": wall + 10 * 60_000, "alarm": False}),
        )

    def ts_too_old(self, t: int) -> None:
        self.raw(
            t,
            "ts_too_old",
            "ts_too_old",
            self.topic("smoke"),
            lambda wall: orjson.dumps({"ts": wall - 31 * 86_400_000, "alarm": False}),
        )

    def ts_string(self, t: int) -> None:
        self.raw(
            t, "ts_string", "schema", self.topic("smoke"), b'{"ts": "2025-12-01T10:00:00Z", "alarm": false}'
        )

    def negative_seq(self, t: int) -> None:
        self.raw(t, "negative_seq", "schema", self.topic("smoke"), b'{"seq": -1, "alarm": false}')

    def unknown_worker(self, t: int) -> None:
        workers = self.fleet.registry.workers
        name = next(f"NOBODY-{n}" for n in range(1, 10_000) if f"NOBODY-{n}" not in workers)
        body = orjson.dumps({"worker_id": name, "result": "ok"})
        self.raw(t, "unknown_worker", "unknown_worker", self.topic("patrol"), body)

    def bad_result(self, t: int) -> None:
        patrol = self.fleet.patrol
        i = self.device("patrol")
        worker = patrol.worker_ids_of_tag[i] or next(iter(self.fleet.registry.workers), "W1")
        self.raw(
            t,
            "bad_result",
            "schema",
            self.topic("patrol"),
            orjson.dumps({"worker_id": worker, "result": "maybe"}),
        )

    # accepted (valid but nasty) ------------------------------------------------------------------

    def _stored(self, case: str, kind: str, index: int, field_name: str, value: Any) -> None:
        bank = self.fleet.banks[kind]
        self.p.plan.stored.append(
            ExpectedStored(
                kind, self.topic(kind, index), bank.device_ids[index], case, field_name, value, self.p.step
            )
        )

    def fault_injection(self, t: int) -> None:
        kind = "electrical"
        index = self.device(kind)
        self.fleet.add_effect(kind, index, SetFields(t, t + 1000, {"fault": INJECTION}))
        self.p.report(kind, index, t)
        self.p.report(kind, index, t + self.p.cadence_ms)
        self.p.event("DEVICE_FAULT", kind, index)
        self._stored("fault_injection", kind, index, "fault", INJECTION)

    def _patrol_extra(self, case: str, extra: Message, t: int) -> int:
        worker, scans = self.p._patrol_worker("auto", "cases", self.p._single(t), "an unused checkpoint")
        tag = scans[0][1]
        self.p.used.add(self.fleet.patrol.device_ids[tag])
        self.p._scan(tag, worker, t, extra)
        return tag

    def note_injection(self, t: int) -> None:
        tag = self._patrol_extra("note_injection", {"note": INJECTION}, t)
        self._stored("note_injection", "patrol", tag, "note", INJECTION)

    def hazard_injection(self, t: int) -> None:
        hazards = [INJECTION, "back\\slash", '"quoted"']
        tag = self._patrol_extra("hazard_injection", {"result": "hazard", "hazards": hazards}, t)
        self.p.event("PATROL_HAZARD", "patrol", tag)
        self._stored("hazard_injection", "patrol", tag, "hazards", ",".join(hazards))

    def unicode_note(self, t: int) -> None:
        note = "消防通道堵塞 🔥 — ñ"
        tag = self._patrol_extra("unicode_note", {"note": note}, t)
        self._stored("unicode_note", "patrol", tag, "note", note)

    def unknown_fields(self, t: int) -> None:
        kind = "water"
        index = self.device(kind)
        self.fleet.add_effect(
            kind, index, SetFields(t, t + 1000, {"firmware": {"evil": INJECTION}, "x y": 1})
        )
        self.p.report(kind, index, t)
        self._stored("unknown_fields", kind, index, "firmware", None)


def plan_scenario(scenario: Scenario, fleet: Fleet, run: RunWindow, path: Path | None = None) -> Plan:
    """Pick targets, install effects on ``fleet`` and compute the ground truth of one run."""
    plan = _Planner(scenario, path, fleet, run).build()
    if plan.needs_sim_s > run.sim_s + 1e-6:
        need_wall = plan.needs_sim_s / run.time_scale
        raise ScenarioError(
            f"{path or scenario.name}: the scenario needs {plan.needs_sim_s:g} simulated s but the run lasts "
            f"{run.sim_s:g} ({run.sim_s / run.time_scale:g} s × time scale {run.time_scale:g}); "
            f"use --duration {math.ceil(need_wall + 1)} or a larger --time-scale"
        )
    return plan
