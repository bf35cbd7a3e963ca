"""Duplicate suppression by (device, seq), with lost-message counting (CONTRACT §4, §5).

Per device slot: the highest seq seen, a 64-bit window of the seqs just below it (as in IPsec
anti-replay) and the ts of the highest seq. A seq far below the window with a *newer* ts is a
device that restarted its counter, not a replay. 24 bytes a device; plain ``array`` because the
hot loop indexes one element at a time, where numpy scalars are several times slower.

Duplicates with the same (device, ts) need no state here: they are the same InfluxDB point.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable

from devices import Reading

WINDOW = 64
_MASK = (1 << WINDOW) - 1


class SeqDeduplicator:
    def __init__(self, slots: int) -> None:
        self.last = array("q", [-1]) * slots
        self.window = array("Q", [0]) * slots
        self.last_ts = array("q", [0]) * slots
        self.duplicates = 0
        self.lost = 0

    def grow(self, slots: int) -> None:
        """Make room for devices added by a registry reload (slots of known devices are stable)."""
        extra = slots - len(self.last)
        if extra > 0:
            self.last.extend(array("q", [-1]) * extra)
            self.window.extend(array("Q", [0]) * extra)
            self.last_ts.extend(array("q", [0]) * extra)

    def filter(self, readings: Iterable[Reading]) -> list[Reading]:
        """The readings that are not duplicates, in their order."""
        kept: list[Reading] = []
        keep = kept.append
        last, window, last_ts = self.last, self.window, self.last_ts
        lost = duplicates = 0  # counted here, added to the attributes once (issue 17)
        width, mask = WINDOW, _MASK
        for reading in readings:
            seq = reading.payload.seq
            if seq is None:
                keep(reading)
                continue
            slot = reading.slot
            top = last[slot]
            if seq > top:
                if top >= 0:
                    shift = seq - top
                    lost += shift - 1
                    window[slot] = ((window[slot] << shift) | 1) & mask if shift < width else 1
                else:
                    window[slot] = 1
                last[slot] = seq
                last_ts[slot] = reading.ts
            elif top - seq < width:
                bit = 1 << (top - seq)
                if window[slot] & bit:
                    duplicates += 1
                    continue
                window[slot] |= bit
                lost -= 1  # a late arrival fills a gap counted as lost
            elif reading.ts > last_ts[slot]:  # the device restarted its counter
                last[slot] = seq
                window[slot] = 1
                last_ts[slot] = reading.ts
            else:
                duplicates += 1
                continue
            keep(reading)
        self.lost += lost
        self.duplicates += duplicates
        return kept
