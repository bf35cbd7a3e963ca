"""Device simulators: world generator, device physics, scenarios with ground truth, traffic runner.

write_world(out, scale=1.0, seed=1, districts=1) -> WorldSummary
Fleet(registry, seed=1, start_ms=0, seq_start=1)      # device physics, one bank per kind
load_scenario(path) -> Scenario;  plan_scenario(scenario, fleet, run, path, rules) -> Plan
run_traffic(RunOptions(...)) -> RunSummary          # credentials=DIR: one connection per device
                                                    # respond=True / RespondPolicy(...): simulated workers
Responders(registry, host=, port=, passwords=, policy=RespondPolicy(), prefix=, time_scale=, sink=)
"""

from devices import ScenarioError
from simulators._connections import CONNECT_RATE, DeviceConnections, Refusal
from simulators._per_device import (
    SECRETS,
    CredentialsError,
    MissingPasswordsError,
    Senders,
    read_passwords,
    rotate_command,
)
from simulators._physics import Effect, Fleet, Scan, load_factor, water_demand
from simulators._planner import RunWindow
from simulators._respond_plan import Handlers, Handling, LeftAlone
from simulators._respond_policy import Lognormal, RespondPolicy, SlowWorkers
from simulators._responders import Responders, RespondSummary
from simulators._runner import Background, RunOptions, RunSummary, parse_mqtt_url, run_traffic
from simulators._scenario_schema import (
    HOSTILE_CASES,
    Scenario,
    builtin_scenarios,
    load_scenario,
    resolve_scenario,
)
from simulators._scenarios import plan_scenario
from simulators._truth import (
    EventLeftAlone,
    ExpectedEvent,
    ExpectedReject,
    ExpectedStored,
    Plan,
    ResponseRecord,
    WorkerAction,
)
from simulators._world import REFERENCE, WorldSummary, write_world

__all__ = [
    "CONNECT_RATE",
    "HOSTILE_CASES",
    "REFERENCE",
    "SECRETS",
    "Background",
    "CredentialsError",
    "DeviceConnections",
    "Effect",
    "EventLeftAlone",
    "ExpectedEvent",
    "ExpectedReject",
    "ExpectedStored",
    "Fleet",
    "Handlers",
    "Handling",
    "LeftAlone",
    "Lognormal",
    "MissingPasswordsError",
    "Plan",
    "Refusal",
    "RespondPolicy",
    "RespondSummary",
    "Responders",
    "ResponseRecord",
    "RunOptions",
    "RunSummary",
    "RunWindow",
    "Scan",
    "Scenario",
    "ScenarioError",
    "Senders",
    "SlowWorkers",
    "WorkerAction",
    "WorldSummary",
    "builtin_scenarios",
    "load_factor",
    "load_scenario",
    "parse_mqtt_url",
    "plan_scenario",
    "read_passwords",
    "resolve_scenario",
    "rotate_command",
    "run_traffic",
    "water_demand",
    "write_world",
]
