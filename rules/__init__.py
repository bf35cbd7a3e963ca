"""The rules engine (CONTRACT §7): readings and the service time in, hits out. Pure: no clock, no I/O.

Typical use by the ingest/alerts layer::

    engine = RuleEngine(registry, load_rules(path), now_ms)   # or RuleEngine.restore(...)
    hits = engine.process(readings, now_ms)                   # after each batch
    hits += engine.tick(now_ms)                               # when engine.next_deadline() is due
    hits += engine.tick(now_ms, limit=1_000)                  # a mass silence: see engine.behind
    hits += engine.limited({slot: dropped}, now_ms, 5.0)      # ingest's rate limit dropped messages
"""

from rules._config import RulesConfig, load_rules
from rules._engine import RuleEngine
from rules._hit import (
    EVENT_TYPES,
    RULE_TYPES,
    SERVICE_TYPES,
    SEVERITIES,
    SITE_TYPES,
    Hit,
    HitState,
    Key,
    Severity,
)
from rules._snapshot import SnapshotWriter, load_snapshot, save_snapshot

__all__ = [
    "EVENT_TYPES",
    "RULE_TYPES",
    "SERVICE_TYPES",
    "SEVERITIES",
    "SITE_TYPES",
    "Hit",
    "HitState",
    "Key",
    "RuleEngine",
    "RulesConfig",
    "Severity",
    "SnapshotWriter",
    "load_rules",
    "load_snapshot",
    "save_snapshot",
]
