"""`firegrid credentials`: what a first run and later runs write (CONTRACT §10)."""

from __future__ import annotations

import csv
import stat
from pathlib import Path

import pytest

from access import (
    SECRETS_HEADER,
    PasswordMint,
    Principals,
    hash_password,
    read_password_file,
    verify_password,
    write_credentials,
)
from devices import ConfigError, Registry
from firegrid.cli import main


def secrets(out: Path) -> list[tuple[str, str, str]]:
    with (out / "secrets.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == SECRETS_HEADER
    return [(row[0], row[1], row[2]) for row in rows[1:]]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run(registry: Registry, principals: Principals, tmp_path: Path) -> None:
    out = tmp_path / "credentials"
    summary = write_credentials(registry, out)
    assert (summary.added, summary.kept, summary.dropped, summary.renewed) == (len(principals), 0, 0, 0)
    hashes = read_password_file(out / "passwd")
    made = secrets(out)
    assert [name for name, _, _ in made] == [p.name for p in principals] == list(hashes)
    assert {(p.name, p.role.value) for p in principals} == {(name, role) for name, role, _ in made}
    for name, _, password in made:
        assert verify_password(password, hashes[name])
    assert mode(out / "passwd") == mode(out / "secrets.csv") == 0o600
    assert mode(out / "acl") == 0o644
    assert sorted(p.name for p in out.iterdir()) == ["acl", "passwd", "secrets.csv"]  # no temporary left


def test_rerun_keeps_every_password_and_writes_no_secret(registry: Registry, tmp_path: Path) -> None:
    out = tmp_path / "credentials"
    write_credentials(registry, out)
    before = (out / "passwd").read_bytes()
    summary = write_credentials(registry, out)
    assert (summary.added, summary.dropped, summary.renewed) == (0, 0, 0)
    assert summary.kept == len(before.splitlines())
    assert (out / "passwd").read_bytes() == before
    assert (out / "secrets.csv").read_text() == ",".join(SECRETS_HEADER) + "\n"
    assert mode(out / "secrets.csv") == 0o600


def test_rerun_adds_new_and_drops_gone_principals(registry_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "credentials"
    write_credentials(Registry.load(registry_dir), out)
    before = read_password_file(out / "passwd")
    with (out / "passwd").open("a") as handle:  # a line added by hand is not a principal: dropped
        handle.write(f"admin:{hash_password('x')}\n")
    devices = (registry_dir / "devices.csv").read_text().splitlines()
    gone = devices.pop(1).split(",")[0]
    devices.append("S0099,smoke,D01,S0,34.302,108.702,")
    (registry_dir / "devices.csv").write_text("\n".join(devices) + "\n")

    summary = write_credentials(Registry.load(registry_dir), out)
    assert (summary.added, summary.dropped, summary.renewed) == (1, 2, 0)
    after = read_password_file(out / "passwd")
    assert gone not in after and "admin" not in after and "S0099" in after
    assert all(after[name] == hashed for name, hashed in before.items() if name != gone)
    assert [(name, role) for name, role, _ in secrets(out)] == [("S0099", "device")]
    acl = (out / "acl").read_text()
    assert "user S0099\n" in acl and f"user {gone}\n" not in acl


def test_rotation_renews_only_the_named(registry: Registry, tmp_path: Path) -> None:
    out = tmp_path / "credentials"
    write_credentials(registry, out)
    first = {name: password for name, _, password in secrets(out)}
    before = read_password_file(out / "passwd")
    summary = write_credentials(registry, out, rotate=["W1", "firegrid", "W1"])
    assert (summary.added, summary.renewed, summary.dropped) == (0, 2, 0)
    after = read_password_file(out / "passwd")
    renewed = {name: password for name, _, password in secrets(out)}
    assert set(renewed) == {"W1", "firegrid"}
    for name, password in renewed.items():
        assert after[name] != before[name]
        assert verify_password(password, after[name]) and not verify_password(first[name], after[name])
    assert {k: v for k, v in after.items() if k not in renewed} == {
        k: v for k, v in before.items() if k not in renewed
    }


def test_a_line_that_is_no_hash_is_renewed(registry: Registry, tmp_path: Path) -> None:
    out = tmp_path / "credentials"
    write_credentials(registry, out)
    text = (out / "passwd").read_text().replace("\nW2:$7$", "\nW2:$9$")
    (out / "passwd").write_text(text)
    summary = write_credentials(registry, out)
    assert summary.renewed == 1 and [row[0] for row in secrets(out)] == ["W2"]


def test_unknown_rotation_is_refused_and_nothing_changes(registry: Registry, tmp_path: Path) -> None:
    out = tmp_path / "credentials"
    write_credentials(registry, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ConfigError, match="NOPE"):
        write_credentials(registry, out, rotate=["W1", "NOPE"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_pool_made_passwords(registry: Registry, tmp_path: Path) -> None:
    """Enough pairs for the process pool (spawned workers), handed out in chunks."""
    with PasswordMint(processes=2, iterations=1) as mint:
        mint.prefetch(25_000)
        assert mint.available == 25_000
        passwords, hashes = mint.take(24_990)
        assert len(set(passwords)) == 24_990
        assert all(verify_password(p, h) for p, h in zip(passwords[:50], hashes[:50], strict=True))
        summary = write_credentials(registry, tmp_path / "out", mint=mint)  # 10 left, 12 made in-process
    made = {name: password for name, _, password in secrets(tmp_path / "out")}
    hashes_by_name = read_password_file(tmp_path / "out" / "passwd")
    assert summary.added == len(made) == len(hashes_by_name)
    assert all(verify_password(made[name], hashed) for name, hashed in hashes_by_name.items())


def test_cli(registry_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "credentials"
    assert (
        main(["credentials", "--registry", str(registry_dir), "--out", str(out), "--topic-prefix", "t9/"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "22 added, 0 kept, 0 dropped, 0 renewed" in printed and printed.count("\n") == 1
    assert "topic write t9/fire/D01/smoke/S0000" in (out / "acl").read_text()
    assert (
        main(["credentials", "--registry", str(registry_dir), "--out", str(out), "--rotate", "W0", "W1"]) == 0
    )
    assert "0 added, 20 kept, 0 dropped, 2 renewed" in capsys.readouterr().out

    assert main(["credentials", "--registry", str(registry_dir), "--out", str(out), "--rotate", "NOPE"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "NOPE" in error and "Traceback" not in error

    (registry_dir / "workers.csv").write_text("worker_id,name,role\nW0,X,boss\n")
    assert main(["credentials", "--registry", str(registry_dir), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "workers.csv:2" in error

    assert main(["credentials", "--registry", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert (
        main(["credentials", "--registry", str(registry_dir), "--out", str(out), "--topic-prefix", "x"]) == 2
    )
    assert "topic prefix" in capsys.readouterr().err


def test_cli_default_prefix_from_environment(
    registry_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIREGRID_TOPIC_PREFIX", "env1/")
    out = tmp_path / "credentials"
    assert main(["credentials", "--registry", str(registry_dir), "--out", str(out)]) == 0
    assert "topic write env1/actions/W0\n" in (out / "acl").read_text()
