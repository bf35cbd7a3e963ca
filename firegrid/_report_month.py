"""The month of ``firegrid report`` (UTC): parsing ``YYYY-MM`` and the times it is evaluated at."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

DAY_MS: Final = 86_400_000
_MONTH: Final = re.compile(r"(?P<year>\d{4})-(?P<month>\d{2})")


def _epoch_ms(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * 1000


@dataclass(frozen=True, slots=True)
class Month:
    """A calendar month in UTC (the days of ``grid_sla``)."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str, now_ms: int) -> Month:
        """``YYYY-MM`` of a month that has begun by ``now_ms``; ``ValueError`` (one readable line)
        otherwise."""
        match = _MONTH.fullmatch(text)
        if match is None or not 1 <= int(match["month"]) <= 12 or int(match["year"]) < 1970:
            raise ValueError(f"month must be YYYY-MM (e.g. 2025-03), not {text!r}")
        month = cls(int(match["year"]), int(match["month"]))
        if month.start_ms > now_ms:
            raise ValueError(f"month {text} lies in the future")
        return month

    @property
    def start_ms(self) -> int:
        return _epoch_ms(self.year, self.month)

    @property
    def end_ms(self) -> int:
        """The start of the next month (excluded)."""
        return _epoch_ms(self.year + self.month // 12, self.month % 12 + 1)

    @property
    def days(self) -> int:
        return (self.end_ms - self.start_ms) // DAY_MS

    @property
    def label(self) -> str:
        """``March 2025``."""
        return datetime(self.year, self.month, 1, tzinfo=UTC).strftime("%B %Y")

    @property
    def text(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def cut_ms(self, now_ms: int) -> int:
        """The month's end, or ``now_ms`` while it is still running."""
        return min(self.end_ms, now_ms)

    def running(self, now_ms: int) -> bool:
        return now_ms < self.end_ms

    def day_ends(self, now_ms: int) -> list[int]:
        """The end of each day of the month up to ``now_ms``, and ``now_ms`` itself while the month
        is running (the trend's points; the last one is :meth:`cut_ms`)."""
        cut = self.cut_ms(now_ms)
        ends = list(range(self.start_ms + DAY_MS, cut + 1, DAY_MS))
        if not ends or ends[-1] != cut:
            ends.append(cut)
        return ends
