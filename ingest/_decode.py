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


class Decoder:
    """Decodes one MQTT message at a time against the current registry.

    With a ``limiter``, a message on the topic of a registered device is first checked against
    the device's rate limit, right after the topic → slot lookup: a message over the limit costs
    no more than that (no size check, no JSON, no validation) and is accounted by the limiter,
    not here.
    """

    def __init__(self, registry: Registry, topic_prefix: str = "", limiter: Limiter | None = None) -> None:
        self.registry = registry
        self.prefix = topic_prefix
        self._admit = limiter.admit if limiter is not None else None
        self._topics = Topics(topic_prefix)
        # plain lists of small ints: indexing them is several times cheaper than numpy scalars
        self._district_code = registry.district_idx.tolist()
        self._kind_code = registry.kind_code.tolist()
        self._district_index = {name: i for i, name in enumerate(registry.districts)}

    def decode(self, topic: str, payload: bytes, received_ms: int, out: Decoded) -> None:
        """Append the message's readings and rejects to ``out``."""

        def reject(reason: RejectReason, error: str) -> None:
            out.rejects.append(Reject(reason, topic, error, payload[:REJECT_PAYLOAD_BYTES], received_ms))

        parsed = self._topics.parse_device(topic)
        registry = self.registry
        slot = registry.slot_of.get(parsed.device_id) if parsed is not None else None
        if slot is not None:
            admit = self._admit
            if admit is not None and not admit(slot, received_ms, topic, payload):
                return
        if len(payload) > MAX_PAYLOAD:
            reject(RejectReason.TOO_LARGE, f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
            return
        if parsed is None:
            reject(RejectReason.BAD_TOPIC, "topic must be fire/{district}/{kind}/{device_id}")
            return
        district, kind, device_id = parsed.district, parsed.kind, parsed.device_id
        spec = KIND_BY_NAME.get(kind)
        if spec is None:
            reject(RejectReason.BAD_TOPIC, f"unknown kind {kind[:40]!r} in topic")
            return
        if slot is None:
            if not (is_identifier(district) and is_identifier(device_id)):
                reject(RejectReason.BAD_TOPIC, "invalid district or device_id in topic")
            else:
                reject(RejectReason.UNKNOWN_DEVICE, f"device {device_id} is not in the registry")
            return
        if self._district_index.get(district) != self._district_code[slot]:
            reject(
                RejectReason.DISTRICT_MISMATCH,
                f"device {device_id} is registered in district {registry.district_of(slot)}, "
                f"not {district[:64]}",
            )
            return
        if self._kind_code[slot] != KIND_CODE[kind]:
            reject(
                RejectReason.KIND_MISMATCH,
                f"device {device_id} is registered as {registry.kind_of(slot)}, not {kind}",
            )
            return
        payloads = self._validate(spec, payload, reject)
        for index, item in enumerate(payloads):
            ts = received_ms if item.ts is None else item.ts
            where = f"element {index}: " if len(payloads) > 1 else ""
            if ts > received_ms + MAX_FUTURE_MS:
                reject(RejectReason.TS_FUTURE, f"{where}ts {ts} is more than 5 minutes in the future")
            elif ts < received_ms - MAX_AGE_MS:
                reject(RejectReason.TS_TOO_OLD, f"{where}ts {ts} is older than 30 days")
            elif (worker := spec.worker_of(item)) is not None and worker not in registry.workers:
                reject(RejectReason.UNKNOWN_WORKER, f"{where}worker {worker} is not in the registry")
            else:
                out.readings.append(Reading(slot, device_id, ts, item))

    @staticmethod
    def _validate(spec: KindSpec, payload: bytes, reject: _RejectFn) -> list[Payload]:
        """The valid payloads of a message; a batch keeps its valid elements."""
        try:
            value = spec.adapter.validate_json(payload)
        except ValidationError as exc:
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
        if b"NaN" in payload or b"Infinity" in payload:  # perhaps in an ignored field: not JSON either
            try:
                from_json(payload, allow_inf_nan=False)  # validate_json's parser, made strict
            except ValueError as json_error:
                reject(RejectReason.INVALID_JSON, f"Invalid JSON: {json_error}")
                return []
        return value if isinstance(value, list) else [value]


def _describe_single(spec: KindSpec, document: object, exc: ValidationError) -> str:
    if isinstance(document, list):
        return f"a batch holds 1 to {MAX_BATCH} objects, found {len(document)}"
    if isinstance(document, dict):
        try:
            spec.payload.model_validate(document, strict=True)
        except ValidationError as single:
            return _describe(single)
    return f"expected a {spec.name} object or an array of them: {_describe(exc, 1)}"
