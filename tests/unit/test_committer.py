"""The commit stage: durable before acked, in order; batches merge behind a slow write."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from ingest import Committer
from ingest._pipeline import InMessage
from tests.helpers import eventually


def message(mid: int) -> InMessage:
    return InMessage(mid=mid, qos=1, topic="t", payload=b"", received_ms=0, generation=1)


class GatedStore:
    """A store whose writes wait until the test opens the gate; records every put."""

    def __init__(self, fail: bool = False) -> None:
        self.puts: list[list[str]] = []
        self.gate = threading.Event()
        self.writing = threading.Event()
        self.fail = fail

    def put(self, lines: list[str]) -> None:
        self.writing.set()
        self.gate.wait(20)
        if self.fail:
            raise RuntimeError("disk full")
        self.puts.append(list(lines))


class Recorder:
    def __init__(self) -> None:
        self.acked: list[int] = []
        self.fatal: list[BaseException] = []

    def ack(self, messages: Sequence[InMessage]) -> None:
        self.acked.extend(m.mid for m in messages)

    def on_fatal(self, exc: BaseException) -> None:
        self.fatal.append(exc)


def test_batches_behind_a_write_merge_and_ack_in_order() -> None:
    store, rec = GatedStore(), Recorder()
    committer = Committer(store, rec.ack, rec.on_fatal)
    committer.start()
    committer.submit(["a"], [message(1)])
    eventually(store.writing.is_set, what="first write started")
    for mid in (2, 3, 4):  # none of these block although the write is stuck
        committer.submit([f"l{mid}"], [message(mid)])
    assert rec.acked == []  # not durable yet
    store.gate.set()
    committer.close()
    assert store.puts == [["a"], ["l2", "l3", "l4"]]
    assert rec.acked == [1, 2, 3, 4]
    assert committer.pending_lines == 0


def test_merging_stops_at_merge_lines() -> None:
    store, rec = GatedStore(), Recorder()
    committer = Committer(store, rec.ack, rec.on_fatal, merge_lines=3)
    committer.start()
    committer.submit(["x"], [message(0)])
    eventually(store.writing.is_set, what="first write started")
    for mid in range(1, 5):
        committer.submit([f"a{mid}", f"b{mid}"], [message(mid)])
    store.gate.set()
    committer.close()
    assert [len(p) for p in store.puts] == [1, 2, 2, 2, 2]
    assert rec.acked == [0, 1, 2, 3, 4]


def test_submit_blocks_when_max_pending_lines_wait() -> None:
    store, rec = GatedStore(), Recorder()
    committer = Committer(store, rec.ack, rec.on_fatal, max_pending=2)
    committer.start()
    committer.submit(["first"], [message(0)])
    eventually(store.writing.is_set, what="first write started")
    committer.submit(["p1", "p2"], [message(1)])  # now 2 lines wait
    returned = threading.Event()

    def third() -> None:
        committer.submit(["p3"], [message(2)])
        returned.set()

    thread = threading.Thread(target=third)
    thread.start()
    assert not returned.wait(0.3)  # back-pressure: held while the write is stuck
    store.gate.set()
    eventually(returned.is_set, what="submit released once the write finished")
    thread.join()
    committer.close()
    assert rec.acked == [0, 1, 2]


def test_an_alarm_batch_is_queued_without_waiting_and_written_first() -> None:
    store, rec = GatedStore(), Recorder()
    committer = Committer(store, rec.ack, rec.on_fatal, max_pending=2)
    committer.start()
    committer.submit(["first"], [message(0)])
    eventually(store.writing.is_set, what="first write started")
    committer.submit(["p1", "p2"], [message(1)])
    assert not committer.has_room
    committer.submit(["alarm"], [message(2)], urgent=True)  # returns although full: no thread needed
    committer.submit(["event"], [], wait=False)
    store.gate.set()
    committer.close()
    assert store.puts == [["first"], ["alarm"], ["p1", "p2", "event"]]  # the alarm overtakes readings
    assert rec.acked == [0, 2, 1]
    assert committer.has_room


def test_a_failed_write_is_fatal_and_acks_nothing() -> None:
    store, rec = GatedStore(fail=True), Recorder()
    committer = Committer(store, rec.ack, rec.on_fatal)
    committer.start()
    committer.submit(["a"], [message(1)])
    committer.submit(["b"], [message(2)])
    store.gate.set()
    eventually(lambda: rec.fatal, what="fatal reported")
    committer.submit(["c"], [message(3)])  # returns at once: the service is stopping
    committer.close()
    assert rec.acked == []
    assert str(rec.fatal[0]) == "disk full"


@pytest.mark.parametrize("lines", [[], ["only-lines"]])
def test_batches_without_lines_or_messages_still_commit(lines: list[str]) -> None:
    store, rec = GatedStore(), Recorder()
    store.gate.set()
    committer = Committer(store, rec.ack, rec.on_fatal)
    committer.start()
    committer.submit(lines, [message(7)] if not lines else [])
    committer.close()
    assert rec.acked == ([7] if not lines else [])
    assert store.puts == ([lines] if lines else [[]])


def test_batches_within_the_linger_share_one_write() -> None:
    store, rec = GatedStore(), Recorder()
    store.gate.set()
    committer = Committer(store, rec.ack, rec.on_fatal, linger_s=30)
    committer.start()
    for mid in range(3):
        committer.submit([f"l{mid}"], [message(mid)])
    assert rec.acked == []  # lingering for company
    committer.close()  # closing flushes at once
    assert store.puts == [["l0", "l1", "l2"]]
    assert rec.acked == [0, 1, 2]


def test_a_lone_batch_is_written_after_the_linger() -> None:
    store, rec = GatedStore(), Recorder()
    store.gate.set()
    committer = Committer(store, rec.ack, rec.on_fatal, linger_s=0.05)
    committer.start()
    committer.submit(["alone"], [message(1)])
    eventually(lambda: rec.acked == [1], timeout=5, what="acked without close")
    assert store.puts == [["alone"]]
    committer.close()


def test_a_full_merge_does_not_linger() -> None:
    store, rec = GatedStore(), Recorder()
    store.gate.set()
    committer = Committer(store, rec.ack, rec.on_fatal, linger_s=30, merge_lines=2)
    committer.start()
    committer.submit(["a", "b"], [message(1)])
    eventually(lambda: rec.acked == [1], timeout=5, what="a full write goes at once")
    committer.close()
