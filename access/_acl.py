"""The broker's ACL (CONTRACT §10) in mosquitto's ``acl_file`` format.

Every principal gets a ``user`` section of its own. A ``pattern write fire/+/+/%u`` line would be
shorter, but it would let a device publish under any district or kind; only its registry row
may appear in its topic, so each device has its one line.

Scale: mosquitto 2.0.11 keeps ACL users in a linked list and walks it for every line it reads,
so loading grows at least quadratically with the sections. Measured here: a reference district (10,407
sections) loads in 0.4 s, 30,000 sections in ~16 s, 60,000 in ~136 s; a province's 1.1 million
do not load in useful time (bench/RESULTS.md). The password file is a hash table (1.1 million
lines in ~3 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from access._principals import CONSOLE_ACCOUNT, INGEST_ACCOUNT, SIMULATOR_ACCOUNT, Principals, Role
from devices import KINDS, ConfigError, Topics

READ: Final = "read"
WRITE: Final = "write"


def check_topic_prefix(prefix: str) -> str:
    """``prefix`` if it is usable in topics and ACL lines; :class:`ConfigError` otherwise."""
    if prefix and (
        not prefix.endswith("/")
        or any(c in prefix for c in "+#")
        or any(ord(c) < 0x21 or ord(c) == 0x7F for c in prefix)  # controls and spaces would split lines
    ):
        raise ConfigError(
            f"topic prefix {prefix!r} must end with '/' and contain no MQTT wildcards, spaces "
            "or control characters"
        )
    return prefix


def service_rules(topics: Topics) -> dict[str, tuple[tuple[str, str], ...]]:
    """``(read|write, topic filter)`` of each service account."""
    return {
        INGEST_ACCOUNT: (
            (WRITE, topics.alerts_subscription),
            (WRITE, topics.results_subscription),
            (READ, topics.readings_subscription),
            (READ, topics.actions_subscription),
        ),
        CONSOLE_ACCOUNT: (
            (WRITE, topics.actions_subscription),
            (READ, topics.alerts_subscription),
            (READ, topics.results_subscription),
        ),
        SIMULATOR_ACCOUNT: (
            (WRITE, topics.readings_subscription),
            (WRITE, topics.actions_subscription),
            (READ, topics.alerts_subscription),
            (READ, topics.results_subscription),
        ),
    }


def acl_rules(principals: Principals, name: str, topics: Topics) -> tuple[tuple[str, str], ...]:
    """The rules of one principal (none for a name that is not one)."""
    role = principals.role_of(name)
    registry = principals.registry
    if role is Role.SERVICE:
        return service_rules(topics)[name]
    if role is Role.DEVICE:
        slot = registry.slot_of[name]
        return ((WRITE, topics.device(registry.district_of(slot), registry.kind_of(slot), name)),)
    if role is Role.STATION:
        return ((READ, topics.station(name)),)
    if role in (Role.WORKER, Role.SUPERVISOR):
        rules = [(WRITE, topics.actions(name)), (READ, topics.action_result(name))]
        rules += [(READ, topics.grid(g.district, g.grid_id)) for g in principals.grids_of(name)]
        if role is Role.SUPERVISOR:
            rules.append((READ, topics.alerts_subscription))
        return tuple(rules)
    return ()


def _section(name: str, rules: tuple[tuple[str, str], ...]) -> str:
    return "".join([f"user {name}\n", *(f"topic {access} {topic}\n" for access, topic in rules), "\n"])


def acl_text(principals: Principals, prefix: str = "") -> Iterator[str]:
    """The ACL file, in pieces (one per principal; the devices in slot order)."""
    topics = Topics(check_topic_prefix(prefix))
    yield (
        "# firegrid broker ACL (CONTRACT §10), written by 'firegrid credentials'; do not edit.\n"
        f"# topic prefix: {prefix or '(none)'}\n\n"
    )
    registry = principals.registry
    for name, rules in service_rules(topics).items():
        yield _section(name, rules)
    for worker_id in registry.workers:
        yield _section(worker_id, acl_rules(principals, worker_id, topics))
    for station in registry.stations:
        yield _section(station.station_id, ((READ, topics.station(station.station_id)),))
    # devices straight from the registry's columns, without building a Device per row
    kinds = [spec.name for spec in KINDS]
    districts = registry.districts
    kind_code = registry.kind_code.tolist()
    district_idx = registry.district_idx.tolist()
    for device_id, slot in registry.slot_of.items():
        topic = topics.device(districts[district_idx[slot]], kinds[kind_code[slot]], device_id)
        yield f"user {device_id}\ntopic {WRITE} {topic}\n\n"
