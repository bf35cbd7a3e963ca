"""Adding a fifth device kind touches its device module, its rules module and the two explicit
lists (``devices/_all.py``, ``rules/_all.py``), and nothing else (ARCHITECTURE).

The test copies our packages into a temporary tree, adds a combustible-gas detector there exactly
so, and runs it through decoding, line protocol, the rules engine (its own GAS_LEAK, plus the
battery, fault and offline rules it gets from its payload and heartbeat), the event store and
the rules file, in a fresh interpreter.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent

SCRIPT = r"""
import json, sys
from pathlib import Path

from devices import KIND_BY_NAME, OVERRIDE_COLUMNS, Reading, Registry
from ingest import Decoded, Decoder, PointEncoder
from rules import RuleEngine, load_rules
from alerts import EventStore
from tests.helpers import write_registry

root = Path(sys.argv[1])
write_registry(root)
with (root / "devices.csv").open("a") as handle:
    handle.write("G0001,gas,D01,S9,34.302,108.702,\n")
registry = Registry.load(root)
spec = KIND_BY_NAME["gas"]
assert "heartbeat_s" in OVERRIDE_COLUMNS

now = 1_764_583_200_000
decoded = Decoded()
decoder = Decoder(registry)
reading = {"ts": now, "lel_pct": 35.0, "battery_pct": 5, "fault": "sensor"}
decoder.decode("fire/D01/gas/G0001", json.dumps(reading).encode(), now, decoded)
decoder.decode("fire/D01/gas/G0001", b'{"lel_pct": "high"}', now, decoded)
decoder.decode("fire/D01/smoke/G0001", b'{"alarm": true}', now, decoded)
assert len(decoded.readings) == 1, decoded
assert sorted(r.reason.value for r in decoded.rejects) == ["kind_mismatch", "schema"], decoded.rejects

lines: list[str] = []
PointEncoder(registry).readings(decoded.readings, lines)
assert lines[0].startswith("gas,") and "lel_pct=35" in lines[0], lines

rules_file = root / "rules.toml"
rules_file.write_text("[GAS_LEAK]\nlimit = 30.0\n")
config = load_rules(rules_file)
assert config.rule("GAS_LEAK").limit == 30.0
engine = RuleEngine(registry, config, now)
hits = engine.process(decoded.readings, now)
types = sorted(h.type for h in hits if h.state == "raise")
assert types == ["DEVICE_FAULT", "GAS_LEAK", "LOW_BATTERY"], types
gas = next(h for h in hits if h.type == "GAS_LEAK")
assert gas.severity == "critical" and gas.threshold == 30.0

later = now + int((2 * spec.heartbeat_s + 60) * 1000) + 1000
offline = [h for h in engine.tick(later) if h.device_id == "G0001"]
assert [h.type for h in offline] == ["DEVICE_OFFLINE"], offline

published = []
class Recorder:
    def publish(self, topic, payload, qos):
        published.append(topic)
store = EventStore(root / "events.sqlite", registry, Recorder())
store.process(hits, now)
grid = registry.grid_of(registry.slot_of["G0001"])
assert f"alerts/D01/{grid}" in published, published
print("toy kind ok")
"""


def test_a_fifth_kind_needs_only_its_modules_and_the_two_lists(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for package in ("devices", "ingest", "rules", "alerts"):
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", tree / "tests", ignore=shutil.ignore_patterns("__pycache__", "toy_kind"))
    # the device module and its place in the list of kinds
    shutil.copy(HERE / "gas.py", tree / "devices" / "gas.py")
    kinds = tree / "devices" / "_all.py"
    text = kinds.read_text()
    text = text.replace("from devices import electrical,", "from devices import electrical, gas,")
    text = text.replace("patrol.SPEC)", "patrol.SPEC, gas.SPEC)")
    kinds.write_text(text)
    # the rules module and its place in the list of families
    shutil.copy(HERE / "_gas_rules.py", tree / "rules" / "_gas.py")
    families = tree / "rules" / "_all.py"
    text = families.read_text()
    text = text.replace(
        "from rules._fault import", "from rules._gas import GasRules\nfrom rules._fault import"
    )
    text = text.replace("    PatrolRules,\n)", "    PatrolRules,\n    GasRules,\n)")
    families.write_text(text)
    assert "gas.SPEC" in kinds.read_text() and "GasRules," in families.read_text()

    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "registry")],
        check=False,
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "toy kind ok" in result.stdout
