"""PasswordFile: checks against the passwd file, follows its changes, caches without clear passwords."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

import access._password_file as password_file_module
from access import PasswordFile, authenticate, hash_password, new_password, verify_password
from tests.helpers import eventually


def write_passwd(path: Path, users: dict[str, str], extra: str = "") -> None:
    """Atomically, as `firegrid credentials` does."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(f"{user}:{hash_password(pw)}\n" for user, pw in users.items()) + extra)
    os.replace(temporary, path)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How often PasswordFile runs a hash verification (the real one, counted)."""
    calls = [0]
    real = verify_password

    def counting(password: str | bytes, hashed: str) -> bool:
        calls[0] += 1
        return real(password, hashed)

    monkeypatch.setattr(password_file_module, "verify_password", counting)
    return calls


def test_checks_users_and_passwords(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    write_passwd(path, {"W1": "one", "W2": "two", "firegrid": "svc"})
    with PasswordFile(path) as passwords:
        assert (
            passwords.check("W1", "one")
            and passwords.check("W2", "two")
            and passwords.check("firegrid", "svc")
        )
        assert not passwords.check("W1", "two")
        assert not passwords.check("W3", "one")
        assert not passwords.check("", "one") and not passwords.check("W1", "")
        assert not passwords.check("W1:x", "one") and not passwords.check("W\n1", "one")
        assert not passwords.check("W1", "\udc80") and not passwords.check("\udc80", "one")
        assert len(passwords) == 3


def test_lazy_and_follows_rotation_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    passwords = PasswordFile(path)  # nothing there yet: constructing reads nothing
    assert not passwords.check("W1", "one")
    write_passwd(path, {"W1": "one", "W2": "two"})
    assert passwords.check("W1", "one")
    write_passwd(path, {"W1": "uno", "W2": "two"})  # rotated: a new file renamed into place
    assert passwords.check("W1", "uno") and not passwords.check("W1", "one") and passwords.check("W2", "two")
    # rewritten in place (a new mtime), with a removed user
    path.write_text(f"W2:{hash_password('dos')}\n")
    eventually(lambda: passwords.check("W2", "dos"), timeout=5, what="in-place rewrite noticed")
    assert not passwords.check("W1", "uno")
    path.unlink()
    assert not passwords.check("W2", "dos")
    passwords.close()


def test_successes_are_cached_without_clear_passwords(tmp_path: Path, counted: list[int]) -> None:
    path = tmp_path / "passwd"
    secret = new_password()
    write_passwd(path, {"W1": secret, "W2": "two"})
    with PasswordFile(path) as passwords:
        assert passwords.check("W1", secret)
        assert counted[0] == 1
        for _ in range(100):
            assert passwords.check("W1", secret)
        assert counted[0] == 1  # repeated Basic auth costs no PBKDF2
        assert not passwords.check("W1", secret + "x") and not passwords.check("W1", secret + "x")
        assert counted[0] == 3  # failures are never cached
        cached = list(passwords._verified)
        assert len(cached) == 1 and secret.encode() not in cached[0]
        assert all(secret not in repr(value) for value in vars(passwords).values())
        write_passwd(path, {"W1": secret, "W2": "two"})  # same password, new hash: the cache misses
        assert passwords.check("W1", secret) and counted[0] == 4


def test_cache_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    users = {f"U{i}": f"pw{i}" for i in range(10)}
    write_passwd(path, users)
    with PasswordFile(path, cache_size=4) as passwords:
        for user, password in users.items():
            assert passwords.check(user, password)
        assert len(passwords._verified) == 4


def test_file_format_details(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Comments, blank and CRLF lines, no final newline, a user listed twice (the last line wins, as
    in mosquitto 2.0.11: checked by hand), and lines split across the loader's read blocks."""
    monkeypatch.setattr(password_file_module, "_BLOCK", 7)
    path = tmp_path / "passwd"
    path.write_bytes(
        b"# a comment:with a colon\n\n"
        + f"A:{hash_password('a')}\r\n".encode()
        + f"#B:{hash_password('b')}\n".encode()
        + b"garbage without colon\n"
        + f"D:{hash_password('d1')}\nD:{hash_password('d2')}\n".encode()
        + f"E:{hash_password('e')}".encode()
    )
    with PasswordFile(path) as passwords:
        assert passwords.check("A", "a")
        assert not passwords.check("#B", "b") and not passwords.check("B", "b")
        assert not passwords.check("D", "d1") and passwords.check("D", "d2")
        assert passwords.check("E", "e")


def test_large_file(tmp_path: Path) -> None:
    """200,000 lines (real hashes on a few): users at the start, middle and end are found."""
    path = tmp_path / "passwd"
    filler = hash_password("filler")
    names = [f"D{i:07d}" for i in range(200_000)]
    real = {names[0]: "first", names[123_456]: "middle", names[-1]: "last"}
    with path.open("w") as handle:
        for name in names:
            handle.write(f"{name}:{hash_password(real[name]) if name in real else filler}\n")
    with PasswordFile(path) as passwords:
        assert len(passwords) == 200_000
        for name, password in real.items():
            assert passwords.check(name, password)
        assert passwords.check(names[777], "filler") and not passwords.check(names[777], "first")


def test_never_logs_passwords(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "passwd"
    passwords = PasswordFile(path)
    assert not passwords.check("W1", "topsecret-1")
    path.write_text(f"W1:{hash_password('topsecret-2')}\nW1:{hash_password('topsecret-3')}\n")
    assert not passwords.check("W1", "topsecret-2") and passwords.check("W1", "topsecret-3")
    path.chmod(0)
    if os.geteuid() != 0:  # root reads anyway
        assert not passwords.check("W1", "topsecret-2")
    passwords.close()
    assert caplog.records
    assert all("topsecret" not in record.getMessage() for record in caplog.records)


def test_authenticate(tmp_path: Path) -> None:
    import base64

    path = tmp_path / "passwd"
    write_passwd(path, {"W1": "one"})

    def header(raw: str) -> Any:
        return "Basic " + base64.b64encode(raw.encode()).decode()

    with PasswordFile(path) as passwords:
        assert authenticate(header("W1:one"), passwords) == "W1"
        assert authenticate(header("W1:two"), passwords) is None
        assert authenticate("Basic %%%", passwords) is None
        assert authenticate(None, passwords) is None
