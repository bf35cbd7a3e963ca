"""`firegrid ingest`: the process wiring of consumer, pipeline, store and HTTP API."""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
import socket
import threading
import time
from collections.abc import Sequence
from types import FrameType

import paho.mqtt.client as mqtt

from access import Access
from alerts import OUTBOX_WINDOW
from devices import (
    ConfigError,
    EventStoreFullError,
    FiregridError,
    Registry,
    StoreStoppingError,
    Topics,
    listen,
    load_registry,
)
from firegrid._alert_link import AlertLink
from firegrid._districts import (
    ActionRouter,
    check_districts,
    claim_data_dir,
    own_registry,
    readings_subscriptions,
)
from firegrid._hazards import Hazards
from firegrid._http import ApiThreads, Gatekeeper, HttpServer, build_app
from firegrid._settings import Settings
from ingest import (
    ALARM_LANE,
    AlarmTopics,
    Committer,
    Inbox,
    InfluxClient,
    IngestMetrics,
    InMessage,
    LaneTwins,
    MqttConsumer,
    Pipeline,
    ReadingSink,
    RejectedLine,
    Spool,
    Store,
    alarm_subscriptions,
    encode_line,
    end_session,
    series_key,
)
from rules import load_rules
from safety import Safety, Schedule

log = logging.getLogger(__name__)

ROOM_POLL_S = 0.01
"""While the committer is full, how often the pipeline looks for room (it serves alarms meanwhile)."""
EXIT_CONFIG = 2
EXIT_FATAL = 3


def _tune_gc() -> None:
    """Keep the cyclic GC off the long-lived registry and out of the hot path.

    The registry is millions of objects that never form garbage cycles; frozen, full
    collections stop walking them. Readings are acyclic and short-lived, so collecting the
    young generation every 700 allocations (the default) is pure overhead: measured in
    bench/bench_ingest.py, it doubled the decoding cost per message.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


REGISTRY_CACHE = "registry.cache"
"""The loaded registry, in the data directory (devices/_registry_cache.py): a restart at province
scale skips parsing it again."""


class IngestService:
    def __init__(self, settings: Settings, sinks: Sequence[ReadingSink] = ()) -> None:
        self.settings = settings
        http_socket = listen(settings.http_host, settings.http_port)  # a port in use: stop at once
        self.districts = settings.district_list
        """The districts this instance owns (FIREGRID_DISTRICTS); empty: all of the registry's."""
        self.full_registry = load_registry(settings.registry, settings.data_dir / REGISTRY_CACHE)
        check_districts(self.full_registry, self.districts)  # an unknown district: one line
        self.registry = self._own(self.full_registry)
        """What this instance works on: its districts' devices, grids and stations."""
        self.actions_router = ActionRouter(self.full_registry, self.districts)
        self._claim = claim_data_dir(settings.data_dir, self.districts, settings.mqtt_client_id)
        try:
            self._build(settings, sinks, http_socket)
        except BaseException:
            self._claim.release()
            http_socket.close()
            raise

    def _own(self, registry: Registry) -> Registry:
        return own_registry(registry, self.districts) if self.districts else registry

    def _build(self, settings: Settings, sinks: Sequence[ReadingSink], http_socket: socket.socket) -> None:
        self.clock = settings.clock
        self.now_ms = self.clock.reader()
        """The service clock (epoch ms): the wall clock unless FIREGRID_CLOCK_* scale it."""
        _tune_gc()
        log.info(
            "registry %s: %d devices, %d grids%s",
            settings.registry,
            len(self.registry),
            len(self.registry.grids),
            f" (districts {', '.join(self.districts)} of {len(self.full_registry.districts)})"
            if self.districts
            else "",
        )
        self.metrics = IngestMetrics()
        self._fatal: BaseException | None = None
        self._stopping = threading.Event()
        self._reload_requested = threading.Event()
        self._subscribed = threading.Event()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(settings.data_dir / "spool.sqlite", durable_fsync=settings.durable_fsync)
        self.store = Store(
            self._influx_client,
            self.spool,
            self.metrics,
            self._on_rejected,
            self._on_fatal,
            spool_max_bytes=round(settings.spool_max_mb * 2**20),
        )
        self.inbox = Inbox()
        prefix = settings.topic_prefix
        topics = Topics(prefix)
        self._topics = topics
        self.actions_elsewhere = 0
        """Worker actions left to the instance that owns their event (FIREGRID_DISTRICTS)."""
        actions = topics.actions_subscription
        alarm_kinds = settings.alarm_kind_list
        # worker actions come on the alarm lane when there is one, never read behind a backlog
        # of readings; the readings session drops the subscription an older version made (what
        # it had queued still arrives, and is handled there too)
        self.consumer = MqttConsumer(
            settings.mqtt_url,
            settings.mqtt_client_id,
            [*readings_subscriptions(topics, self.districts), *([] if alarm_kinds else [actions])],
            self.inbox,
            on_fatal=self._on_fatal,
            on_overload_drop=self.metrics.overload_dropped.inc,
            extra_handlers={actions: self._on_action},
            ca_file=settings.mqtt_ca,
            clock_ms=self.now_ms,
            unsubscriptions=[actions] if alarm_kinds else [],
        )
        self.alarm_consumer = self._alarm_lane(settings, topics, alarm_kinds) if alarm_kinds else None
        """The alarm lane (FIREGRID_ALARM_KINDS): a session of the alarm kinds' topics only, so
        that alarms never queue behind readings (ingest/_lanes.py); None when off."""
        self._consumers = [c for c in (self.alarm_consumer, self.consumer) if c is not None]
        self._alert_link = AlertLink(self._consumers, window=OUTBOX_WINDOW)
        """Alerts and action results leave on the alarm lane's connection while it is up, else on
        the readings connection (firegrid/_alert_link.py)."""
        device_rate = settings.device_rate_limit
        self.hazards = Hazards(
            self.registry,
            load_rules(settings.rules),
            settings.data_dir,
            self._alert_link,
            topic_prefix=prefix,
            durable_fsync=settings.durable_fsync,
            rate_limit_per_s=device_rate.per_s if device_rate is not None else None,
            stopping=self._stopping,
            clock=self.clock,
        )
        # the outbox hears of the link's changes and of the PUBACKs that empty it
        self._alert_link.bind(self.hazards.on_alert_link, self.hazards.on_published)
        self.consumer.on_connection_change = self._on_connection_change
        if self.alarm_consumer is not None:
            self.alarm_consumer.on_connection_change = self._on_alarm_lane_change
        self.metrics.alert_outbox_depth.set_function(lambda: self.hazards.events.outbox_depth)
        self.pipeline = Pipeline(
            self.registry,
            self.metrics,
            topic_prefix=prefix,
            sinks=[self.hazards, *sinks],
            device_rate=device_rate,
            clock_ms=self.now_ms,
            twins=LaneTwins(AlarmTopics(topics, alarm_kinds, self.districts)) if alarm_kinds else None,
        )
        self.committer = Committer(self.store, self._ack, self._on_fatal)
        # CONTRACT §12: /sla and /index from the event store's file; grid_index/grid_sla points
        self.safety = Safety(
            self.hazards.events.path, lambda: self.registry, settings.index_weights, clock=self.now_ms
        )
        self.safety_points = Schedule(
            self.safety,
            lambda lines: self.committer.submit(lines, ()),
            self.now_ms,
            scale=self.clock.scale,
            index_interval_ms=round(settings.index_interval_s * 1000),
            sla_period_ms=round(settings.sla_period_s * 1000),
            ready=self._subscribed,  # start-up first: at province scale a round is seconds of CPU
        )
        self.metrics.commit_pending.set_function(lambda: self.committer.pending_lines)
        # HTTP Basic against FIREGRID_CREDENTIALS, rights from the registry (CONTRACT §10)
        self.gate = Gatekeeper(settings.credentials, Access(self.full_registry))
        self.http_threads = ApiThreads()
        self.http = HttpServer(
            build_app(
                self.health, self.metrics.render, self.hazards, self.gate, self.http_threads, self.safety
            ),
            http_socket,
        )
        self._worker = threading.Thread(target=self._run_pipeline, name="pipeline")
        self._last_stats = float("-inf")

    def _alarm_lane(self, settings: Settings, topics: Topics, kinds: tuple[str, ...]) -> MqttConsumer:
        consumer = MqttConsumer(
            settings.mqtt_url,
            f"{settings.mqtt_client_id}-alarms",
            [*alarm_subscriptions(topics, kinds, self.districts), topics.actions_subscription],
            self.inbox,
            on_fatal=self._on_fatal,
            on_overload_drop=self.metrics.overload_dropped.inc,
            ca_file=settings.mqtt_ca,
            clock_ms=self.now_ms,
            lane=ALARM_LANE,
            extra_handlers={topics.actions_subscription: self._on_action},
        )
        return consumer

    def _ack(self, messages: Sequence[InMessage]) -> None:
        for consumer in self._consumers:  # each acks its own lane's messages
            consumer.ack(messages)

    def _influx_client(self) -> InfluxClient:
        s = self.settings
        return InfluxClient(
            s.influx_url,
            s.influx_db,
            token=s.influx_token.get_secret_value() if s.influx_token else None,
            username=s.influx_user,
            password=s.influx_password.get_secret_value() if s.influx_password else None,
            timeout=s.influx_timeout_s,
        )

    # -- state ---------------------------------------------------------------------------------

    def health(self) -> tuple[int, dict[str, object]]:
        mqtt_up = self.consumer.connected
        influx_up = self.store.influx_up
        alarm_lane_up = self.alarm_consumer is None or self.alarm_consumer.connected
        body: dict[str, object] = {
            "status": "ok" if mqtt_up and influx_up and alarm_lane_up else "degraded",
            "mqtt": "connected" if mqtt_up else "disconnected",
            "influx": "ok" if influx_up else "unavailable",
            "spool_depth": self.store.spool_depth,
        }
        if self.alarm_consumer is not None:  # alarms still arrive on the readings lane without it
            body["alarm_lane"] = "connected" if alarm_lane_up else "disconnected"
        if self.districts:  # several instances: which one this is
            body["districts"] = list(self.districts)
        if not self._subscribed.is_set():
            body["status"] = "starting"
            return 503, body
        return 200, body

    def _on_connection_change(self, up: bool) -> None:
        self.metrics.mqtt_connected.set(1 if up else 0)
        self.hazards.on_readings_connection(up)  # the devices are heard on the readings connection
        self._alert_link.connection_changed()
        if up:
            self._subscribed.set()

    def _on_alarm_lane_change(self, up: bool) -> None:
        self.metrics.alarm_lane_connected.set(1 if up else 0)
        self._alert_link.connection_changed()

    def _on_action(self, message: mqtt.MQTTMessage) -> None:
        worker = self._topics.action_worker(message.topic)
        if self.actions_router.decide(worker, message.payload, self._knows_event):
            self.hazards.on_action(message)
        else:
            self.actions_elsewhere += 1
            log.debug("action of %s on %s left to the instance owning its event", worker, message.topic)

    def _knows_event(self, event_id: str) -> bool:
        return self.hazards.events.get_event(event_id) is not None

    def _on_rejected(self, rejected: list[RejectedLine]) -> None:
        self.pipeline.on_influx_rejected(rejected)

    def _on_fatal(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        self._stopping.set()
        self.inbox.wake()

    def request_reload(self) -> None:
        self._reload_requested.set()
        self.inbox.wake()

    def request_stop(self) -> None:
        self._stopping.set()
        self.inbox.wake()

    # -- the pipeline thread -----------------------------------------------------------------

    def _run_pipeline(self) -> None:
        batch_max = self.settings.batch_max
        # the timers run every 0.5 s of service time, at most every 20 ms of wall time
        idle_s = max(0.5 / self.clock.scale, 0.02) if self.clock.scale > 1 else 0.5
        try:
            while not self._stopping.is_set():
                if self._reload_requested.is_set():
                    self._reload()
                # while InfluxDB is behind, readings wait (back-pressure); alarms never do
                room = self.committer.has_room
                # timer work left over (a mass silence, over Hazards' budget): next round at once
                wait_s = 0.0 if self.hazards.behind else idle_s if room else ROOM_POLL_S
                batch = self.inbox.take(batch_max, timeout=wait_s, readings=room)
                if batch:
                    alarms = batch[0].lane == ALARM_LANE
                    self.committer.submit(self.pipeline.process(batch), batch, urgent=alarms)
                elif room and (lines := self.pipeline.rate_limited_lines()):  # minutes end by the clock
                    self.committer.submit(lines, ())
                if lines := self.hazards.on_idle(self.now_ms()):  # events: never held back
                    self.committer.submit(lines, (), wait=False)
                self._maybe_write_stats()
            # drain: everything received is written or spooled before exit
            while batch := self.inbox.take(batch_max, timeout=0):
                self.committer.submit(self.pipeline.process(batch), batch)
        except FiregridError as exc:
            self._on_fatal(exc)
        except Exception as exc:
            log.exception("pipeline failed")
            self._on_fatal(exc)

    def _reload(self) -> None:
        self._reload_requested.clear()
        try:
            full = Registry.load(self.settings.registry, previous=self.full_registry)
            check_districts(full, self.districts)  # a district of this instance gone: refused
            access = Access(full)  # refuses names shared by two principals
        except ConfigError as exc:
            log.error("registry reload refused, keeping the loaded one: %s", exc)
            return
        registry = self._own(full)
        self.full_registry = full
        self.registry = registry
        self.actions_router = ActionRouter(full, self.districts)
        self.pipeline.reload(registry)
        self.hazards.reload(registry)
        self.gate.set_access(access)
        _tune_gc()
        log.info("registry reloaded: %d devices, %d grids", len(registry), len(registry.grids))

    def _maybe_write_stats(self) -> None:
        """An ``ingest_stats`` point every ``stats_interval_s`` of wall time (the process's own
        pace), stamped with the service clock like everything it writes."""
        now = time.monotonic()
        if now - self._last_stats < self.settings.stats_interval_s:
            return
        self._last_stats = now
        totals = self.metrics.totals()
        fields: dict[str, float | bool | str] = {
            name: totals.get(f"firegrid_{metric}_total", 0.0)
            for name, metric in (
                ("received", "messages_received"),
                ("written", "points_written"),
                ("rejected", "rejects"),
                ("duplicates", "duplicates"),
                ("spooled", "points_spooled"),
            )
        }
        fields["spool_depth"] = float(self.store.spool_depth)
        count = totals.get("firegrid_write_latency_seconds_count", 0.0)
        if count:
            fields["write_latency_ms"] = 1000.0 * totals["firegrid_write_latency_seconds_sum"] / count
        line = encode_line(
            series_key("ingest_stats", (("instance", self.settings.instance_name),)), fields, self.now_ms()
        )
        self.committer.submit([line], (), wait=False)

    # -- run -----------------------------------------------------------------------------------

    def start(self) -> None:
        self.store.start()
        self.committer.start()
        self.safety_points.start()
        self.http.start()
        self._worker.start()
        for consumer in self._consumers:
            consumer.start()
        if self.alarm_consumer is None:
            threading.Thread(target=self._end_alarm_session, name="end-alarm-session", daemon=True).start()

    def _end_alarm_session(self) -> None:
        """With the alarm lane off, its session from an earlier start would queue every alarm kind's
        message at the broker for a week (its expiry), up to the broker's queue limit: end it."""
        client_id = f"{self.settings.mqtt_client_id}-alarms"
        if end_session(self.settings.mqtt_url, client_id, ca_file=self.settings.mqtt_ca):
            log.info("alarm lane off: ended its MQTT session %s, if there was one", client_id)

    def stop(self) -> None:
        """Clean stop: process and ack what was received, then disconnect (the session stays)."""
        self.request_stop()
        self._worker.join()
        self.store.closing()  # a batch that would wait for room in the spool is left to the broker
        with contextlib.suppress(EventStoreFullError):  # no room: their count waits for the next start
            self.hazards.flush()  # the repeats coalesced in memory (CONTRACT §13)
        if lines := self.hazards.drain_lines():
            self.committer.submit(lines, ())
        if lines := self.pipeline.rate_limited_lines(final=True):  # the minutes still open
            self.committer.submit(lines, ())
        self.safety_points.stop()
        self.committer.close()  # everything processed is durable and acked
        for consumer in self._consumers:
            consumer.stop()
        with contextlib.suppress(StoreStoppingError):  # no room: the broker redelivers them
            for batch in iter(lambda: self.inbox.take(self.settings.batch_max, timeout=0), []):
                # arrived during the disconnect: made durable, not acked (the broker redelivers it)
                self.store.put(self.pipeline.process(batch))
            self.store.put(self.hazards.drain_lines())
        self.http.stop()  # before the event store it reads closes
        self.http_threads.close()
        self.safety.close()
        self.gate.close()
        self.hazards.close()
        self.store.stop(drain_timeout=2.0)
        self._claim.release()

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; SIGHUP reloads the registry. Returns the exit code."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if signum == signal.SIGHUP:
                log.info("SIGHUP: reloading the registry")
                self.request_reload()
            else:
                log.info("signal %d: draining and stopping", signum)
                self.request_stop()

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, on_signal)
        self.start()
        if not self.clock.identity:
            log.warning("%s (simulation and demos only)", self.clock.describe())
        log.info(
            "firegrid ingest running: MQTT %s as %s, InfluxDB %s/%s, HTTP %s",
            self.consumer.address,
            self.settings.mqtt_client_id,
            self.settings.influx_url,
            self.settings.influx_db,
            self.settings.http,
        )
        while not self._stopping.wait(0.5):
            pass
        self.stop()
        if self._fatal is not None:
            log.error("stopped: %s", self._fatal)
            return EXIT_FATAL
        log.info("stopped cleanly")
        return 0
