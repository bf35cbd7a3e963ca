"""Decoder fuzzing: structured messages (topics from right and wrong parts, payloads from each
kind's JSON schema with mutations), random bytes, and the checks every decoded message must pass.

The structured generator keeps the document it wrote, so :func:`expected` can say what the
decoder must answer (how many readings, which reject reasons) from a model of CONTRACT §4 that
is independent of the decoder's code path: the topic rules, the schema (a strict validation of
each element on its own), the ts window and the worker check.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from hypothesis import strategies as st
from pydantic import ValidationError

from devices import (
    KIND_BY_NAME,
    KINDS,
    MAX_BATCH,
    MAX_PAYLOAD,
    KindSpec,
    Registry,
    Topics,
    is_identifier,
)
from ingest import PointEncoder
from ingest._decode import (
    MAX_AGE_MS,
    MAX_FUTURE_MS,
    REJECT_PAYLOAD_BYTES,
    Decoded,
    Decoder,
    RejectReason,
)
from tests.unit.fuzz._json import UNKNOWN, Pairs, Raw, depth, dumps, has_nonfinite, overflows, value_of

T0: Final = 1_764_583_200_000
PREFIXES: Final = ("", "t1/")
"""One decoder per prefix: the deployment's ``FIREGRID_TOPIC_PREFIX`` is part of the topic."""
MAX_DEPTH_KNOWN: Final = 150
"""Deeper documents hit the JSON parser's recursion limit: the model does not predict them."""

SAMPLED: Final = 50
"""Of a big batch, the readings re-validated and the rejects encoded (the first ones and the last)."""
MESSAGE_LEVEL: Final = frozenset(
    {
        RejectReason.TOO_LARGE,
        RejectReason.BAD_TOPIC,
        RejectReason.INVALID_JSON,
        RejectReason.UNKNOWN_DEVICE,
        RejectReason.DISTRICT_MISMATCH,
        RejectReason.KIND_MISMATCH,
    }
)
"""Reasons that refuse the whole message: such a reject is the message's only outcome."""


@dataclass(frozen=True, slots=True)
class Message:
    prefix: str
    """The decoder's (deployment's) topic prefix."""
    topic: str
    payload: bytes
    received_ms: int
    document: object = None
    """The document ``payload`` was written from; None when the bytes are not one (mutated)."""
    home: str = ""
    """The right topic for the payload (its device's, with the decoder's prefix)."""

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep them readable
        payload = self.payload if len(self.payload) <= 600 else self.payload[:600] + b"..."
        return (
            f"Message(prefix={self.prefix!r}, topic={self.topic!r}, received_ms={self.received_ms}, "
            f"payload ({len(self.payload)} bytes)={payload!r}, mutated={self.document is None})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass(frozen=True, slots=True)
class Outcome:
    readings: int
    reasons: Counter[RejectReason]

    @staticmethod
    def of(decoded: Decoded) -> Outcome:
        return Outcome(len(decoded.readings), Counter(r.reason for r in decoded.rejects))


# -- the model ---------------------------------------------------------------------------------


def topic_verdict(registry: Registry, prefix: str, topic: str) -> tuple[RejectReason | None, str | None]:
    """(the reject the topic earns or None, the topic's kind when it is a fine device topic)."""
    if not topic.startswith(prefix):
        return RejectReason.BAD_TOPIC, None
    levels = topic[len(prefix) :].split("/")
    if len(levels) != 4 or levels[0] != "fire":
        return RejectReason.BAD_TOPIC, None
    _, district, kind, device_id = levels
    if kind not in KIND_BY_NAME:
        return RejectReason.BAD_TOPIC, None
    slot = registry.slot_of.get(device_id)
    if slot is None:
        if is_identifier(district) and is_identifier(device_id):
            return RejectReason.UNKNOWN_DEVICE, None
        return RejectReason.BAD_TOPIC, None
    if registry.district_of(slot) != district:
        return RejectReason.DISTRICT_MISMATCH, None
    if registry.kind_of(slot) != kind:
        return RejectReason.KIND_MISMATCH, None
    return None, kind


def expected(registry: Registry, message: Message) -> Outcome | None:
    """What the decoder must answer, or None where the model does not know (mutated bytes,
    numbers beyond a double like ``1e400``, a lone surrogate escape, nesting beyond the parser's
    limit)."""
    if len(message.payload) > MAX_PAYLOAD:
        return Outcome(0, Counter({RejectReason.TOO_LARGE: 1}))
    reason, kind = topic_verdict(registry, message.prefix, message.topic)
    if reason is not None:
        return Outcome(0, Counter({reason: 1}))
    assert kind is not None
    if message.document is None:
        return None
    if has_nonfinite(message.document):  # not JSON (RFC 8259), wherever it stands
        return Outcome(0, Counter({RejectReason.INVALID_JSON: 1}))
    document = message.document
    if value_of(document) is UNKNOWN or depth(document) > MAX_DEPTH_KNOWN or overflows(document):
        return None  # an integer beyond a double: invalid_json or schema, depending on the path
    if isinstance(document, list | tuple):
        if not document or len(document) > MAX_BATCH:
            return Outcome(0, Counter({RejectReason.SCHEMA: 1}))
        elements: Sequence[object] = document
    elif isinstance(document, dict | Pairs):
        elements = [document]
    else:
        return Outcome(0, Counter({RejectReason.SCHEMA: 1}))
    spec = KIND_BY_NAME[kind]
    outcomes: dict[int, RejectReason | None] = {}  # a big batch repeats a few element objects
    readings, reasons = 0, Counter[RejectReason]()
    for element in elements:
        if id(element) not in outcomes:
            outcomes[id(element)] = _element(registry, spec, value_of(element), message.received_ms)
        reason = outcomes[id(element)]
        if reason is None:
            readings += 1
        else:
            reasons[reason] += 1
    return Outcome(readings, reasons)


def _element(registry: Registry, spec: KindSpec, element: object, received: int) -> RejectReason | None:
    """The reject one element earns on its own, or None for a reading."""
    try:
        item = spec.payload.model_validate(element, strict=True)
    except ValidationError:
        return RejectReason.SCHEMA
    ts = received if item.ts is None else item.ts
    worker = spec.worker_of(item)
    if ts > received + MAX_FUTURE_MS:
        return RejectReason.TS_FUTURE
    if ts < received - MAX_AGE_MS:
        return RejectReason.TS_TOO_OLD
    if worker is not None and worker not in registry.workers:
        return RejectReason.UNKNOWN_WORKER
    return None


# -- the invariants of every decoded message -----------------------------------------------------


def _finite_numbers(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_finite_numbers(v) for v in value)
    if isinstance(value, dict):
        return all(_finite_numbers(v) for v in value.values())
    return True


def check(registry: Registry, encoder: PointEncoder, message: Message, decoded: Decoded) -> None:
    """CONTRACT §4 for one message decoded on its own into ``decoded``."""
    topic, payload, received = message.topic, message.payload, message.received_ms
    readings, rejects = decoded.readings, decoded.rejects
    assert len(readings) + len(rejects) >= 1, "a message vanished: no reading and no reject"
    for reject in rejects:
        assert isinstance(reject.reason, RejectReason)
        assert isinstance(reject.error, str) and reject.error, "a reject without an error"
        assert reject.topic == topic and reject.received_ms == received
        assert len(reject.payload) <= REJECT_PAYLOAD_BYTES
        assert reject.payload == payload[:REJECT_PAYLOAD_BYTES]
    if any(r.reason in MESSAGE_LEVEL for r in rejects) or (rejects and not _is_batch(payload)):
        assert len(rejects) == 1 and not readings, f"a refused message has more: {decoded}"
    if readings:
        reason, kind = topic_verdict(registry, message.prefix, topic)
        assert reason is None, f"a reading from a topic the contract refuses ({reason}): {topic!r}"
        device_id = topic.rsplit("/", 1)[1]
        district = topic[len(message.prefix) :].split("/")[1]
        spec = KIND_BY_NAME[str(kind)]
    for index, reading in enumerate(readings):
        slot = registry.slot_of.get(reading.device_id)
        assert slot is not None and reading.slot == slot, "a reading of a device not in the registry"
        assert reading.device_id == device_id
        assert registry.kind_of(slot) == kind == reading.kind, "a reading of the wrong kind"
        assert registry.district_of(slot) == district, "a reading of the wrong district"
        assert received - MAX_AGE_MS <= reading.ts <= received + MAX_FUTURE_MS, "ts outside the window"
        item = reading.payload
        assert type(item) is spec.payload
        assert reading.ts == (received if item.ts is None else item.ts)
        if SAMPLED <= index < len(readings) - 1:
            continue  # a big batch: the costlier checks on its first readings and its last
        dumped = item.model_dump()
        assert _finite_numbers(dumped), f"a non-finite number in a reading: {dumped}"
        spec.payload.model_validate(dumped, strict=True)  # still valid
        worker = spec.worker_of(item)
        assert worker is None or worker in registry.workers, "a reading naming an unknown worker"
    lines: list[str] = []
    encoder.readings(readings, lines)
    sampled = rejects if len(rejects) <= SAMPLED else [*rejects[:SAMPLED], rejects[-1]]
    encoder.rejects(sampled, lines)
    assert len(lines) == len(readings) + len(sampled)
    for line in lines:
        assert "\n" not in line and "\r" not in line, f"a line protocol line breaks: {line[:200]!r}"
        line.encode("utf-8")  # what the HTTP client sends: no lone surrogate may reach it


def _is_batch(payload: bytes) -> bool:
    return payload.lstrip(b" \t\r\n").startswith(b"[")


def decode_and_check(
    registry: Registry,
    decoders: Mapping[str, Decoder],
    encoder: PointEncoder,
    message: Message,
) -> Decoded:
    decoded = Decoded()
    decoders[message.prefix].decode(message.topic, message.payload, message.received_ms, decoded)
    check(registry, encoder, message, decoded)
    return decoded


# -- structured inputs (hypothesis) ------------------------------------------------------------

HUGE: Final = (10**30, -(10**30), 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**400, -(10**400))
NONFINITE: Final = (
    Raw(b"NaN", nonfinite=True),
    Raw(b"Infinity", nonfinite=True),
    Raw(b"-Infinity", nonfinite=True),
)
UNKNOWN_TOKENS: Final = (Raw(b"1e400"), Raw(b"-1e400"), Raw(b'"\\ud800"'), Raw(b'"\\udc00x"'))
"""Valid-looking JSON whose value the model does not predict (overflow, lone surrogates)."""

_text = st.text(max_size=20)


def _nested(depth: int, leaf: object) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


junk: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(HUGE),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
    st.sampled_from(NONFINITE + UNKNOWN_TOKENS),
    st.lists(st.integers(-5, 5) | _text, max_size=4),
    st.dictionaries(_text, st.integers(-5, 5), max_size=3),
    st.builds(_nested, st.sampled_from((1, 2, 30, 140, 199, 200, 201, 300)), st.integers(0, 1)),
)
"""Values of the wrong type, the wrong size, or no JSON value at all, for any field."""


def _schema_strategy(schema: Mapping[str, Any], pattern_values: Sequence[str]) -> st.SearchStrategy[object]:
    """Valid values of one property of a pydantic JSON schema (the subset the kinds use)."""
    if "anyOf" in schema:
        return st.one_of(*(_schema_strategy(s, pattern_values) for s in schema["anyOf"]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        edges = [v for v in (low, high) if v is not None]
        return st.integers(min_value=low, max_value=high) | st.sampled_from(edges or [0])
    if kind == "number":
        low, high = schema.get("minimum"), schema.get("maximum")
        floats = st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
        ints = st.integers(
            min_value=-(10**6) if low is None else math.ceil(low),
            max_value=10**6 if high is None else math.floor(high),
        )
        return floats | ints
    if kind == "string":
        if "pattern" in schema:
            return st.sampled_from(pattern_values) | st.from_regex(schema["pattern"], fullmatch=True)
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        short = st.text(min_size=low, max_size=min(high or 40, 40))
        if high is None or high <= 40:
            return short
        return short | st.builds(
            lambda c, n: (c * n)[:high], st.characters(codec="utf-8"), st.sampled_from((high, high - 1))
        )
    if kind == "array":
        item = _schema_strategy(schema["items"], pattern_values)
        return st.lists(item, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 8), 8))
    raise AssertionError(f"schema the fuzzer does not know: {schema}")


def ts_values(received: int) -> st.SearchStrategy[object]:
    """``ts`` in the window, at and around both limits, and of the wrong type."""
    future, old = received + MAX_FUTURE_MS, received - MAX_AGE_MS
    return st.one_of(
        st.none(),
        st.integers(min_value=max(old, 0), max_value=future),
        st.sampled_from([future - 1, future, future + 1, old - 1, old, old + 1, received]),
        st.sampled_from([0, -1, 2**53, 2**53 + 1, 2**63, float(received), str(received), True]),
    )


_Properties = tuple[dict[str, Any], tuple[tuple[str, bool, st.SearchStrategy[object]], ...]]
_PROPERTIES: dict[tuple[str, tuple[str, ...]], _Properties] = {}


def _properties(spec: KindSpec, workers: tuple[str, ...]) -> _Properties:
    """The kind's JSON schema and (name, required, valid values) of each property (built once)."""
    key = (spec.name, workers)
    if key not in _PROPERTIES:
        schema = spec.payload.model_json_schema()
        required = set(schema.get("required", ()))
        _PROPERTIES[key] = (
            schema,
            tuple(
                (name, name in required, _schema_strategy(prop, workers))
                for name, prop in schema["properties"].items()
            ),
        )
    return _PROPERTIES[key]


@st.composite
def elements(draw: st.DrawFn, spec: KindSpec, workers: tuple[str, ...], received: int) -> object:
    """One payload object of ``spec``'s schema, often mutated."""
    schema, properties = _properties(spec, workers)
    pairs: list[tuple[str, object]] = []
    for name, required, values in properties:
        if not required and draw(st.integers(0, 2)) == 0:
            continue  # absent optional field
        pairs.append((name, draw(ts_values(received) if name == "ts" else values)))
    for _ in range(draw(st.integers(0, 3))):
        mutation = draw(st.sampled_from(("drop", "retype", "extra", "duplicate", "list_size")))
        names = [n for n, _ in pairs]
        if mutation == "drop" and pairs:
            del pairs[draw(st.integers(0, len(pairs) - 1))]
        elif mutation == "retype" and pairs:
            index = draw(st.integers(0, len(pairs) - 1))
            pairs[index] = (pairs[index][0], draw(junk))
        elif mutation == "extra":
            pairs.append((draw(_text), draw(junk)))  # may repeat a key: then written as Pairs
        elif mutation == "duplicate" and pairs:
            name, value = pairs[draw(st.integers(0, len(pairs) - 1))]
            other = draw(junk)
            pairs.append((name, other) if draw(st.booleans()) else (name, value))
            if draw(st.booleans()):
                pairs[-1], pairs[names.index(name)] = pairs[names.index(name)], pairs[-1]
        elif mutation == "list_size":
            name = draw(st.sampled_from(sorted(schema["properties"])))
            size = draw(st.sampled_from((0, 1, 8, 9, 50, 51, 100)))
            pairs.append((name, [draw(st.floats(-100, 100) | _text)] * size))
    if draw(st.integers(0, 3)) == 0:
        draw(st.randoms(use_true_random=False)).shuffle(pairs)
    if len({n for n, _ in pairs}) != len(pairs):
        return Pairs(tuple(pairs))
    return dict(pairs)


@st.composite
def topics(draw: st.DrawFn, registry: Registry, prefix: str) -> tuple[str, KindSpec, str]:
    """A topic from right and wrong parts, the kind whose payload goes with it, the right topic."""
    device_ids = sorted(registry.slot_of)
    device_id = draw(st.sampled_from(device_ids))
    slot = registry.slot_of[device_id]
    spec = KIND_BY_NAME[registry.kind_of(slot)]
    other_prefix = st.sampled_from(tuple(p for p in (*PREFIXES, "T1/", "t1", "/", "t1/t1/") if p != prefix))
    right: dict[str, str] = {
        "prefix": prefix,
        "root": "fire",
        "district": registry.district_of(slot),
        "kind": spec.name,
        "device": device_id,
    }
    wrong: dict[str, st.SearchStrategy[str]] = {
        "prefix": other_prefix,
        "root": st.sampled_from(("Fire", "fire ", "alerts", "actions", "", "fire\x00")),
        "district": st.sampled_from(("D02", "d01", "", "D 01", "D01\n", "Ｄ01", "D" * 65, "D01/x", "+", "#"))
        | st.text(max_size=8),
        "kind": st.sampled_from([k.name for k in KINDS])
        | st.sampled_from(("SMOKE", "toy", "", "smoke ", "smokе"))  # the last with a Cyrillic "е"
        | st.text(max_size=8),
        "device": st.sampled_from(device_ids)
        | st.sampled_from(("S9999", "s0000", "", "S 0", "S0000\x00", "Ｓ0000", "X" * 64, "X" * 65, "+", "#"))
        | st.text(max_size=8),
    }
    count = draw(st.sampled_from((0, 0, 0, 1, 1, 2)))  # half the topics are right
    broken = draw(st.lists(st.sampled_from(sorted(right)), min_size=count, max_size=count, unique=True))
    chosen = {name: draw(wrong[name]) if name in broken else value for name, value in right.items()}
    levels = [chosen["root"], chosen["district"], chosen["kind"], chosen["device"]]
    extra = draw(st.sampled_from(("none",) * 9 + ("before", "after", "empty", "trailing")))
    if extra == "before":
        levels.insert(0, draw(st.sampled_from(("", "x", "fire"))))
    elif extra == "after":
        levels.append(draw(st.sampled_from(("", "x", "result"))))
    elif extra == "empty":
        levels.insert(draw(st.integers(1, len(levels))), "")
    elif extra == "trailing":
        levels[-1] += "/"
    return (
        chosen["prefix"] + "/".join(levels),
        spec,
        Topics(prefix).device(right["district"], spec.name, device_id),
    )


def _pad(document: object, target: int, ascii_only: bool) -> object:
    """``document`` with a ``pad`` string making it ``target`` bytes (when it can hold one)."""
    holder: object = document[0] if isinstance(document, list) and document else document
    if not isinstance(holder, dict):
        return document
    padded_holder = {**holder, "pad": ""}
    padded = [padded_holder, *document[1:]] if isinstance(document, list) else padded_holder
    missing = target - len(dumps(padded, ascii_only=ascii_only))
    if missing <= 0:
        return document
    padded_holder["pad"] = "x" * missing
    return padded


@st.composite
def messages(draw: st.DrawFn, registry: Registry) -> Message:
    """A structured message: a topic of good and bad parts, a document, maybe bent bytes."""
    prefix = draw(st.sampled_from(PREFIXES))
    topic, spec, home = draw(topics(registry, prefix))
    received = draw(st.sampled_from((T0, MAX_AGE_MS // 2, 2**53 - MAX_FUTURE_MS)) | st.integers(0, 2**53))
    workers = tuple(sorted(registry.workers))
    shape = draw(st.sampled_from(("single",) * 4 + ("batch",) * 3 + ("big_batch", "top_junk", "nested")))
    document: object
    if shape == "single":
        document = draw(elements(spec, workers, received))
    elif shape == "batch":
        document = draw(st.lists(elements(spec, workers, received), min_size=0, max_size=5))
    elif shape == "big_batch":
        few = draw(st.lists(elements(spec, workers, received), min_size=1, max_size=3))
        size = draw(st.sampled_from((999, 1000, 1001)))
        document = [few[i % len(few)] for i in range(size)]
    elif shape == "top_junk":
        document = draw(junk)
    else:
        document = _nested(
            draw(st.sampled_from((1, 2, 100, 200, 300))), draw(elements(spec, workers, received))
        )
    ascii_only, spaced = draw(st.booleans()), draw(st.booleans())
    if draw(st.integers(0, 9)) == 0:
        target = draw(st.sampled_from((MAX_PAYLOAD - 1, MAX_PAYLOAD, MAX_PAYLOAD + 1, 2 * MAX_PAYLOAD)))
        document = _pad(document, target, ascii_only)
    payload = dumps(document, ascii_only=ascii_only, spaced=spaced)
    bent: object = document
    if draw(st.integers(0, 7)) == 0:
        payload = draw(st.sampled_from(BYTE_MUTATIONS))(payload, draw(st.randoms(use_true_random=False)))
        bent = None
    return Message(prefix, topic, payload, received, bent, home)


SHIFTS: Final = (1, -1, MAX_FUTURE_MS, MAX_FUTURE_MS + 1, -MAX_AGE_MS, -MAX_AGE_MS - 1, MAX_AGE_MS + 1)
"""Moves of the time of receipt that carry a ``ts`` across an edge of the window."""


def variants(message: Message, rng: random.Random) -> list[Message]:
    """The drawn message and three cheap relatives (generating a message costs far more than
    decoding it): on its right topic (or restyled, if it was on it), received at another time,
    and with bent bytes."""
    if message.topic != message.home:
        second = replace(message, topic=message.home)
    elif message.document is not None:
        second = replace(message, payload=dumps(message.document, ascii_only=True, spaced=True))
    else:
        second = replace(message, payload=mutate(message.payload, rng))
    received = min(max(message.received_ms + rng.choice(SHIFTS), 0), 2**53)
    shifted = replace(message, received_ms=received)
    bent = replace(message, topic=message.home, payload=mutate(message.payload, rng), document=None)
    return [message, second, shifted, bent]


# -- byte mutations and random bytes -------------------------------------------------------------


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _flip(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]


def _insert(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data) + 1)
    chunk = rng.choice(
        (
            rng.randbytes(rng.randrange(1, 8)),
            b"\xff",
            b"\xc0\x80",
            b"\xed\xa0\x80",
            b"\x00",
            b",",
            b"]",
            b"}",
            b'"',
            b"\\",
            b"NaN",
            b"Infinity",
            b"\xef\xbb\xbf",
        )
    )
    return data[:i] + chunk + data[i:]


def _delete(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randrange(1, 9) :]


def _splice(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return data
    i, j = sorted((rng.randrange(len(data)), rng.randrange(len(data))))
    return data[:i] + data[i:j] * rng.randrange(2, 4) + data[j:]


def _frame(data: bytes, rng: random.Random) -> bytes:
    before, after = rng.choice(
        ((b"\xef\xbb\xbf", b""), (b" \t\r\n", b"\n"), (b"", b"\x00"), (b"", b"garbage"))
    )
    return before + data + after


BYTE_MUTATIONS: Final[tuple[Callable[[bytes, random.Random], bytes], ...]] = (
    _truncate,
    _flip,
    _insert,
    _delete,
    _splice,
    _frame,
)


def mutate(data: bytes, rng: random.Random) -> bytes:
    for _ in range(rng.randrange(1, 4)):
        data = rng.choice(BYTE_MUTATIONS)(data, rng)
    return data


def random_bytes(rng: random.Random) -> bytes:
    size = rng.choice((0, 1, 2, rng.randrange(64), rng.randrange(512), rng.randrange(4096)))
    if rng.random() < 0.2:  # mostly-ASCII noise gets further into the JSON parser than uniform bytes
        return bytes(rng.choice(b'{}[]",:0123456789.eE+-truefalsnl \\u') for _ in range(size))
    return rng.randbytes(size)


def random_message(rng: random.Random, registry: Registry) -> Message:
    """Random bytes as payload (and sometimes as topic), or a mutated valid message."""
    prefix = rng.choice(PREFIXES)
    device_id = rng.choice(sorted(registry.slot_of))
    slot = registry.slot_of[device_id]
    spec = KIND_BY_NAME[registry.kind_of(slot)]
    topic = Topics(prefix).device(registry.district_of(slot), spec.name, device_id)
    roll = rng.random()
    if roll < 0.15:
        topic = random_bytes(rng).decode("utf-8", errors="replace")  # MQTT topics are UTF-8
    elif roll < 0.3:
        topic = mutate(topic.encode(), rng).decode("utf-8", errors="replace")
    received = rng.choice((T0, rng.randrange(2**53)))
    if rng.random() < 0.5:
        payload = random_bytes(rng)
    else:
        sample: dict[str, object] = {**spec.sample, "ts": received}
        if spec.worker_field is not None:
            sample[spec.worker_field] = rng.choice(sorted(registry.workers))
        document: object = sample if rng.random() < 0.7 else [sample] * rng.randrange(1, 4)
        payload = mutate(dumps(document), rng)
    return Message(prefix, topic, payload, received)
