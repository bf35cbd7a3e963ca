"""Two lanes from the broker to the pipeline, so that alarms never wait behind readings (issue 17).

When firegrid falls behind (a storm, a backlog after an outage), readings queue twice in FIFO
order: in the broker's session beyond the Receive Maximum, and in the inbox. A smoke alarm at
the back of either waits for every reading ahead of it. So ingest holds a second persistent
session, the *alarm lane*, subscribed to the alarm kinds' topics only (``fire/{district}/smoke/#``
by default, ``FIREGRID_ALARM_KINDS``): 2 % of a district's traffic, with its own in-flight window
in the broker and its own queue in the :class:`Inbox`, which the pipeline always serves first.

The readings lane keeps ``fire/#``: nothing depends on the alarm lane being there (its session
may be new, down, or lost with a broker that forgot its sessions), and messages on malformed
topics still reach the rejects. So every alarm message arrives twice. The first copy, on
whichever lane, is processed; :class:`LaneTwins` recognises the second and it is acknowledged
unprocessed. Both sessions receive the same messages in the same order, so taking each message's
first copy keeps every device's order (MQTT §4.6 orders the messages of one topic). Acks stay in
arrival order per session, which is what MQTT-4.6.0-2 asks: each lane acks only its own.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict, deque
from collections.abc import Collection, Sequence

from devices import Topics
from ingest._pipeline import InMessage

READINGS_LANE = 0
ALARM_LANE = 1
TWINS_CAPACITY = 200_000
"""First copies remembered while their twin is on its way. The readings lane may lag minutes
behind in a backlog (at 2 % alarms, a 10-minute lag at 15,000 msg/s is ~180,000 of them); a twin
arriving after its entry was evicted is processed again and dropped as a duplicate by (device,
seq), counted as one."""


class Inbox:
    """Messages from the network threads to the pipeline thread: one queue per lane."""

    def __init__(self) -> None:
        self._lanes: tuple[deque[InMessage], deque[InMessage]] = (deque(), deque())
        self._ready = threading.Event()
        """Set while any lane may hold messages."""
        self._alarms_ready = threading.Event()
        """Set while the alarm lane may hold messages."""

    def put(self, message: InMessage) -> None:
        self._lanes[message.lane].append(message)
        if message.lane == ALARM_LANE and not self._alarms_ready.is_set():
            self._alarms_ready.set()
        if not self._ready.is_set():
            self._ready.set()

    def __len__(self) -> int:
        return len(self._lanes[READINGS_LANE]) + len(self._lanes[ALARM_LANE])

    def take(self, max_messages: int, timeout: float, *, readings: bool = True) -> list[InMessage]:
        """The waiting alarms, if any (a batch of their own: their alerts go out before the
        readings' batch is decoded); otherwise the oldest readings; at most ``max_messages``.
        ``readings=False``: alarms only (while the readings wait for room downstream); waits
        ``timeout`` for one."""
        queued_readings, alarms = self._lanes
        ready = self._ready if readings else self._alarms_ready
        if not alarms and not (readings and queued_readings):
            ready.wait(timeout)
        ready.clear()
        batch = self._pop(alarms if alarms or not readings else queued_readings, max_messages)
        if alarms or (readings and queued_readings):
            ready.set()
        return batch

    @staticmethod
    def _pop(queue: deque[InMessage], max_messages: int) -> list[InMessage]:
        return [queue.popleft() for _ in range(min(max_messages, len(queue)))]

    def wake(self) -> None:
        self._ready.set()
        self._alarms_ready.set()


def alarm_subscriptions(topics: Topics, kinds: Collection[str], districts: Sequence[str]) -> list[str]:
    """The alarm lane's topic filters: ``fire/{district}/{kind}/#`` (``+`` for every district)."""
    head = _readings_head(topics)
    return [f"{head}{district}/{kind}/#" for district in districts or ("+",) for kind in sorted(kinds)]


def _readings_head(topics: Topics) -> str:
    return topics.readings_subscription.removesuffix("#")  # "fire/" with the prefix


class AlarmTopics:
    """Whether a topic matches the alarm lane's filters (the same set as the broker's matching of
    :func:`alarm_subscriptions`, ``fire/D01/smoke`` itself included, as ``#`` includes its parent)."""

    def __init__(self, topics: Topics, kinds: Collection[str], districts: Sequence[str]) -> None:
        self._head = _readings_head(topics)
        self._kinds = frozenset(kinds)
        self._districts = frozenset(districts) or None
        self.may_match = re.compile("|".join(f"/{re.escape(kind)}" for kind in sorted(kinds))).search
        """False (None) for most topics that are not the lane's, at the cost of one C call."""

    def __contains__(self, topic: str) -> bool:
        if not self.may_match(topic):
            return False
        if not topic.startswith(self._head):
            return False
        parts = topic[len(self._head) :].split("/", 2)
        return (
            len(parts) >= 2
            and parts[1] in self._kinds
            and (self._districts is None or parts[0] in self._districts)
        )


class LaneTwins:
    """Tells the first copy of a message that reaches both lanes from the second one.

    Used by the pipeline thread only. Key: topic and payload bytes; two genuinely equal messages
    on one lane (a device's retransmission) are both first copies (the duplicate is dropped
    later, by seq), each waiting for its own twin.
    """

    def __init__(self, alarm_topics: AlarmTopics, capacity: int = TWINS_CAPACITY) -> None:
        self._alarm_topics = alarm_topics
        self._capacity = capacity
        self._waiting: OrderedDict[tuple[str, bytes], tuple[int, int]] = OrderedDict()
        """First copies whose twin has not arrived: key → (lane they came on, how many)."""
        self.twins = 0
        """Second copies recognised (acknowledged unprocessed)."""

    def __len__(self) -> int:
        return len(self._waiting)

    def first_copies(self, messages: Sequence[InMessage]) -> Sequence[InMessage]:
        """``messages`` without the second copies (``messages`` itself when it has none)."""
        alarm_topics, may_match = self._alarm_topics, self._alarm_topics.may_match
        # the candidates in one pass: most of a readings batch is neither lane's alarm topic
        candidates = [i for i, m in enumerate(messages) if m.lane or may_match(m.topic)]
        seconds = [
            i
            for i in candidates
            if (messages[i].lane or messages[i].topic in alarm_topics) and not self._first(messages[i])
        ]
        if not seconds:
            return messages
        dropped = set(seconds)
        return [m for i, m in enumerate(messages) if i not in dropped]

    def _first(self, message: InMessage) -> bool:
        waiting = self._waiting
        key = (message.topic, message.payload)
        entry = waiting.get(key)
        if entry is not None and entry[0] != message.lane:  # the twin of a first copy
            self.twins += 1
            if entry[1] == 1:
                del waiting[key]
            else:
                waiting[key] = (entry[0], entry[1] - 1)
            return False
        waiting[key] = (message.lane, 1 if entry is None else entry[1] + 1)
        if len(waiting) > self._capacity:
            waiting.popitem(last=False)
        return True
