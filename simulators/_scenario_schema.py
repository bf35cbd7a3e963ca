"""Scenario files: the YAML schema (one pydantic model per step type), loading and lookup.

A scenario is validated with pydantic; errors name the file and the key. Parameters that would
leave an expectation on a knife's edge of a rule (a temperature rise of 5 °C/min, a battery at
15 %) are refused here against the rules' defaults, and again by the planner against the rules
it plans for (:func:`check_rise`, :func:`check_battery`, :func:`check_spread`).
See simulators/README.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import Field, ValidationError, model_validator

from devices import ID_PATTERN, ScenarioError, is_identifier
from rules import RulesConfig
from simulators._physics import DAY_S, NORMAL_TEMP_C
from simulators._respond_policy import RespondBlock
from simulators._schema_base import Model as _Model
from simulators._schema_base import Seconds

DEFAULT_RULES = RulesConfig()
"""CONTRACT §7's defaults: what a scenario file is checked against when it is loaded."""
CONFIRM_MARGIN_S = 30.0
"""Alarms of one site this much inside FIRE_CONFIRMED's window confirm; this much outside do not."""
RISE_MARGIN = 0.2
"""A cable's rise rate must stay this share away from TEMP_RISE_FAST's rate."""
BATTERY_MARGIN_PCT = 1.0
"""A battery level must stay this far from LOW_BATTERY's limit."""


Kind = Literal["smoke", "electrical", "water", "patrol"]


# -- rule edges (shared with the planner, which checks them against its own rules) ---------------


def check_rise(rate: float, peak: float, rules: RulesConfig) -> None:
    """A cable rise of ``rate`` °C/min to ``peak`` °C is clearly (not) a TEMP_RISE_FAST."""
    rule = rules.temp_rise_fast
    fast = rule.rate_c_per_min
    if (1 - RISE_MARGIN) * fast < rate < (1 + RISE_MARGIN) * fast:
        raise ValueError(
            f"rise_c_per_min {rate} is within {RISE_MARGIN * 100:g} % of the TEMP_RISE_FAST threshold of "
            f"{fast} °C/min: choose ≤ {(1 - RISE_MARGIN) * fast:g} or ≥ {(1 + RISE_MARGIN) * fast:g}"
        )
    minutes = rule.window_s / 60
    if rate >= (1 + RISE_MARGIN) * fast and (peak - NORMAL_TEMP_C[1]) / rate < minutes:
        raise ValueError(
            f"a rise at {rate} °C/min to peak_c {peak} lasts under {minutes:g} minutes: "
            f"TEMP_RISE_FAST needs readings over {rule.min_span_s:g} s; raise peak_c"
        )


def check_battery(to: float, rules: RulesConfig) -> None:
    limit = rules.low_battery.limit
    if limit - BATTERY_MARGIN_PCT <= to < limit + BATTERY_MARGIN_PCT:
        raise ValueError(f"to {to} is too close to the LOW_BATTERY threshold of {limit} %")


def check_spread(spread_every: float, rules: RulesConfig) -> None:
    rule = rules.fire_confirmed
    if spread_every > rule.window_s - CONFIRM_MARGIN_S:
        raise ValueError(
            f"spread_every above {rule.window_s - CONFIRM_MARGIN_S:g} s leaves FIRE_CONFIRMED "
            f"({rule.min_detectors} detectors within {rule.window_s:g} s) ambiguous"
        )


# -- the models -----------------------------------------------------------------------------------


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


class StepBase(_Model):
    """Fields every step has; ``action`` (a literal per step type) tells the step types apart."""

    at: Seconds = 0.0
    """Simulated seconds after the start of the run."""
    label: str | None = None


class CableRise(_Model):
    rise_c_per_min: float = Field(default=10.0, gt=0, le=120)
    peak_c: float = Field(default=95.0, gt=0, le=400)


class Fire(StepBase):
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
        check_spread(self.spread_every, DEFAULT_RULES)
        if self.cable is not None:
            check_rise(self.cable.rise_c_per_min, self.cable.peak_c, DEFAULT_RULES)
        return self


class Alarm(StepBase):
    """Detectors alarm without a fire spreading (one per building unless listed)."""

    action: Literal["alarm"]
    target: Target = Target()
    duration: Seconds = 300.0


class Overload(StepBase):
    """Phase currents climb to ``current_factor`` × normal; cable temperature follows."""

    action: Literal["overload"]
    target: Target = Target()
    current_factor: float = Field(default=1.8, ge=1.0, le=10.0)
    rise_c_per_min: float = Field(default=3.0, gt=0, le=120)
    peak_c: float = Field(default=82.0, gt=0, le=400)
    hold: Seconds = 180.0

    @model_validator(mode="after")
    def _check(self) -> Overload:
        check_rise(self.rise_c_per_min, self.peak_c, DEFAULT_RULES)
        return self


class Leakage(StepBase):
    """Insulation fault: the residual current ramps up to ``residual_ma`` and holds."""

    action: Literal["leakage"]
    target: Target = Target()
    residual_ma: float = Field(default=450.0, ge=0, le=100_000)
    ramp: Seconds = 20.0
    hold: Seconds = 120.0


class Pressure(StepBase):
    """Water pressure moves to ``to`` MPa over ``ramp``, holds, and recovers over ``ramp``."""

    action: Literal["pressure"]
    target: Target = Target()
    to: float = Field(ge=0, le=5)
    ramp: Seconds = 10.0
    hold: Seconds = 180.0


class Silence(StepBase):
    """Devices stop sending (power cut, broken radio) for ``duration`` or until the run ends."""

    action: Literal["silence"]
    target: Target = Target()
    duration: Seconds | None = None


class Tamper(StepBase):
    action: Literal["tamper"]
    target: Target = Target()
    duration: Seconds = 120.0


class Battery(StepBase):
    """Batteries drop to ``to`` percent (and stay there)."""

    action: Literal["battery"]
    target: Target = Target()
    to: float = Field(default=8.0, ge=0, le=100)

    @model_validator(mode="after")
    def _check(self) -> Battery:
        check_battery(self.to, DEFAULT_RULES)
        return self


class Fault(StepBase):
    action: Literal["fault"]
    target: Target = Target()
    text: str = Field(default="sensor fault E07", min_length=1, max_length=200)
    duration: Seconds = 300.0


class PatrolSkip(StepBase):
    """A worker leaves checkpoints out of their rounds for ``duration``."""

    action: Literal["patrol_skip"]
    worker: str = "auto"
    checkpoints: int = Field(default=1, ge=1, le=1000)
    duration: Seconds = 2 * DAY_S


FAST_FACTOR = 1.5
"""A ``patrol_fast`` step walks at least this many times PATROL_TOO_FAST's speed."""


class PatrolFast(StepBase):
    """A worker's two consecutive scans are too far apart for the time between them."""

    action: Literal["patrol_fast"]
    worker: str = "auto"
    speed_m_s: float = Field(
        default=30.0, ge=FAST_FACTOR * DEFAULT_RULES.patrol_too_fast.max_speed_m_s, le=1000.0
    )


class PatrolHazard(StepBase):
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
HOSTILE_CASES: tuple[str, ...] = get_args(HostileCase)


class Hostile(StepBase):
    """Malformed and hostile messages, one per case, ``every`` seconds apart."""

    action: Literal["hostile"]
    cases: list[HostileCase] | Literal["all"] = "all"
    every: Seconds = 0.5


AnyStep = (
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
    | Hostile
)
Step = Annotated[AnyStep, Field(discriminator="action")]
STEP_TYPES: tuple[type[StepBase], ...] = get_args(AnyStep)
"""Every step model, in the order of the union (the planner has one entry per type)."""
STEP_ACTIONS: dict[str, type[StepBase]] = {
    get_args(model.model_fields["action"].annotation)[0]: model for model in STEP_TYPES
}
"""The ``action`` literal of each step model."""


class Scenario(_Model):
    name: str = Field(pattern=ID_PATTERN)
    description: str = ""
    time_scale: float = Field(default=1.0, gt=0, le=1_000_000)
    """The time scale the scenario is written for (``--time-scale`` overrides it)."""
    duration: Seconds | None = None
    """Suggested run length in wall seconds (default: long enough for every step)."""
    cadence: Seconds = Field(default=5.0, gt=0, le=300)
    """While a step acts on a device, the device reports at least this often (simulated s)."""
    seed: int = 1
    steps: list[Step] = Field(min_length=1)
    respond: RespondBlock = None
    """The simulated workers' policy: with it, ``simulate run`` acts on the alerts (as ``--respond``)."""


# -- loading --------------------------------------------------------------------------------------


def _where(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def _problem(error: Any) -> str:
    # pydantic puts the union's tag (``fire``) or a model name into the location: leave them out
    loc = [p for p in error["loc"] if not (isinstance(p, str) and (p in STEP_ACTIONS or "[" in p))]
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{_where(loc)}: {message}"


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
        problems = [_problem(error) for error in exc.errors()]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ScenarioError(f"{path}: {problems[0]}{more}") from exc


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
