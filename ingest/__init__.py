"""MQTT ingest: decoding, validation, dedup, line protocol, InfluxDB writer, spool, consumer."""

from devices import (
    encode_fields,
    encode_line,
    encode_trusted_fields,
    escape_key,
    escape_measurement,
    expected_string,
    quote_string,
    series_key,
)
from ingest._committer import Committer
from ingest._consumer import MqttConsumer, end_session
from ingest._decode import Decoded, Decoder, Reject, RejectReason
from ingest._dedup import SeqDeduplicator
from ingest._encode import PointEncoder
from ingest._influx import InfluxClient, RejectedLine
from ingest._lanes import ALARM_LANE, READINGS_LANE, AlarmTopics, Inbox, LaneTwins, alarm_subscriptions
from ingest._metrics import IngestMetrics
from ingest._pipeline import InMessage, Pipeline, ReadingSink
from ingest._ratelimit import DeviceRate, RateLimiter
from ingest._spool import Spool
from ingest._store import Store

__all__ = [
    "ALARM_LANE",
    "READINGS_LANE",
    "AlarmTopics",
    "Committer",
    "Decoded",
    "Decoder",
    "DeviceRate",
    "InMessage",
    "Inbox",
    "InfluxClient",
    "IngestMetrics",
    "LaneTwins",
    "MqttConsumer",
    "Pipeline",
    "PointEncoder",
    "RateLimiter",
    "ReadingSink",
    "Reject",
    "RejectReason",
    "RejectedLine",
    "SeqDeduplicator",
    "Spool",
    "Store",
    "alarm_subscriptions",
    "encode_fields",
    "encode_line",
    "encode_trusted_fields",
    "end_session",
    "escape_key",
    "escape_measurement",
    "expected_string",
    "quote_string",
    "series_key",
]
