"""New passwords and their hashes in bulk, on every core.

A province's first ``firegrid credentials`` hashes a million passwords (~60 µs of PBKDF2 each,
GIL-bound in threads), so large amounts are made by a process pool. The pairs are independent of
the principals they go to, so they can be made before the registry has even loaded.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from types import TracebackType
from typing import Final

from access._hashing import ITERATIONS, mint

CHUNK: Final = 5_000
POOL_THRESHOLD: Final = 20_000
"""Below this many, hashing in-process is quicker than starting the pool (~0.4 s: a fresh
interpreter importing firegrid's packages)."""


class PasswordMint:
    """Makes ``(password, hash)`` pairs; a context manager (the pool stops on exit).

    :meth:`prefetch` starts making pairs in the background; :meth:`take` hands them out in
    chunks, making in-process whatever is missing. Pairs made but never taken are dropped.
    """

    def __init__(self, processes: int | None = None, iterations: int = ITERATIONS) -> None:
        self.processes = processes or len(os.sched_getaffinity(0)) or 1
        self.iterations = iterations
        self._pool: ProcessPoolExecutor | None = None
        self._pending: deque[Future[tuple[list[str], list[str]]]] = deque()
        self._in_flight = 0
        self._passwords: deque[str] = deque()
        self._hashes: deque[str] = deque()

    def __enter__(self) -> PasswordMint:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def available(self) -> int:
        """Pairs made or being made and not yet taken."""
        return len(self._passwords) + self._in_flight

    def prefetch(self, count: int) -> None:
        """Make sure ``count`` pairs are made or being made (a pool is used for large counts)."""
        missing = count - self.available
        if missing < POOL_THRESHOLD or self.processes < 2:
            return  # take() makes them in-process when they are needed
        if self._pool is None:
            context = multiprocessing.get_context("spawn")  # safe in a threaded caller, unlike fork
            self._pool = ProcessPoolExecutor(self.processes, mp_context=context)
        while missing > 0:
            size = min(CHUNK, missing)
            self._pending.append(self._pool.submit(mint, size, self.iterations))
            self._in_flight += size
            missing -= size

    def take(self, count: int) -> tuple[list[str], list[str]]:
        """The next ``count`` passwords and their hashes (same order)."""
        while len(self._passwords) < count and self._pending:
            passwords, hashes = self._pending.popleft().result()
            self._in_flight -= len(passwords)
            self._passwords.extend(passwords)
            self._hashes.extend(hashes)
        if len(self._passwords) < count:
            passwords, hashes = mint(count - len(self._passwords), self.iterations)
            self._passwords.extend(passwords)
            self._hashes.extend(hashes)
        return (
            [self._passwords.popleft() for _ in range(count)],
            [self._hashes.popleft() for _ in range(count)],
        )

    def close(self) -> None:
        self._passwords.clear()
        self._hashes.clear()
        self._pending.clear()
        self._in_flight = 0
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
