"""Worker actions (CONTRACT §8): parsing ``actions/{worker_id}`` payloads and the lifecycle rules.

Rules chosen where the contract leaves room:

* ``ack``, ``resolve`` and ``comment`` need a worker assigned to the event's grid (a supervisor
  listed in the grid counts as one of its workers);
* ``close`` (the verification) needs a supervisor, *any* supervisor of the registry: supervisors
  cover blocks of grids and need not be listed in each grid;
* the order is strict: ``ack`` only from ``open``, ``resolve`` only from ``acknowledged``
  (acknowledge first: every event has someone who took it), ``close`` only from ``resolved``;
  a ``comment`` is allowed in every state but ``closed`` (the archive is final) and does not
  change the event (it is kept in the history only);
* anything refused gets ``ok: false`` and a readable ``error``; nothing is changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

from alerts._event import Event, State
from devices import Registry, is_identifier

ACTIONS: Final[tuple[str, ...]] = ("ack", "resolve", "close", "comment")
MAX_ACTION_BYTES: Final = 64 * 1024
MAX_NOTE_CHARS: Final = 4000

MOVES: Final[dict[str, tuple[State, State]]] = {
    "ack": ("open", "acknowledged"),
    "resolve": ("acknowledged", "resolved"),
    "close": ("resolved", "closed"),
}
"""action → (required state, new state)."""

_HINT: Final[dict[str, str]] = {
    "ack": "only an open event can be acknowledged",
    "resolve": "acknowledge it first",
    "close": "resolve it first",
}


@dataclass(frozen=True, slots=True)
class ActionResult:
    """The answer published to ``actions/{worker_id}/result``."""

    event_id: str | None
    action: str | None
    ok: bool
    error: str | None = None
    at: int | None = None
    """When the change took effect (service time, the transition's ``at_ms``); None when refused.
    An extension of CONTRACT §8: a worker's client learns the time its history shows."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "action": self.action,
            "ok": self.ok,
            "error": self.error,
            "at": self.at,
        }


@dataclass(frozen=True, slots=True)
class ActionRequest:
    event_id: str
    action: str
    note: str | None


def parse_action(payload: bytes | bytearray) -> ActionRequest | ActionResult:
    """The request, or a refusal (an :class:`ActionResult` with ``ok`` false)."""
    if len(payload) > MAX_ACTION_BYTES:
        return ActionResult(None, None, False, f"payload larger than {MAX_ACTION_BYTES} bytes")
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return ActionResult(None, None, False, f"not valid JSON: {exc}")
    if not isinstance(document, dict):
        return ActionResult(None, None, False, "payload must be a JSON object")
    event_id, action, note = document.get("event_id"), document.get("action"), document.get("note")
    echo_id = event_id if isinstance(event_id, str) else None
    echo_action = action if isinstance(action, str) else None
    if not isinstance(event_id, str) or not event_id:
        return ActionResult(echo_id, echo_action, False, "event_id missing or not a string")
    if not isinstance(action, str):
        return ActionResult(
            echo_id, None, False, f"action missing or not a string (one of {', '.join(ACTIONS)})"
        )
    if action not in ACTIONS:
        return ActionResult(
            echo_id, echo_action, False, f"unknown action {action!r} (one of {', '.join(ACTIONS)})"
        )
    if note is not None and not isinstance(note, str):
        return ActionResult(echo_id, echo_action, False, "note must be a string")
    if note is not None and len(note) > MAX_NOTE_CHARS:
        return ActionResult(echo_id, echo_action, False, f"note longer than {MAX_NOTE_CHARS} characters")
    return ActionRequest(event_id, action, note or None)


def check_worker(registry: Registry, worker_id: str) -> str | None:
    if not is_identifier(worker_id):
        return f"invalid worker_id {worker_id[:80]!r}"
    if worker_id not in registry.workers:
        return f"unknown worker {worker_id}"
    return None


def refusal(registry: Registry, worker_id: str, request: ActionRequest, event: Event) -> str | None:
    """Why ``worker_id`` may not do ``request`` on ``event`` now, or None if it may."""
    action = request.action
    if action == "close":
        worker = registry.workers[worker_id]
        if not worker.is_supervisor:
            return f"only a supervisor may close an event; {worker_id} is a {worker.role}"
    else:
        grid = registry.grids.get(event.grid_id)
        if grid is None or worker_id not in grid.workers:
            return f"worker {worker_id} is not assigned to grid {event.grid_id}"
    if action == "comment":
        return "event is closed" if event.state == "closed" else None
    required, _ = MOVES[action]
    if event.state != required:
        return f"cannot {action} an event that is {event.state}: {_HINT[action]}"
    return None
