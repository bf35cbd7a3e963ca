"""Events and their lifecycle (CONTRACT §7 dedup, §8): store, routing, escalation, worker actions.

Typical use by the service::

    store = EventStore.open(settings.data_dir, registry, mqtt_client, topic_prefix=prefix)
    out = store.process(hits, now_ms)                       # after each rules batch
    out = store.tick(now_ms)                                # when now_ms >= store.next_deadline()
    out = store.flush(now_ms)                               # at a clean stop (close() does it too)
    out = store.handle_action(worker_id, payload, now_ms)   # a message on actions/{worker_id}
    durable_store.write(out.lines)                          # the ``events`` points
    store.list_events(state=..., district=..., grid=..., type=..., since_ms=...)  # GET /events
    store.get_event(event_id)                               # GET /events/{id} (with history)
    store.reload(new_registry, now_ms)                      # SIGHUP
"""

from alerts._actions import ACTIONS, MAX_ACTION_BYTES, MAX_NOTE_CHARS, ActionResult, parse_action
from alerts._escalation import DEFAULT_DEADLINES_MS
from alerts._event import EVENT_FIELDS, STATES, Event, State
from alerts._outbox import WINDOW as OUTBOX_WINDOW
from alerts._points import MEASUREMENT
from alerts._routing import Publication, Publisher, nearest_station
from alerts._store import DB_NAME, REPEAT_POINT_MS, REPEAT_WINDOW_MS, EventStore, Outcome

__all__ = [
    "ACTIONS",
    "DB_NAME",
    "DEFAULT_DEADLINES_MS",
    "EVENT_FIELDS",
    "MAX_ACTION_BYTES",
    "MAX_NOTE_CHARS",
    "MEASUREMENT",
    "OUTBOX_WINDOW",
    "REPEAT_POINT_MS",
    "REPEAT_WINDOW_MS",
    "STATES",
    "ActionResult",
    "Event",
    "EventStore",
    "Outcome",
    "Publication",
    "Publisher",
    "State",
    "nearest_station",
    "parse_action",
]
