"""Rule-state snapshots on disk: atomic saves, loads, and saving in the background.

A snapshot of 1,000,000 devices is ~100 MB. Building it as bytes and writing them on the pipeline
thread stalled alerts for 0.2–0.4 s every 5 s (bench/bench_rules.py); :class:`SnapshotWriter`
copies the state arrays into buffers it keeps (~20 ms at that size) and writes them from its own
thread, which holds the GIL little (file writes and CRCs of large buffers release it).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from rules._family import Array

log = logging.getLogger(__name__)


def save_snapshot(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename)."""
    _atomic_write(path, lambda handle: handle.write(data))


def load_snapshot(path: Path) -> bytes | None:
    """The bytes saved at ``path``, or None when there is no snapshot yet."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


class SnapshotWriter:
    """Saves :meth:`rules.RuleEngine.snapshot_arrays` to ``path`` from a thread of its own.

    :meth:`save` copies the arrays (the engine may run on at once) and returns; a save asked for
    while the previous one is still writing is skipped (the next one catches up). :meth:`flush`
    waits for the write in progress.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._buffers: dict[str, Array] = {}
        self._idle = threading.Event()
        self._idle.set()
        self.failures = 0

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    def save(self, arrays: dict[str, Array]) -> bool:
        """Start saving a copy of ``arrays``; False when the previous save is still writing."""
        if self.busy:
            return False
        copies = {name: self._copy(name, values) for name, values in arrays.items()}
        self._buffers = copies
        self._idle.clear()
        threading.Thread(target=self._write, args=(copies,), name="snapshot", daemon=True).start()
        return True

    def save_now(self, arrays: dict[str, Array]) -> None:
        """Save on the calling thread (at a clean stop), after any write in progress."""
        self.flush()
        self._write_file(arrays)

    def flush(self, timeout: float = 60.0) -> None:
        self._idle.wait(timeout)

    def _copy(self, name: str, values: Array) -> Array:
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != values.shape or buffer.dtype != values.dtype:
            return values.copy()
        np.copyto(buffer, values)  # into the last save's buffer: no fresh pages to fault in
        return buffer

    def _write(self, arrays: dict[str, Array]) -> None:
        try:
            self._write_file(arrays)
        except OSError as exc:
            self.failures += 1
            log.error("rule state snapshot %s not saved: %s", self.path, exc)
        finally:
            self._idle.set()

    def _write_file(self, arrays: dict[str, Array]) -> None:
        _atomic_write(self.path, lambda handle: np.savez(handle, allow_pickle=False, **arrays))
