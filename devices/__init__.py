"""Device kinds (payload models, InfluxDB mapping, samples), identifiers, the registry and errors."""

from devices._all import KIND_BY_NAME, KIND_CODE, KINDS
from devices._errors import (
    ConfigError,
    DemoError,
    EventStoreFullError,
    FiregridError,
    InfluxAuthError,
    InfluxError,
    InfluxRejectedError,
    InfluxUnavailableError,
    MqttError,
    PortInUseError,
    RegistryError,
    RulesError,
    ScenarioError,
    ServiceError,
    ServiceStartError,
    SettingsError,
    SpoolFullError,
    StoreStoppingError,
)
from devices._geo import EARTH_RADIUS_M, haversine_m, haversine_m_array
from devices._ids import ID_PATTERN, Identifier, is_identifier
from devices._kind import MAX_BATCH, MAX_PAYLOAD, FieldValue, KindSpec, Payload
from devices._lineproto import (
    FLOAT_TEXT,
    encode_fields,
    encode_line,
    encode_trusted_fields,
    escape_key,
    escape_measurement,
    expected_string,
    quote_string,
    series_key,
)
from devices._mqtt_url import MqttUrl
from devices._net import listen
from devices._reading import Reading
from devices._registry import OVERRIDE_COLUMNS, RETIRED, UNASSIGNED, Device, Grid, Registry, Station, Worker
from devices._registry_cache import load_registry
from devices._topics import AlertTopic, DeviceTopic, Topics
from devices.electrical import ElectricalPayload
from devices.patrol import PatrolPayload
from devices.smoke import SmokePayload
from devices.water import WaterPayload

__all__ = [
    "EARTH_RADIUS_M",
    "FLOAT_TEXT",
    "ID_PATTERN",
    "KINDS",
    "KIND_BY_NAME",
    "KIND_CODE",
    "MAX_BATCH",
    "MAX_PAYLOAD",
    "OVERRIDE_COLUMNS",
    "RETIRED",
    "UNASSIGNED",
    "AlertTopic",
    "ConfigError",
    "DemoError",
    "Device",
    "DeviceTopic",
    "ElectricalPayload",
    "EventStoreFullError",
    "FieldValue",
    "FiregridError",
    "Grid",
    "Identifier",
    "InfluxAuthError",
    "InfluxError",
    "InfluxRejectedError",
    "InfluxUnavailableError",
    "KindSpec",
    "MqttError",
    "MqttUrl",
    "PatrolPayload",
    "Payload",
    "PortInUseError",
    "Reading",
    "Registry",
    "RegistryError",
    "RulesError",
    "ScenarioError",
    "ServiceError",
    "ServiceStartError",
    "SettingsError",
    "SmokePayload",
    "SpoolFullError",
    "Station",
    "StoreStoppingError",
    "Topics",
    "WaterPayload",
    "Worker",
    "encode_fields",
    "encode_line",
    "encode_trusted_fields",
    "escape_key",
    "escape_measurement",
    "expected_string",
    "haversine_m",
    "haversine_m_array",
    "is_identifier",
    "listen",
    "load_registry",
    "quote_string",
    "series_key",
]
