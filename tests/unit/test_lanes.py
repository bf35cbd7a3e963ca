"""The alarm lane (ingest/_lanes.py): the inbox serves alarms first, the alarm topics are exactly
the broker's matches of the alarm lane's filters, and of two copies only the first is processed."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
from hypothesis import given
from hypothesis import strategies as st

from devices import Topics
from ingest import ALARM_LANE, READINGS_LANE, AlarmTopics, Inbox, InMessage, LaneTwins, alarm_subscriptions


def message(mid: int, topic: str, payload: bytes = b"{}", lane: int = READINGS_LANE) -> InMessage:
    return InMessage(mid, 1, topic, payload, 0, 1, lane)


def test_inbox_serves_waiting_alarms_before_older_readings() -> None:
    inbox = Inbox()
    for mid in range(10):
        inbox.put(message(mid, "fire/D01/electrical/E1"))
    inbox.put(message(100, "fire/D01/smoke/S1", lane=ALARM_LANE))
    inbox.put(message(101, "fire/D01/smoke/S2", lane=ALARM_LANE))
    assert len(inbox) == 12
    assert [m.mid for m in inbox.take(5, timeout=0)] == [100, 101]  # a batch of their own
    assert [m.mid for m in inbox.take(5, timeout=0)] == [0, 1, 2, 3, 4]
    inbox.put(message(102, "fire/D01/smoke/S1", lane=ALARM_LANE))
    assert [m.mid for m in inbox.take(5, timeout=0)] == [102]
    assert [m.mid for m in inbox.take(100, timeout=0)] == [5, 6, 7, 8, 9]
    assert inbox.take(100, timeout=0) == []


def test_inbox_wakes_the_pipeline_for_an_alarm() -> None:
    inbox = Inbox()
    taken: list[list[InMessage]] = []
    thread = threading.Thread(target=lambda: taken.append(inbox.take(10, timeout=30)))
    thread.start()
    inbox.put(message(1, "fire/D01/smoke/S1", lane=ALARM_LANE))
    thread.join(30)
    assert not thread.is_alive()
    assert [m.mid for m in taken[0]] == [1]


_LEVEL = st.sampled_from(["fire", "D01", "D02", "smoke", "water", "electrical", "S1", "", "smoke2", "x"])


@given(
    levels=st.lists(_LEVEL, min_size=1, max_size=5),
    prefix=st.sampled_from(["", "t1/"]),
    kinds=st.sets(st.sampled_from(["smoke", "water"]), min_size=1),
    districts=st.sampled_from([(), ("D01",), ("D01", "D02")]),
)
def test_alarm_topics_are_the_brokers_matches_of_the_alarm_filters(
    levels: list[str], prefix: str, kinds: set[str], districts: tuple[str, ...]
) -> None:
    topic = prefix + "/".join(levels)
    topics = Topics(prefix)
    filters = alarm_subscriptions(topics, kinds, districts)
    expected = any(mqtt.topic_matches_sub(f, topic) for f in filters)
    assert (topic in AlarmTopics(topics, kinds, districts)) == expected


ALARMS = AlarmTopics(Topics(""), {"smoke"}, ())


@given(
    stream=st.lists(
        st.tuples(st.sampled_from(["fire/D01/smoke/S1", "fire/D01/smoke/S2"]), st.integers(0, 3)),
        max_size=30,
    ),
    order=st.lists(st.booleans(), max_size=60),
    batch=st.integers(1, 7),
)
def test_twins_process_each_message_once_in_the_order_published(
    stream: list[tuple[str, int]], order: list[bool], batch: int
) -> None:
    """Both lanes carry the same messages in the same order, interleaved anyhow and cut into
    batches anyhow: the processed messages are the stream itself, equal messages included."""
    published = [(topic, b'{"seq": %d}' % seq) for topic, seq in stream]
    lanes = {READINGS_LANE: list(published), ALARM_LANE: list(published)}
    arrivals: list[InMessage] = []
    choices = iter(order)
    while lanes[READINGS_LANE] or lanes[ALARM_LANE]:
        lane = ALARM_LANE if next(choices, True) else READINGS_LANE
        if not lanes[lane]:
            lane = 1 - lane
        topic, payload = lanes[lane].pop(0)
        arrivals.append(message(len(arrivals), topic, payload, lane))
    twins = LaneTwins(ALARMS)
    processed: list[InMessage] = []
    for start in range(0, len(arrivals), batch):
        processed.extend(twins.first_copies(arrivals[start : start + batch]))
    assert [(m.topic, m.payload) for m in processed] == published
    assert twins.twins == len(published)
    assert len(twins) == 0


def test_readings_of_other_kinds_pass_untouched() -> None:
    twins = LaneTwins(ALARMS)
    batch = [message(i, f"fire/D01/electrical/E{i}") for i in range(5)]
    assert twins.first_copies(batch) is batch
    assert len(twins) == 0


def test_twins_forget_the_oldest_first_copies_beyond_capacity() -> None:
    twins = LaneTwins(ALARMS, capacity=3)
    first = [message(i, "fire/D01/smoke/S1", b"%d" % i, ALARM_LANE) for i in range(5)]
    assert twins.first_copies(first) is first
    assert len(twins) == 3
    late = [message(10 + i, "fire/D01/smoke/S1", b"%d" % i) for i in range(5)]
    again = [m.payload for m in twins.first_copies(late)]
    # 0 and 1 were forgotten: processed again (the seq dedup drops them), never lost
    assert again[:2] == [b"0", b"1"]
    assert len(twins) <= 3
    assert twins.twins + len(again) == 5
