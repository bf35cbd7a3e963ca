"""The ``hostile`` step: malformed and hostile messages, one builder per case.

Each builder schedules its message and records what ingest must make of it: a reject with the
reason ingest names (``ExpectedReject``), or, for valid but nasty messages, the value that must
be stored intact (``ExpectedStored``) and the event it raises. The cases are dispatched through
:data:`HOSTILE_BUILDERS`, one entry per ``HostileCase`` of the schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
import orjson

from devices import MAX_BATCH, MAX_PAYLOAD
from simulators._effects import SetFields
from simulators._patrol_steps import unused_checkpoint_scan
from simulators._physics import Message
from simulators._planner import Planner
from simulators._scenario_schema import HOSTILE_CASES, Hostile
from simulators._truth import ExpectedReject, ExpectedStored, Out

INJECTION = 'a,b=c d\n"x'
"""Characters that line protocol and topics must escape (or refuse)."""
FUTURE_MS = 10 * 60_000
"""``ts_future`` is this far ahead of the wall clock (ingest refuses more than 5 min ahead)."""
PAST_MS = 31 * 86_400_000
"""``ts_too_old`` is this far behind the wall clock (ingest refuses more than 30 days behind)."""


class HostileMessages:
    """The builders of one ``hostile`` step: they schedule the message and record its expectation."""

    def __init__(self, planner: Planner, start: int) -> None:
        self.p = planner
        self.fleet = planner.fleet
        self.devices: dict[str, int] = {}
        self.start = start
        self.unknown = 0

    def device(self, kind: str) -> int:
        """An unused device of ``kind`` (the same one for every case of this step)."""
        if kind not in self.devices:
            bank = self.fleet.banks[kind]
            free = [i for i in range(bank.size) if bank.device_ids[i] not in self.p.used]
            if not free:
                raise self.p.fail("cases", f"no unused {kind} device to send hostile messages from")
            self.devices[kind] = free[0]
            self.p.used.add(bank.device_ids[free[0]])
        return self.devices[kind]

    def topic(
        self,
        kind: str,
        index: int | None = None,
        *,
        district: str | None = None,
        device: str | None = None,
        topic_kind: str | None = None,
    ) -> str:
        """The topic of this step's ``kind`` device (or of ``index``), with parts replaced."""
        bank = self.fleet.banks[kind]
        i = self.device(kind) if index is None else index
        return self.p.topics.device(
            district or bank.districts[i], topic_kind or kind, device or bank.device_ids[i]
        )

    def raw(
        self, t_ms: int, case: str, reason: str, topic: str, payload: bytes | Callable[[int], bytes]
    ) -> None:
        def emit(wall_ms: int) -> list[Out]:
            body = payload(wall_ms) if callable(payload) else payload
            return [(topic, body, "hostile")]

        self.p.timed(t_ms, emit)
        self.p.plan.rejects.append(ExpectedReject(reason, topic, case, self.p.step))

    def reading(self, kind: str, t_ms: int) -> Message:
        """A normal reading of this step's ``kind`` device (no ``ts``/``seq``)."""
        bank = self.fleet.banks[kind]
        return bank.values(np.array([self.device(kind)], dtype=np.int64), t_ms)[0]

    def unknown_id(self) -> str:
        self.unknown += 1
        district = self.fleet.registry.districts[0] if self.fleet.registry.districts else "D01"
        while True:
            candidate = f"{district}-XX{self.p.step:02d}{self.unknown:04d}"
            if candidate not in self.fleet.registry.slot_of:
                return candidate
            self.unknown += 1

    # rejected ---------------------------------------------------------------------------------

    def bad_json(self, t: int) -> None:
        self.raw(t, "bad_json", "invalid_json", self.topic("smoke"), b'{"alarm": tru')

    def not_utf8(self, t: int) -> None:
        self.raw(t, "not_utf8", "invalid_json", self.topic("smoke"), b'\xff\xfe{"alarm": false}')

    def empty(self, t: int) -> None:
        self.raw(t, "empty", "invalid_json", self.topic("smoke"), b"")

    def not_an_object(self, t: int) -> None:
        self.raw(t, "not_an_object", "schema", self.topic("smoke"), b'"hello"')

    def empty_batch(self, t: int) -> None:
        self.raw(t, "empty_batch", "schema", self.topic("smoke"), b"[]")

    def batch_too_big(self, t: int) -> None:
        item = orjson.dumps({"alarm": False})
        self.raw(
            t,
            "batch_too_big",
            "schema",
            self.topic("smoke"),
            b"[" + b",".join([item] * (MAX_BATCH + 1)) + b"]",
        )

    def deep_nesting(self, t: int) -> None:
        self.raw(t, "deep_nesting", "invalid_json", self.topic("smoke"), b"[" * 50_000 + b"]" * 50_000)

    def wrong_type(self, t: int) -> None:
        self.raw(t, "wrong_type", "schema", self.topic("smoke"), b'{"alarm": "yes"}')

    def missing_field(self, t: int) -> None:
        self.raw(t, "missing_field", "schema", self.topic("electrical"), b'{"temp_c": [30.0]}')

    def out_of_range(self, t: int) -> None:
        self.raw(t, "out_of_range", "schema", self.topic("smoke"), b'{"alarm": false, "battery_pct": 150}')

    def nan(self, t: int) -> None:
        self.raw(t, "nan", "invalid_json", self.topic("water"), b'{"pressure_mpa": NaN}')

    def infinity(self, t: int) -> None:
        self.raw(t, "infinity", "invalid_json", self.topic("electrical"), b'{"residual_ma": 1e999}')

    def kind_mismatch(self, t: int) -> None:
        message = orjson.dumps({**self.reading("water", t)})
        self.raw(t, "kind_mismatch", "kind_mismatch", self.topic("smoke", topic_kind="water"), message)

    def district_mismatch(self, t: int) -> None:
        districts = set(self.fleet.registry.districts)
        other = next(f"D{n:02d}" for n in range(99, 0, -1) if f"D{n:02d}" not in districts)
        message = orjson.dumps(self.reading("smoke", t))
        self.raw(t, "district_mismatch", "district_mismatch", self.topic("smoke", district=other), message)

    def unknown_device(self, t: int) -> None:
        self.raw(
            t,
            "unknown_device",
            "unknown_device",
            self.topic("smoke", device=self.unknown_id()),
            b'{"alarm": false}',
        )

    def unknown_kind(self, t: int) -> None:
        self.raw(t, "unknown_kind", "bad_topic", self.topic("smoke", topic_kind="laser"), b'{"alarm": false}')

    def short_topic(self, t: int) -> None:
        without_device = self.topic("smoke").rsplit("/", 1)[0]
        self.raw(t, "short_topic", "bad_topic", without_device, b'{"alarm": false}')

    def long_topic(self, t: int) -> None:
        self.raw(t, "long_topic", "bad_topic", self.topic("smoke") + "/extra", b'{"alarm": false}')

    def topic_injection(self, t: int) -> None:
        self.raw(
            t, "topic_injection", "bad_topic", self.topic("smoke", device='a,b=c d"x'), b'{"alarm": false}'
        )

    def worker_injection(self, t: int) -> None:
        body = orjson.dumps({"worker_id": INJECTION, "result": "ok"})
        self.raw(t, "worker_injection", "schema", self.topic("patrol"), body)

    def oversize(self, t: int) -> None:
        body = orjson.dumps({"alarm": False, "note": "x" * (MAX_PAYLOAD + 40_000)})
        self.raw(t, "oversize", "too_large", self.topic("smoke"), body)

    def ts_future(self, t: int) -> None:
        self.raw(
            t,
            "ts_future",
            "ts_future",
            self.topic("smoke"),
            lambda wall: orjson.dumps({"ts": wall + FUTURE_MS, "alarm": False}),
        )

    def ts_too_old(self, t: int) -> None:
        self.raw(
            t,
            "ts_too_old",
            "ts_too_old",
            self.topic("smoke"),
            lambda wall: orjson.dumps({"ts": wall - PAST_MS, "alarm": False}),
        )

    def ts_string(self, t: int) -> None:
        self.raw(
            t, "ts_string", "schema", self.topic("smoke"), b'{"ts": "2025-12-01T10:00:00Z", "alarm": false}'
        )

    def negative_seq(self, t: int) -> None:
        self.raw(t, "negative_seq", "schema", self.topic("smoke"), b'{"seq": -1, "alarm": false}')

    def unknown_worker(self, t: int) -> None:
        workers = self.fleet.registry.workers
        name = next(f"NOBODY-{n}" for n in range(1, 10_000) if f"NOBODY-{n}" not in workers)
        body = orjson.dumps({"worker_id": name, "result": "ok"})
        self.raw(t, "unknown_worker", "unknown_worker", self.topic("patrol"), body)

    def bad_result(self, t: int) -> None:
        patrol = self.fleet.patrol
        i = self.device("patrol")
        worker = patrol.worker_ids_of_tag[i] or next(iter(self.fleet.registry.workers), "W1")
        self.raw(
            t,
            "bad_result",
            "schema",
            self.topic("patrol"),
            orjson.dumps({"worker_id": worker, "result": "maybe"}),
        )

    # accepted (valid but nasty) ------------------------------------------------------------------

    def _stored(self, case: str, kind: str, index: int, field_name: str, value: Any) -> None:
        bank = self.fleet.banks[kind]
        self.p.plan.stored.append(
            ExpectedStored(
                kind, self.topic(kind, index), bank.device_ids[index], case, field_name, value, self.p.step
            )
        )

    def fault_injection(self, t: int) -> None:
        kind = "electrical"
        index = self.device(kind)
        self.fleet.add_effect(kind, index, SetFields(t, t + 1000, {"fault": INJECTION}))
        self.p.report(kind, index, t)
        self.p.report(kind, index, t + self.p.cadence_ms)
        self.p.event("DEVICE_FAULT", kind, index)
        self._stored("fault_injection", kind, index, "fault", INJECTION)

    def note_injection(self, t: int) -> None:
        tag = unused_checkpoint_scan(self.p, "cases", t, {"note": INJECTION})
        self._stored("note_injection", "patrol", tag, "note", INJECTION)

    def hazard_injection(self, t: int) -> None:
        hazards = [INJECTION, "back\\slash", '"quoted"']
        tag = unused_checkpoint_scan(self.p, "cases", t, {"result": "hazard", "hazards": hazards})
        self.p.event("PATROL_HAZARD", "patrol", tag)
        self._stored("hazard_injection", "patrol", tag, "hazards", ",".join(hazards))

    def unicode_note(self, t: int) -> None:
        note = "消防通道堵塞 🔥 — ñ"
        tag = unused_checkpoint_scan(self.p, "cases", t, {"note": note})
        self._stored("unicode_note", "patrol", tag, "note", note)

    def unknown_fields(self, t: int) -> None:
        kind = "water"
        index = self.device(kind)
        self.fleet.add_effect(
            kind, index, SetFields(t, t + 1000, {"firmware": {"evil": INJECTION}, "x y": 1})
        )
        self.p.report(kind, index, t)
        self._stored("unknown_fields", kind, index, "firmware", None)


Builder = Callable[[HostileMessages, int], None]

HOSTILE_BUILDERS: Final[dict[str, Builder]] = {
    "bad_json": HostileMessages.bad_json,
    "not_utf8": HostileMessages.not_utf8,
    "empty": HostileMessages.empty,
    "not_an_object": HostileMessages.not_an_object,
    "empty_batch": HostileMessages.empty_batch,
    "batch_too_big": HostileMessages.batch_too_big,
    "deep_nesting": HostileMessages.deep_nesting,
    "wrong_type": HostileMessages.wrong_type,
    "missing_field": HostileMessages.missing_field,
    "out_of_range": HostileMessages.out_of_range,
    "nan": HostileMessages.nan,
    "infinity": HostileMessages.infinity,
    "kind_mismatch": HostileMessages.kind_mismatch,
    "district_mismatch": HostileMessages.district_mismatch,
    "unknown_device": HostileMessages.unknown_device,
    "unknown_kind": HostileMessages.unknown_kind,
    "short_topic": HostileMessages.short_topic,
    "long_topic": HostileMessages.long_topic,
    "topic_injection": HostileMessages.topic_injection,
    "worker_injection": HostileMessages.worker_injection,
    "oversize": HostileMessages.oversize,
    "ts_future": HostileMessages.ts_future,
    "ts_too_old": HostileMessages.ts_too_old,
    "ts_string": HostileMessages.ts_string,
    "negative_seq": HostileMessages.negative_seq,
    "unknown_worker": HostileMessages.unknown_worker,
    "bad_result": HostileMessages.bad_result,
    "fault_injection": HostileMessages.fault_injection,
    "note_injection": HostileMessages.note_injection,
    "hazard_injection": HostileMessages.hazard_injection,
    "unicode_note": HostileMessages.unicode_note,
    "unknown_fields": HostileMessages.unknown_fields,
}
"""Every hostile case's builder, by the case's name (``HostileCase`` in the schema)."""


def plan_hostile(p: Planner, step: Hostile, start: int) -> None:
    cases = list(HOSTILE_CASES) if step.cases == "all" else list(dict.fromkeys(step.cases))
    hostile = HostileMessages(p, start)
    every = round(step.every * 1000)
    for n, case in enumerate(cases):
        HOSTILE_BUILDERS[case](hostile, start + n * every)
    p.need(start + len(cases) * every + 1000)
