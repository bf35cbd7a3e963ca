"""Rule configuration: the defaults of CONTRACT §7, overridable by a TOML rules file.

The rules file (``FIREGRID_RULES``) has one table per event type; every key is optional and
unknown keys are refused. Every table takes ``enabled`` (default true) and ``severity``
(``minor`` | ``major`` | ``critical``); durations are in seconds (``for_s``). Example::

    [CABLE_OVERHEAT]
    limit = 75.0          # °C, default for devices without a temp_limit_c column
    for_s = 20
    clear_delta = 5.0     # clears below limit - clear_delta
    critical_delta = 20.0 # severity critical from limit + critical_delta (omit to never escalate)

    [LOW_PRESSURE]
    limit = 0.12          # MPa, default for devices without a min_pressure_mpa column

    [DEVICE_OFFLINE]
    heartbeat_s = { smoke = 1800 }

The keys of each table are the fields of the models below (see also ``rules/README.md``).
Per-device columns of ``devices.csv`` win over the file's ``limit`` (min_pressure_mpa,
max_pressure_mpa, residual_ma_limit, temp_limit_c, heartbeat_s, patrol_interval_h).

A wrong file raises :class:`devices.RulesError` with one line naming the file, the key and the
reason.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from devices import KIND_BY_NAME, RulesError
from rules._hit import Severity

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class RuleSettings(BaseModel):
    """What every rule's table takes; a rule with more settings subclasses it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    enabled: bool = True
    severity: Severity = "major"


_Rule = RuleSettings

EXTENSION_RULES: dict[str, type[RuleSettings]] = {}
"""Settings models of event types that a rule family declares itself (``Family.settings``) rather
than this module, so that a new device kind's rules module brings its own table."""


class FlagRule(_Rule):
    """FIRE_ALARM, TAMPER, DEVICE_FAULT: a flag (or fault text) raises, its absence clears."""

    for_s: NonNegative = 0.0


class FireAlarmRule(FlagRule):
    severity: Severity = "critical"


class FireConfirmedRule(_Rule):
    severity: Severity = "critical"
    window_s: Positive = 120.0
    min_detectors: Annotated[int, Field(ge=2, le=100)] = 2


class _BelowLimitRule(_Rule):
    """Raises below ``limit``, clears at ``clear`` or above (hysteresis)."""

    limit: float
    clear: float

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.clear < self.limit:
            raise ValueError(f"clear ({self.clear}) must be ≥ limit ({self.limit})")
        return self


class LowBatteryRule(_BelowLimitRule):
    severity: Severity = "minor"
    limit: Annotated[float, Field(gt=0, le=100)] = 15.0
    """Raises when battery_pct < limit."""
    clear: Annotated[float, Field(gt=0, le=100)] = 20.0
    """Clears when battery_pct ≥ clear."""
    for_s: NonNegative = 0.0


class ResidualCurrentRule(_Rule):
    limit: Positive = 300.0
    """mA; devices.csv residual_ma_limit overrides per device."""
    for_s: NonNegative = 10.0
    clear_ratio: Annotated[float, Field(gt=0, le=1)] = 0.9
    """Clears when residual_ma < clear_ratio × limit."""


class CableOverheatRule(_Rule):
    limit: Annotated[float, Field(allow_inf_nan=False)] = 70.0
    """°C; devices.csv temp_limit_c overrides per device."""
    for_s: NonNegative = 10.0
    clear_delta: NonNegative = 5.0
    critical_delta: NonNegative | None = 20.0


class TempRiseRule(_Rule):
    window_s: Positive = 120.0
    min_readings: Annotated[int, Field(ge=2, le=16)] = 4
    min_span_s: NonNegative = 60.0
    rate_c_per_min: Positive = 5.0
    clear_rate_c_per_min: Annotated[float, Field(allow_inf_nan=False)] = 2.0

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.clear_rate_c_per_min > self.rate_c_per_min:
            raise ValueError("clear_rate_c_per_min must be ≤ rate_c_per_min")
        if self.min_span_s > self.window_s:
            raise ValueError("min_span_s must be ≤ window_s")
        return self


class LowPressureRule(_Rule):
    limit: Positive = 0.10
    """MPa; devices.csv min_pressure_mpa overrides per device."""
    for_s: NonNegative = 60.0
    clear_delta: NonNegative = 0.02


class PressureLossRule(_BelowLimitRule):
    severity: Severity = "critical"
    limit: Positive = 0.05
    clear: Positive = 0.07
    for_s: NonNegative = 0.0


class HighPressureRule(_Rule):
    severity: Severity = "minor"
    limit: Positive = 1.20
    """MPa; devices.csv max_pressure_mpa overrides per device."""
    for_s: NonNegative = 60.0
    clear_delta: NonNegative = 0.05


class PatrolHazardRule(_Rule):
    pass


class PatrolMissedRule(_Rule):
    severity: Severity = "minor"
    interval_h: Positive = 24.0
    """devices.csv patrol_interval_h overrides per checkpoint."""
    factor: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 1.1


class PatrolTooFastRule(_Rule):
    severity: Severity = "minor"
    max_speed_m_s: Positive = 10.0


def _default_heartbeats() -> dict[str, float]:
    return {name: float(spec.heartbeat_s) for name, spec in KIND_BY_NAME.items() if spec.heartbeat_s}


class DeviceOfflineRule(_Rule):
    severity: Severity = "minor"
    heartbeat_s: dict[str, Positive] = Field(default_factory=_default_heartbeats)
    """Per kind; devices.csv heartbeat_s overrides per device. A kind absent here is never offline."""
    factor: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 2.0
    grace_s: NonNegative = 60.0

    @model_validator(mode="before")
    @classmethod
    def _merge(cls, data: Any) -> Any:
        # a file giving { smoke = 1800 } changes smoke only
        if isinstance(data, dict) and isinstance(data.get("heartbeat_s"), dict):
            data = {**data, "heartbeat_s": {**_default_heartbeats(), **data["heartbeat_s"]}}
        return data

    @model_validator(mode="after")
    def _kinds(self) -> Self:
        unknown = sorted(set(self.heartbeat_s) - set(KIND_BY_NAME))
        if unknown:
            raise ValueError(f"heartbeat_s: unknown kind(s) {', '.join(unknown)}")
        return self

    def deadline_s(self, heartbeat_s: float) -> float:
        return self.factor * heartbeat_s + self.grace_s


class RulesConfig(BaseModel):
    """Every rule's settings; ``RulesConfig()`` is the contract's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    fire_alarm: FireAlarmRule = Field(default_factory=FireAlarmRule, alias="FIRE_ALARM")
    fire_confirmed: FireConfirmedRule = Field(default_factory=FireConfirmedRule, alias="FIRE_CONFIRMED")
    tamper: FlagRule = Field(default_factory=FlagRule, alias="TAMPER")
    low_battery: LowBatteryRule = Field(default_factory=LowBatteryRule, alias="LOW_BATTERY")
    device_fault: FlagRule = Field(default_factory=FlagRule, alias="DEVICE_FAULT")
    residual_current_high: ResidualCurrentRule = Field(
        default_factory=ResidualCurrentRule, alias="RESIDUAL_CURRENT_HIGH"
    )
    cable_overheat: CableOverheatRule = Field(default_factory=CableOverheatRule, alias="CABLE_OVERHEAT")
    temp_rise_fast: TempRiseRule = Field(default_factory=TempRiseRule, alias="TEMP_RISE_FAST")
    low_pressure: LowPressureRule = Field(default_factory=LowPressureRule, alias="LOW_PRESSURE")
    pressure_loss: PressureLossRule = Field(default_factory=PressureLossRule, alias="PRESSURE_LOSS")
    high_pressure: HighPressureRule = Field(default_factory=HighPressureRule, alias="HIGH_PRESSURE")
    patrol_hazard: PatrolHazardRule = Field(default_factory=PatrolHazardRule, alias="PATROL_HAZARD")
    patrol_missed: PatrolMissedRule = Field(default_factory=PatrolMissedRule, alias="PATROL_MISSED")
    patrol_too_fast: PatrolTooFastRule = Field(default_factory=PatrolTooFastRule, alias="PATROL_TOO_FAST")
    device_offline: DeviceOfflineRule = Field(default_factory=DeviceOfflineRule, alias="DEVICE_OFFLINE")
    extensions: dict[str, Any] = Field(default_factory=dict)
    """The tables of ``EXTENSION_RULES`` types given in the file, validated by their models."""

    @model_validator(mode="before")
    @classmethod
    def _split_extensions(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(key in EXTENSION_RULES for key in data):
            tables = {key: value for key, value in data.items() if key in EXTENSION_RULES}
            data = {key: value for key, value in data.items() if key not in tables}
            data["extensions"] = tables
        return data

    @model_validator(mode="after")
    def _validate_extensions(self) -> Self:
        for rule_type, table in self.extensions.items():
            if isinstance(table, RuleSettings):
                continue
            try:
                self.extensions[rule_type] = EXTENSION_RULES[rule_type].model_validate(table)
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                key = ".".join(str(part) for part in first["loc"])
                raise ValueError(f"{rule_type}.{key}: {first['msg']}") from exc
        return self

    def rule(self, rule_type: str) -> RuleSettings:
        """The settings of one event type (``"CABLE_OVERHEAT"``)."""
        value = getattr(self, rule_type.lower(), None)
        if isinstance(value, RuleSettings):
            return value
        given = self.extensions.get(rule_type)
        if isinstance(given, RuleSettings):
            return given
        return EXTENSION_RULES[rule_type]()

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "rules") -> RulesConfig:
        """Validate a parsed rules document; raise :class:`RulesError` naming source, key and reason."""
        try:
            return cls.model_validate(data, by_alias=True, by_name=False)
        except ValidationError as exc:
            raise RulesError(_one_line(source, exc)) from exc


def _one_line(source: str, exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        reason = "unknown key"
    else:
        reason = first["msg"].removeprefix("Value error, ")
        if "input" in first and first["type"] != "missing" and not isinstance(first["input"], dict):
            reason = f"{reason} (got {first['input']!r})"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"rules file {source}: {key}: {reason}{more}"


def load_rules(path: Path | None) -> RulesConfig:
    """The built-in defaults (``path`` None) or the rules file at ``path``, validated."""
    if path is None:
        return RulesConfig()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RulesError(f"rules file {path}: (file): not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"rules file {path}: (file): unreadable: {exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"rules file {path}: (syntax): invalid TOML: {exc}") from exc
    return RulesConfig.from_mapping(data, str(path))
