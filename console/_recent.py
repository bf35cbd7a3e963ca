"""Answers of ingest kept for a short time, so that many page views cost one request.

:class:`Recent` keeps each key's answer for ``ttl_s`` seconds of its clock. Requests for a key
that arrive while its answer is being fetched wait for that one fetch instead of starting their
own. A failed fetch is not kept: each of its waiters gets the error, the next request tries again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _retrieve(flight: asyncio.Future[Any]) -> None:
    """Mark a failure as seen even when every waiter has gone (no "never retrieved" warning)."""
    if not flight.cancelled():
        flight.exception()


class Recent(Generic[K, V]):
    def __init__(
        self, ttl_s: float, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 1024
    ) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._max_keys = max_keys
        self._kept: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._flights: dict[K, asyncio.Future[V]] = {}
        self.fetches = 0
        """Fetches started (for tests and curiosity)."""

    def __len__(self) -> int:
        return len(self._kept)

    async def get(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        """The kept answer for ``key`` if younger than ``ttl_s``, else ``fetch()``'s (shared)."""
        kept = self._kept.get(key)
        if kept is not None and self._clock() - kept[0] < self.ttl_s:
            return kept[1]
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._fetch(key, fetch))
            flight.add_done_callback(_retrieve)
            self._flights[key] = flight
        return await asyncio.shield(flight)

    async def _fetch(self, key: K, fetch: Callable[[], Awaitable[V]]) -> V:
        self.fetches += 1
        try:
            value = await fetch()
        finally:
            del self._flights[key]
        self._kept[key] = (self._clock(), value)
        self._kept.move_to_end(key)
        while len(self._kept) > self._max_keys:
            self._kept.popitem(last=False)
        return value

    def clear(self) -> None:
        self._kept.clear()
