"""Prometheus metrics of the ingest path (one registry per service, no module globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.received = Counter("firegrid_messages_received", "MQTT messages received", registry=r)
        self.readings = Counter("firegrid_readings_accepted", "Valid readings decoded", ["kind"], registry=r)
        self.written = Counter(
            "firegrid_points_written", "Points written to InfluxDB (directly or from the spool)", registry=r
        )
        self.rejected = Counter(
            "firegrid_rejects", "Rejected messages or batch elements", ["reason"], registry=r
        )
        self.duplicates = Counter(
            "firegrid_duplicates", "Readings dropped as duplicates (device, seq)", registry=r
        )
        self.rate_limited = Counter(
            "firegrid_rate_limited",
            "Messages dropped by the per-device rate limit (FIREGRID_DEVICE_RATE); also counted "
            'in firegrid_rejects{reason="rate_limited"}',
            registry=r,
        )
        self.lane_twins = Counter(
            "firegrid_lane_twins",
            "Second copies of alarm-kind messages, which reach both lanes (acknowledged unprocessed)",
            registry=r,
        )
        self.spooled = Counter("firegrid_points_spooled", "Points committed to the local spool", registry=r)
        self.overload_dropped = Counter(
            "firegrid_qos0_dropped", "QoS 0 messages dropped under overload", registry=r
        )
        self.spool_depth = Gauge("firegrid_spool_depth", "Points waiting in the local spool", registry=r)
        self.spool_bytes = Gauge(
            "firegrid_spool_bytes", "Compressed bytes waiting in the local spool", registry=r
        )
        self.spool_bound = Gauge(
            "firegrid_spool_bound_bytes", "The spool's bound (FIREGRID_SPOOL_MAX_MB)", registry=r
        )
        self.spool_held = Gauge(
            "firegrid_spool_held",
            "1 while batches are held unacknowledged: the spool is at its bound or its disk is full",
            registry=r,
        )
        self.alert_outbox_depth = Gauge(
            "firegrid_alert_outbox_depth",
            "Alert publications committed and not yet acknowledged by the broker (CONTRACT §13)",
            registry=r,
        )
        self.commit_pending = Gauge(
            "firegrid_commit_pending_lines", "Lines processed, waiting for their InfluxDB write", registry=r
        )
        self.lost = Gauge(
            "firegrid_lost_messages", "Messages missing from devices' seq sequences", registry=r
        )
        self.mqtt_connected = Gauge("firegrid_mqtt_connected", "1 while connected to the broker", registry=r)
        self.alarm_lane_connected = Gauge(
            "firegrid_alarm_lane_connected",
            "1 while the alarm lane's session is connected (FIREGRID_ALARM_KINDS; 0 when off)",
            registry=r,
        )
        self.influx_up = Gauge("firegrid_influx_up", "1 while InfluxDB accepts writes", registry=r)
        self.write_latency = Histogram(
            "firegrid_write_latency_seconds",
            "Time to make a batch durable",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.pipeline_delay = Histogram(
            "firegrid_pipeline_delay_seconds",
            "From a batch's first message's receipt until rules and alerts have seen it",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.batch_size = Histogram(
            "firegrid_batch_messages",
            "Messages per processed batch",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000),
            registry=r,
        )

    def totals(self) -> dict[str, float]:
        """Each counter's total over its labels, and each histogram's sum and count, by name."""
        values: dict[str, float] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name.endswith(("_total", "_sum", "_count")):
                    values[sample.name] = values.get(sample.name, 0.0) + sample.value
        return values

    def render(self) -> bytes:
        return generate_latest(self.registry)
