"""The demo's traffic: the scenario, then background traffic until stopped, on a thread of its own."""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path
from typing import Any

from rich.console import Console

from devices import FiregridError
from firegrid._demo_summary import TrafficTotals
from simulators import RunOptions, RunSummary, ScenarioError, run_traffic

BACKGROUND_CHUNK_S = 3600.0
"""After the scenario: background traffic in runs of this length, until the end."""


class DemoTraffic(threading.Thread):
    """Runs ``scenario``, then background traffic, until ``stop_event`` is set.

    It never raises: a failure ends the thread with ``error`` set, for the main thread to report.
    """

    def __init__(
        self,
        registry: Path,
        url: str,
        rate: float,
        scenario: str,
        seed: int,
        *,
        credentials: Path | None = None,
        humans: frozenset[str] = frozenset(),
    ) -> None:
        """``credentials``: where the workers' passwords are, for the scenario's simulated workers
        (its ``respond:`` block); ``humans``: the workers people play, whose grids are left to them."""
        super().__init__(name="simulator", daemon=True)
        self.credentials = credentials
        self.humans = humans
        self.registry = registry
        self.url = url
        self.rate = rate
        self.scenario = scenario
        self.seed = seed
        self.stop_event = threading.Event()
        self.error: str | None = None
        self.phase = "starting"
        self.sent = 0
        """Messages sent so far (updated while a run goes on)."""
        self._summaries: list[RunSummary] = []
        self._done = 0

    def _on_block(self, sent: int) -> None:
        self.sent = self._done + sent

    def _run_once(self, options: RunOptions) -> None:
        summary = run_traffic(
            options, console=Console(stderr=True, quiet=True), stop=self.stop_event, on_block=self._on_block
        )
        self._summaries.append(summary)
        self._done += summary.sent
        self.sent = self._done

    def run(self) -> None:
        common: dict[str, Any] = {
            "registry": self.registry,
            "url": self.url,
            "rate": self.rate,
            "seed": self.seed,
            "progress": False,
            "client_id": f"firegrid-demo-sim-{os.getpid()}",
        }
        try:
            self.phase = f"scenario {self.scenario}"
            respond = None if self.credentials is not None else False
            self._run_once(
                RunOptions(
                    scenario=self.scenario,
                    respond=respond,
                    respond_credentials=self.credentials,
                    respond_humans=self.humans,
                    **common,
                )
            )
            while not self.stop_event.is_set():
                self.phase = "background traffic"
                background = RunOptions(duration=BACKGROUND_CHUNK_S, time_scale=1.0, respond=False, **common)
                self._run_once(background)
        except (FiregridError, ScenarioError, ConnectionError, OSError, ValueError) as exc:
            self.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        except Exception as exc:  # reported by the main thread, which stops everything
            self.error = f"simulator failed: {type(exc).__name__}: {exc}"
        finally:
            self.phase = "stopped"

    def stop(self, timeout: float) -> None:
        """Ask the current run to end and wait up to ``timeout`` for the thread."""
        self.stop_event.set()
        if self.is_alive():
            self.join(timeout)

    def totals(self) -> TrafficTotals:
        per_kind: collections.Counter[str] = collections.Counter()
        warnings: list[str] = []
        for summary in self._summaries:
            per_kind.update(summary.per_kind)
            warnings.extend(
                w for w in summary.warnings if w not in warnings and not w.startswith("interrupted")
            )
        return TrafficTotals(self.sent, dict(sorted(per_kind.items())), tuple(warnings))
