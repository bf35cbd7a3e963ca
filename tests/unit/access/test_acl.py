"""Principals and the ACL file: one section per principal, exactly its own topics (CONTRACT §10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from access import SERVICE_ACCOUNTS, Principal, Principals, Role, acl_rules, acl_text, check_topic_prefix
from devices import ConfigError, Registry, RegistryError, Topics


def parse_acl(text: str) -> dict[str, list[tuple[str, str]]]:
    """mosquitto's reading of the file: ``user`` starts a section, ``topic ACCESS TOPIC`` adds to it."""
    sections: dict[str, list[tuple[str, str]]] = {}
    user: str | None = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        words = line.split(" ")
        if words[0] == "user":
            assert len(words) == 2
            user = words[1]
            assert user not in sections, f"user {user} twice"
            sections[user] = []
        else:
            assert words[0] == "topic" and len(words) == 3 and words[1] in ("read", "write"), line
            assert user is not None, "topic line before any user line applies to anonymous clients"
            sections[user].append((words[1], words[2]))
    return sections


def test_every_registry_entry_is_a_principal(principals: Principals, registry: Registry) -> None:
    everyone = list(principals)
    assert len(everyone) == len(principals) == 3 + 5 + 2 + 12
    assert everyone[:3] == [Principal(name, Role.SERVICE) for name in SERVICE_ACCOUNTS]
    assert Principal("SUP1", Role.SUPERVISOR) in everyone and Principal("W0", Role.WORKER) in everyone
    assert Principal("D01-ST2", Role.STATION) in everyone and Principal("P0002", Role.DEVICE) in everyone
    assert principals.get("E0001") == Principal("E0001", Role.DEVICE)
    assert principals.get("nobody") is None and "nobody" not in principals and "W3" in principals
    assert [g.grid_id for g in principals.grids_of("SUP1")] == ["D01-G00", "D01-G02"]


@pytest.mark.parametrize("prefix", ["", "t1/", "tenant/a/"])
def test_acl_sections(principals: Principals, registry: Registry, prefix: str) -> None:
    sections = parse_acl("".join(acl_text(principals, prefix)))
    assert set(sections) == {p.name for p in principals}
    p = prefix
    assert sections["S0001"] == [("write", f"{p}fire/D01/smoke/S0001")]
    assert sections["P0002"] == [("write", f"{p}fire/D01/patrol/P0002")]
    assert sections["W1"] == [
        ("write", f"{p}actions/W1"),
        ("read", f"{p}actions/W1/result"),
        ("read", f"{p}alerts/D01/D01-G01"),
    ]
    assert sections["SUP1"] == [
        ("write", f"{p}actions/SUP1"),
        ("read", f"{p}actions/SUP1/result"),
        ("read", f"{p}alerts/D01/D01-G00"),
        ("read", f"{p}alerts/D01/D01-G02"),
        ("read", f"{p}alerts/#"),
    ]
    assert sections["D01-ST2"] == [("read", f"{p}alerts/station/D01-ST2")]
    assert sections["firegrid"] == [
        ("write", f"{p}alerts/#"),
        ("write", f"{p}actions/+/result"),
        ("read", f"{p}fire/#"),
        ("read", f"{p}actions/+"),
    ]
    assert sections["firegrid-console"] == [
        ("write", f"{p}actions/+"),
        ("read", f"{p}alerts/#"),
        ("read", f"{p}actions/+/result"),
    ]
    assert sections["firegrid-sim"] == [
        ("write", f"{p}fire/#"),
        ("write", f"{p}actions/+"),
        ("read", f"{p}alerts/#"),
        ("read", f"{p}actions/+/result"),
    ]
    # every device: exactly its registry row, never a wildcard
    for device in registry.devices():
        assert sections[device.device_id] == [
            ("write", Topics(prefix).device(device.district, device.kind, device.device_id))
        ]
    # acl_rules answers the same for one principal
    for name, rules in sections.items():
        assert list(acl_rules(principals, name, Topics(prefix))) == rules
    assert acl_rules(principals, "nobody", Topics(prefix)) == ()


def test_no_pattern_lines(principals: Principals) -> None:
    assert "pattern" not in "".join(acl_text(principals, "t1/")).replace("# ", "")
    assert "%u" not in "".join(acl_text(principals))


@pytest.mark.parametrize("prefix", ["t1", "t+/", "#/", "a b/", "t1/\nuser x/", "\x00/", "t1/\t/"])
def test_unusable_prefixes_are_refused(principals: Principals, prefix: str) -> None:
    with pytest.raises(ConfigError):
        check_topic_prefix(prefix)
    with pytest.raises(ConfigError):
        list(acl_text(principals, prefix))


def test_names_must_be_unique_across_principals(registry_dir: Path) -> None:
    with (registry_dir / "workers.csv").open("a") as handle:
        handle.write("S0000,Same as a device,worker\nfiregrid,Same as ingest,worker\n")
    with (registry_dir / "stations.csv").open("a") as handle:
        handle.write("W0,Same as a worker,D01,34.3,108.7\n")
    with pytest.raises(RegistryError) as caught:
        Principals(Registry.load(registry_dir))
    problems = "\n".join(caught.value.problems)
    for name in ("S0000", "firegrid", "W0"):
        assert f" {name} is also the name of" in problems
