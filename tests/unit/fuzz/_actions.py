"""Worker-action fuzzing: a model of CONTRACT §8 (who may do what, in which order), the inputs,
and the checks every answer and the event store must pass.

The model is written from the contract and the rules in alerts/_actions.py's docstring, not from
its code path: it predicts each answer from the bytes, the worker and the events' states.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from hypothesis import strategies as st
from ulid import ULID

from alerts import ACTIONS, MAX_ACTION_BYTES, MAX_NOTE_CHARS, STATES, EventStore, Outcome
from devices import Registry, Topics, is_identifier
from rules import Hit, Severity
from tests.unit.fuzz._decoder import NONFINITE, UNKNOWN_TOKENS, mutate, random_bytes
from tests.unit.fuzz._json import Pairs, dumps

T0: Final = 1_764_583_200_000
MOVES: Final = {
    "ack": ("open", "acknowledged"),
    "resolve": ("acknowledged", "resolved"),
    "close": ("resolved", "closed"),
}
RESULT_KEYS: Final = {"event_id", "action", "ok", "error", "at"}
"""CONTRACT §8's result, and ``at`` (when the change took effect; an extension)."""
TOPICS: Final = Topics("")

UNKNOWN_WORKERS: Final = ("W9", "SUP2", "w0", "W00", "sup1", "W4")
BAD_WORKERS: Final = ("W 0", "+", "#", "Ｗ0", "W0\x00", "X" * 65, "ÄÖ", "W0\n", "-W0", "W0+")
UNKNOWN_ACTIONS: Final = ("ACK", "", "reopen", "verify", "ack ", "ａck", "raise", "escalate", "unknown")


class Recorder:
    """A publisher that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        self.sent.append((topic, payload, qos))


@dataclass(slots=True)
class EventModel:
    event_id: str
    grid_id: str
    severity: str
    state: str = "open"
    acts: list[tuple[str, str, str | None]] = field(default_factory=list)
    """Accepted (action, worker, note), in order: what the history must show."""


@dataclass(frozen=True, slots=True)
class Prediction:
    ok: bool
    event_id: str | None
    action: str | None


_types = itertools.count()


def raise_event(
    store: EventStore, registry: Registry, device_id: str, severity: Severity, now_ms: int
) -> EventModel:
    """A fresh open event of ``device_id`` (a type of its own, so never a repeat of another)."""
    slot = registry.slot_of[device_id]
    kind, grid, site = registry.kind_of(slot), registry.grid_of(slot), registry.site_of(slot)
    type_ = f"FUZZ{next(_types)}"
    hit = Hit(
        type=type_,
        severity=severity,
        kind=kind,
        slot=slot,
        device_id=device_id,
        site_id=site,
        grid_id=grid,
        district=registry.district_of(slot),
        key=("device", device_id, type_),
        state="raise",
        value=1.0,
        threshold=0.5,
        ts=now_ms,
        message=f"{type_} on {device_id}",
    )
    [event] = store.process([hit], now_ms).events
    assert event["state"] == "open"
    return EventModel(str(event["event_id"]), grid, severity)


def grid_worker(registry: Registry, event: EventModel) -> str:
    return registry.grids[event.grid_id].workers[0]


def supervisor(registry: Registry) -> str:
    return next(w for w, worker in sorted(registry.workers.items()) if worker.is_supervisor)


def drive(store: EventStore, registry: Registry, event: EventModel, target: str, now_ms: int) -> None:
    """Move ``event`` along the lifecycle to ``target`` by the right people."""
    for action in ("ack", "resolve", "close"):
        if STATES.index(event.state) >= STATES.index(target):
            return
        worker = supervisor(registry) if action == "close" else grid_worker(registry, event)
        out = store.handle_action(
            worker, orjson.dumps({"event_id": event.event_id, "action": action}), now_ms
        )
        assert out.result is not None and out.result.ok, out.result
        event.state = MOVES[action][1]
        event.acts.append((action, worker, None))


# -- the model -----------------------------------------------------------------------------------


def predict(registry: Registry, worker: str, payload: bytes, events: dict[str, EventModel]) -> Prediction:
    """The answer CONTRACT §8 calls for (and, when it is ok, apply the change to ``events``)."""
    if len(payload) > MAX_ACTION_BYTES:
        return Prediction(False, None, None)
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return Prediction(False, None, None)
    if not isinstance(document, dict):
        return Prediction(False, None, None)
    event_id, action, note = document.get("event_id"), document.get("action"), document.get("note")
    echo_id = event_id if isinstance(event_id, str) else None
    echo_action = action if isinstance(action, str) else None
    refused = Prediction(False, echo_id, echo_action)
    if not isinstance(event_id, str) or not event_id or not isinstance(action, str) or action not in ACTIONS:
        return refused
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
        return refused
    if not is_identifier(worker) or worker not in registry.workers:
        return refused
    event = events.get(event_id)
    if event is None:
        return refused
    if action == "close":
        if not registry.workers[worker].is_supervisor:
            return refused
    elif worker not in registry.grids[event.grid_id].workers:
        return refused
    if action == "comment":
        if event.state == "closed":
            return refused
    elif event.state != MOVES[action][0]:
        return refused
    else:
        event.state = MOVES[action][1]
    event.acts.append((action, worker, note or None))
    return Prediction(True, event_id, action)


# -- the checks ----------------------------------------------------------------------------------


def act_and_check(
    store: EventStore,
    recorder: Recorder,
    registry: Registry,
    events: dict[str, EventModel],
    topic: str,
    payload: bytes,
    now_ms: int,
) -> None:
    """One message on ``topic``: the answer the model predicts, published as the contract says,
    and nothing changed by a refusal."""
    recorder.sent.clear()
    before = {event_id: event.state for event_id, event in events.items()}
    worker = TOPICS.action_worker(topic)
    outcome = store.handle_message(topic, payload, now_ms)
    if worker is None:
        assert outcome is None, f"{topic!r} is no action topic, yet it was handled"
        assert recorder.sent == []
        return
    assert outcome is not None and outcome.result is not None, "an action without an answer"
    answer = outcome.result.to_dict()
    assert set(answer) == RESULT_KEYS and isinstance(answer["ok"], bool)
    if answer["ok"]:
        assert answer["error"] is None and isinstance(answer["at"], int)
    else:
        assert isinstance(answer["error"], str) and answer["error"], f"a refusal without a reason: {answer}"
        assert answer["at"] is None
    want = predict(registry, worker, payload, events)
    got = Prediction(answer["ok"], answer["event_id"], answer["action"])
    assert got == want, (
        f"model says {want}, store says {answer} (worker {worker!r}, payload {payload[:300]!r})"
    )
    _check_publications(outcome, recorder, worker, answer, events, before)


def _check_publications(
    outcome: Outcome,
    recorder: Recorder,
    worker: str,
    answer: dict[str, Any],
    events: dict[str, EventModel],
    before: dict[str, str],
) -> None:
    safe = bool(worker) and not any(c in worker for c in "/+#\x00")
    results = [(t, p) for t, p, _ in recorder.sent if t == TOPICS.action_result(worker)]
    if safe:
        assert results == [(TOPICS.action_result(worker), orjson.dumps(answer))], "the answer was not sent"
        assert recorder.sent[-1][0] == TOPICS.action_result(worker), "the answer must come last"
    else:
        assert results == []
    alerts = [(t, orjson.loads(p)) for t, p, _ in recorder.sent if t.startswith("alerts/")]
    event = events.get(str(answer["event_id"]))
    moved = event is not None and event.state != before.get(event.event_id)
    if not answer["ok"] or not moved:  # a refusal or a comment changes nothing anyone sees
        assert alerts == [] and outcome.lines == [] and outcome.events == [], "a refusal changed something"
        return
    assert event is not None
    assert alerts, "an accepted transition was not published"
    for topic, document in alerts:
        assert document["event_id"] == event.event_id and document["state"] == event.state
        assert topic.endswith(f"/{event.grid_id}") or topic.startswith("alerts/station/")
    assert len(outcome.lines) == 1 and f'state="{event.state}"' in outcome.lines[0]


def check_store(store: EventStore, registry: Registry, events: dict[str, EventModel]) -> None:
    """Every event's state and history: only forward along open → acknowledged → resolved →
    closed, one step per action, each by someone allowed to; exactly the accepted actions."""
    supervisors = {w for w, worker in registry.workers.items() if worker.is_supervisor}
    for event in events.values():
        stored = store.get_event(event.event_id)
        assert stored is not None and stored["state"] == event.state, f"{event} vs {stored}"
        history = stored["history"]
        assert history[0]["action"] == "raise" and history[0]["to_state"] == "open"
        acts = []
        for step in history[1:]:
            action, start, end, worker = (
                step["action"],
                step["from_state"],
                step["to_state"],
                step["worker_id"],
            )
            if action in MOVES:
                assert (start, end) == MOVES[action], f"an illegal move {step}"
                if action == "close":
                    assert worker in supervisors, f"a close by {worker}, not a supervisor"
                else:
                    assert worker in registry.grids[event.grid_id].workers
            elif action == "comment":
                assert start == end != "closed"
                assert worker in registry.grids[event.grid_id].workers
            else:
                assert start == end, f"{action} changed the state: {step}"
            if action in ACTIONS:
                acts.append((action, worker, step["note"]))
        assert acts == event.acts, f"history {acts} vs accepted {event.acts}"
        ordered = [STATES.index(step["to_state"]) for step in history]
        assert ordered == sorted(ordered), f"a state moved back: {history}"


# -- structured inputs (hypothesis) --------------------------------------------------------------

_text = st.text(max_size=30)
junk: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(-3, 3) | _text, max_size=3),
    st.dictionaries(_text, st.integers(-3, 3), max_size=2),
    st.sampled_from(NONFINITE + UNKNOWN_TOKENS),
)


def _near_miss(event_id: str, how: int) -> str:
    return (event_id.lower(), event_id[:-1], event_id + "0", event_id[1:] + event_id[0], f" {event_id}")[how]


@dataclass(frozen=True, slots=True)
class Ref:
    """One of the example's events (drawn before its id exists), maybe a near miss of its id."""

    index: int
    near: int | None = None

    def resolve(self, ids: Sequence[str]) -> str:
        event_id = ids[self.index % len(ids)]
        return event_id if self.near is None else _near_miss(event_id, self.near)


_ref = st.builds(Ref, st.integers(0, 15))
event_ids: Final[st.SearchStrategy[object]] = st.one_of(
    _ref,
    _ref,
    _ref,
    st.builds(Ref, st.integers(0, 15), st.integers(0, 4)),
    st.builds(lambda raw: str(ULID.from_bytes(raw)), st.binary(min_size=16, max_size=16)),
    st.sampled_from(("", "x", "0" * 26, "🔥" * 26, "a" * 200)),
    _text,
    junk,
)
"""Ids of the example's events, near misses, unknown ULIDs, empty, long, not strings."""

notes: Final[st.SearchStrategy[object]] = st.one_of(
    st.just(None),
    st.just(""),
    st.text(max_size=60),
    st.builds(
        lambda c, n: c * n,
        st.sampled_from(("x", "é", "🔥", "\u0000", "\n", '"', "\\")),
        st.sampled_from((MAX_NOTE_CHARS - 1, MAX_NOTE_CHARS, MAX_NOTE_CHARS + 1)),
    ),
    junk,
)
"""Notes of every size around the limit (in characters, astral ones too), and not strings."""

_FIELDS: Final = (
    ("event_id", event_ids),
    ("action", st.sampled_from(ACTIONS) | st.sampled_from(ACTIONS) | st.sampled_from(UNKNOWN_ACTIONS) | junk),
    ("note", notes),
)


NEXT: Final = "@next"
"""The action that moves the named event on (``comment`` once it is closed), chosen when it runs."""
NEXT_ACTION: Final = {"open": "ack", "acknowledged": "resolve", "resolved": "close", "closed": "comment"}


def _resolve(value: object, ids: Sequence[str], next_action: str) -> object:
    if isinstance(value, Ref):
        return value.resolve(ids)
    return next_action if value == NEXT else value


@dataclass(frozen=True, slots=True)
class Plan:
    """An ``actions/{worker}`` payload drawn before the example's event ids exist."""

    form: str
    fields: tuple[tuple[str, object], ...] = ()
    raw: bytes = b""
    top: object = None
    ascii_only: bool = False
    target: int = 0
    seed: int = 0

    def event_index(self) -> int:
        """The example event the payload names (its last ``event_id``, as a parser reads it)."""
        refs = [v.index for name, v in self.fields if name == "event_id" and isinstance(v, Ref)]
        return refs[-1] if refs else 0

    def render(self, ids: Sequence[str], next_action: str = "ack") -> bytes:
        if self.form == "raw":
            return self.raw
        if self.form == "top":
            top = self.top
            return dumps([{"event_id": ids[0], "action": "ack"}] if isinstance(top, Ref) else top)
        fields = tuple((name, _resolve(value, ids, next_action)) for name, value in self.fields)
        payload = dumps(Pairs(fields), ascii_only=self.ascii_only)
        if self.form == "oversize":
            padded = dumps(Pairs((*fields, ("pad", ""))), ascii_only=self.ascii_only)
            payload = padded[:-2] + b"x" * max(self.target - len(padded), 0) + padded[-2:]
        elif self.form == "bent":
            payload = mutate(payload, random.Random(self.seed))
        return payload


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    """Mostly an object of the right shape (fields missing, extra, repeated), often bent."""
    form = draw(st.sampled_from(("clean",) * 8 + ("object",) * 5 + ("top", "oversize", "bent", "raw")))
    if form == "clean":  # well-formed: whether it is accepted depends on who, which event, its state
        clean: list[tuple[str, object]] = [
            ("event_id", draw(_ref)),
            ("action", draw(st.sampled_from((NEXT,) * 4 + ACTIONS))),
        ]
        if draw(st.booleans()):
            clean.append(("note", draw(st.none() | st.text(max_size=60))))
        return Plan(form, tuple(clean), ascii_only=draw(st.booleans()))
    if form == "raw":
        return Plan(form, raw=draw(st.binary(max_size=200)))
    if form == "top":
        return Plan(form, top=draw(junk | st.just(Ref(0))))
    fields: list[tuple[str, object]] = []
    for name, values in _FIELDS:
        if draw(st.integers(0, 9)) == 0:
            continue  # missing
        fields.append((name, draw(values)))
    for _ in range(draw(st.integers(0, 2))):
        if draw(st.booleans()):
            fields.append((draw(_text), draw(junk)))
        elif fields:
            name, _ = fields[draw(st.integers(0, len(fields) - 1))]
            fields.insert(draw(st.integers(0, len(fields))), (name, draw(junk | event_ids)))
    if draw(st.booleans()):
        draw(st.randoms(use_true_random=False)).shuffle(fields)
    target = draw(st.sampled_from((MAX_ACTION_BYTES - 1, MAX_ACTION_BYTES, MAX_ACTION_BYTES + 1)))
    return Plan(
        form, tuple(fields), ascii_only=draw(st.booleans()), target=target, seed=draw(st.integers(0, 2**32))
    )


TOPIC_FORMS: Final = ("actions/{}",) * 14 + (
    "actions/{}/result",
    "action/{}",
    "t1/actions/{}",
    "actions/",
    "actions",
    "/actions/{}",
)
"""Mostly ``actions/{worker}``; sometimes a topic the store must leave alone."""


GRID_WORKER: Final = "@grid"
"""A worker of the grid of the event the payload names (resolved when the events exist)."""
SUPERVISOR: Final = "@supervisor"
RIGHT: Final = "@right"
"""Whoever may do the event's next action: the supervisor to close, else a worker of its grid."""


@dataclass(frozen=True, slots=True)
class Step:
    worker: str
    topic_form: str
    plan: Plan

    def resolve(self, registry: Registry, events: Sequence[EventModel]) -> tuple[str, bytes]:
        """(topic, payload) against the example's events."""
        event = events[self.plan.event_index() % len(events)]
        next_action = NEXT_ACTION[event.state]
        worker = self.worker
        if worker == RIGHT:
            worker = SUPERVISOR if next_action == "close" else GRID_WORKER
        if worker == GRID_WORKER:
            worker = grid_worker(registry, event)
        elif worker == SUPERVISOR:
            worker = supervisor(registry)
        return self.topic_form.format(worker), self.plan.render([e.event_id for e in events], next_action)


def steps(registry: Registry) -> st.SearchStrategy[Step]:
    """One action: by the right people, other known workers, unknown or invalid ones, on a
    (mostly) action topic."""
    right = st.sampled_from((RIGHT, RIGHT, GRID_WORKER, SUPERVISOR))
    known = st.sampled_from(sorted(registry.workers))
    others = st.one_of(known, st.sampled_from(UNKNOWN_WORKERS), st.sampled_from(BAD_WORKERS), _text)
    worker = st.one_of(right, others)
    return st.builds(Step, worker, st.sampled_from(TOPIC_FORMS), plans())


# -- random bytes ----------------------------------------------------------------------------------


def random_action(rng: random.Random, registry: Registry, events: Sequence[EventModel]) -> tuple[str, bytes]:
    """(topic, payload): random bytes, or a well-formed action (often bent at random), by anyone."""
    live = [e for e in events if e.state != "closed"]
    event = rng.choice(live if live and rng.random() < 0.8 else events)
    action = NEXT_ACTION[event.state] if rng.random() < 0.5 else rng.choice(ACTIONS)
    roll = rng.random()
    if roll < 0.5:
        worker = supervisor(registry) if action == "close" else grid_worker(registry, event)
    elif roll < 0.7:
        worker = rng.choice(sorted(registry.workers))
    elif roll < 0.8:
        worker = rng.choice(UNKNOWN_WORKERS + BAD_WORKERS)
    else:
        worker = random_bytes(rng)[:20].decode("utf-8", errors="replace")
    topic = TOPICS.actions(worker)
    if rng.random() < 0.3:
        return topic, random_bytes(rng)
    document: dict[str, object] = {"event_id": event.event_id, "action": action}
    if rng.random() < 0.5:
        document["note"] = rng.choice(("", "on my way", "🔥" * rng.randrange(1, 50)))
    payload = dumps(document)
    return topic, payload if rng.random() < 0.5 else mutate(payload, rng)


def fresh_events(
    store: EventStore, registry: Registry, rng: random.Random, count: int, now_ms: int
) -> Iterator[EventModel]:
    for _ in range(count):
        device_id = rng.choice(sorted(registry.slot_of))
        severity: Severity = rng.choice(("minor", "major", "critical"))
        event = raise_event(store, registry, device_id, severity, now_ms)
        drive(store, registry, event, rng.choice(STATES), now_ms)
        yield event
