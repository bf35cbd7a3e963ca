"""Topic + payload → validated readings, or rejects with a reason (CONTRACT §4)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import orjson
from pydantic import ValidationError
from pydantic_core import from_json

from devices import (
    KIND_BY_NAME,
    KIND_CODE,
    MAX_BATCH,
    MAX_PAYLOAD,
    KindSpec,
    Payload,
    Reading,
    Registry,
    Topics,
    is_identifier,
)

MAX_FUTURE_MS = 5 * 60 * 1000
MAX_AGE_MS = 30 * 24 * 3600 * 1000
REJECT_PAYLOAD_BYTES = 1024


class RejectReason(StrEnum):
    """Why a message (or one element of a gateway batch) was refused; the ``rejects`` tag."""

    TOO_LARGE = "too_large"
    BAD_TOPIC = "bad_topic"
    INVALID_JSON = "invalid_json"
    SCHEMA = "schema"
    UNKNOWN_DEVICE = "unknown_device"
    DISTRICT_MISMATCH = "district_mismatch"
    KIND_MISMATCH = "kind_mismatch"
    TS_FUTURE = "ts_future"
    TS_TOO_OLD = "ts_too_old"
    UNKNOWN_WORKER = "unknown_worker"
    RATE_LIMITED = "rate_limited"
    """Over the device's rate limit (CONTRACT §10): one reject per device and minute, with a count."""


_RejectFn = Callable[["RejectReason", str], None]


@dataclass(frozen=True, slots=True)
class Reject:
    reason: RejectReason
    topic: str
    error: str
    payload: bytes
    """The first KiB of the offending message."""
    received_ms: int
    count: float | None = None
    """Messages this reject stands for (``rate_limited``: the device's drops in one minute)."""


@dataclass(slots=True)
class Decoded:
    readings: list[Reading] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def _describe(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "message"
        parts.append(f"{where}: {error['msg']}")
    more = f" (+{exc.error_count() - limit} more)" if exc.error_count() > limit else ""
    return "; ".join(parts) + more


class Limiter(Protocol):
    """The per-device rate limit (:class:`ingest.RateLimiter`), as the decoder sees it."""

    def admit(self, slot: int, now_ms: int, topic: str, payload: bytes) -> bool: ...


@dataclass(frozen=True, slots=True)
class _KindEntry:
    """What the decoder needs of one kind, looked up once per message."""

    spec: KindSpec
    code: int
    validate_json: Callable[[bytes], object]
    """The kind's validator (a single object or a gateway batch), called without the
    ``TypeAdapter`` wrapper."""
    validate_object: Callable[[bytes], object]
    """The payload model's own validator: for a message that is one object, it accepts what
    ``validate_json`` accepts (a batch cannot be an object) without trying a union."""
    worker_field: str | None


class Decoder:
    """Decodes one MQTT message at a time against the current registry.

    With a ``limiter``, a message on the topic of a registered device is first checked against
    the device's rate limit, right after the topic → slot lookup: a message over the limit costs
    no more than that (no size check, no JSON, no validation) and is accounted by the limiter,
    not here.

    Everything a message needs is looked up once here (the readings topic's head, each kind's
    validator, the registry's per-slot codes), so that a valid message costs one topic split,
    a few dict and list lookups and the validation itself.
    """

    def __init__(self, registry: Registry, topic_prefix: str = "", limiter: Limiter | None = None) -> None:
        self.registry = registry
        self.prefix = topic_prefix
        self._admit = limiter.admit if limiter is not None else None
        self._topics = Topics(topic_prefix)
        self._head = self._topics.readings_subscription.removesuffix("#")  # "{prefix}fire/"
        self._slot_of = registry.slot_of
        self._workers = registry.workers
        # plain lists of small ints: indexing them is several times cheaper than numpy scalars
        self._district_code = registry.district_idx.tolist()
        self._kind_code = registry.kind_code.tolist()
        self._district_index = {name: i for i, name in enumerate(registry.districts)}
        self._kinds = {
            name: _KindEntry(
                spec,
                KIND_CODE[name],
                spec.adapter.validator.validate_json,
                spec.payload.__pydantic_validator__.validate_json,
                spec.worker_field,
            )
            for name, spec in KIND_BY_NAME.items()
        }

    def decode(self, topic: str, payload: bytes, received_ms: int, out: Decoded) -> None:
        """Append the message's readings and rejects to ``out``."""
        head = self._head
        levels = topic[len(head) :].split("/") if topic.startswith(head) else None
        slot = None
        if levels is not None:
            if len(levels) == 3:
                slot = self._slot_of.get(levels[2])
            else:
                levels = None
        if slot is not None:
            admit = self._admit
            if admit is not None and not admit(slot, received_ms, topic, payload):
                return
        if len(payload) > MAX_PAYLOAD:
            self._reject(
                out, topic, payload, received_ms, RejectReason.TOO_LARGE,
                f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}",
            )  # fmt: skip
            return
        if levels is None:
            self._reject(
                out, topic, payload, received_ms, RejectReason.BAD_TOPIC,
                "topic must be fire/{district}/{kind}/{device_id}",
            )  # fmt: skip
            return
        district, kind, device_id = levels
        entry = self._kinds.get(kind)
        if entry is None or slot is None or self._district_index.get(district) != self._district_code[slot]:
            self._refuse_topic(out, topic, payload, received_ms, district, kind, device_id, slot)
            return
        if self._kind_code[slot] != entry.code:
            registry = self.registry
            self._reject(
                out, topic, payload, received_ms, RejectReason.KIND_MISMATCH,
                f"device {device_id} is registered as {registry.kind_of(slot)}, not {kind}",
            )  # fmt: skip
            return
        value = None
        if payload[:1] == b"{":  # one object, the common case
            try:  # noqa: SIM105 (contextlib.suppress costs more on this path)
                value = entry.validate_object(payload)
            except ValidationError:
                pass  # refused: the errors are those of the union, as for any message
        try:
            if value is None:
                value = entry.validate_json(payload)
        except ValidationError as exc:
            items = self._invalid(entry.spec, payload, exc, out, topic, received_ms)
        else:
            # perhaps in an ignored field: not JSON either. A payload without an upper-case letter
            # (islower: one scan, a quarter of the cost of the two searches) holds neither.
            if not payload.islower() and (b"NaN" in payload or b"Infinity" in payload):
                try:
                    from_json(payload, allow_inf_nan=False)  # validate_json's parser, made strict
                except ValueError as json_error:
                    self._reject(
                        out, topic, payload, received_ms, RejectReason.INVALID_JSON,
                        f"Invalid JSON: {json_error}",
                    )  # fmt: skip
                    return
            if type(value) is not list:  # one object: the common case
                item: Payload = value  # type: ignore[assignment]
                ts = received_ms if item.ts is None else item.ts
                if (
                    received_ms - MAX_AGE_MS <= ts <= received_ms + MAX_FUTURE_MS
                    and entry.worker_field is None
                ):
                    out.readings.append(Reading(slot, device_id, ts, item))
                else:
                    self._check_item(entry, item, ts, "", slot, device_id, out, topic, payload, received_ms)
                return
            items = value
        where = len(items) > 1
        for index, item in enumerate(items):
            ts = received_ms if item.ts is None else item.ts
            if received_ms - MAX_AGE_MS <= ts <= received_ms + MAX_FUTURE_MS and entry.worker_field is None:
                out.readings.append(Reading(slot, device_id, ts, item))
            else:
                prefix = f"element {index}: " if where else ""
                self._check_item(entry, item, ts, prefix, slot, device_id, out, topic, payload, received_ms)

    def _check_item(
        self,
        entry: _KindEntry,
        item: Payload,
        ts: int,
        where: str,
        slot: int,
        device_id: str,
        out: Decoded,
        topic: str,
        payload: bytes,
        received_ms: int,
    ) -> None:
        """One valid element that is out of the ts window or names a worker (the slow path)."""
        if ts > received_ms + MAX_FUTURE_MS:
            self._reject(
                out, topic, payload, received_ms, RejectReason.TS_FUTURE,
                f"{where}ts {ts} is more than 5 minutes in the future",
            )  # fmt: skip
        elif ts < received_ms - MAX_AGE_MS:
            self._reject(
                out,
                topic,
                payload,
                received_ms,
                RejectReason.TS_TOO_OLD,
                f"{where}ts {ts} is older than 30 days",
            )
        elif (worker := entry.spec.worker_of(item)) is not None and worker not in self._workers:
            self._reject(
                out, topic, payload, received_ms, RejectReason.UNKNOWN_WORKER,
                f"{where}worker {worker} is not in the registry",
            )  # fmt: skip
        else:
            out.readings.append(Reading(slot, device_id, ts, item))

    @staticmethod
    def _reject(
        out: Decoded, topic: str, payload: bytes, received_ms: int, reason: RejectReason, error: str
    ) -> None:
        out.rejects.append(Reject(reason, topic, error, payload[:REJECT_PAYLOAD_BYTES], received_ms))

    def _refuse_topic(
        self,
        out: Decoded,
        topic: str,
        payload: bytes,
        received_ms: int,
        district: str,
        kind: str,
        device_id: str,
        slot: int | None,
    ) -> None:
        """The reject of a well-formed topic that names an unknown kind or device, or the wrong
        district."""
        if kind not in self._kinds:
            reason, error = RejectReason.BAD_TOPIC, f"unknown kind {kind[:40]!r} in topic"
        elif slot is None:
            if not (is_identifier(district) and is_identifier(device_id)):
                reason, error = RejectReason.BAD_TOPIC, "invalid district or device_id in topic"
            else:
                reason, error = RejectReason.UNKNOWN_DEVICE, f"device {device_id} is not in the registry"
        else:
            reason = RejectReason.DISTRICT_MISMATCH
            error = (
                f"device {device_id} is registered in district {self.registry.district_of(slot)}, "
                f"not {district[:64]}"
            )
        self._reject(out, topic, payload, received_ms, reason, error)

    def _invalid(
        self, spec: KindSpec, payload: bytes, exc: ValidationError, out: Decoded, topic: str, received_ms: int
    ) -> list[Payload]:
        """A message the kind's validator refused: its rejects, and the valid elements of a batch."""

        def reject(reason: RejectReason, error: str) -> None:
            self._reject(out, topic, payload, received_ms, reason, error)

        return self._validate_failed(spec, payload, exc, reject)

    @staticmethod
    def _validate_failed(
        spec: KindSpec, payload: bytes, exc: ValidationError, reject: _RejectFn
    ) -> list[Payload]:
        if exc.errors()[0]["type"] == "json_invalid":
            reject(RejectReason.INVALID_JSON, _describe(exc, 1))
            return []
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError as json_error:  # NaN, Infinity: pydantic parses them
            reject(RejectReason.INVALID_JSON, str(json_error))
            return []
        if not isinstance(document, list) or not document or len(document) > MAX_BATCH:
            reject(RejectReason.SCHEMA, _describe_single(spec, document, exc))
            return []
        kept: list[Payload] = []
        for index, element in enumerate(document):
            try:
                kept.append(spec.payload.model_validate(element, strict=True))
            except ValidationError as element_error:
                reject(RejectReason.SCHEMA, f"element {index}: {_describe(element_error)}")
        return kept


def _describe_single(spec: KindSpec, document: object, exc: ValidationError) -> str:
    if isinstance(document, list):
        return f"a batch holds 1 to {MAX_BATCH} objects, found {len(document)}"
    if isinstance(document, dict):
        try:
            spec.payload.model_validate(document, strict=True)
        except ValidationError as single:
            return _describe(single)
    return f"expected a {spec.name} object or an array of them: {_describe(exc, 1)}"
