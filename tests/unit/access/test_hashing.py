"""Password hashes: our own round trip, and mosquitto_passwd's lines ($7$ and the older $6$)."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from access import ITERATIONS, hash_password, is_password_hash, new_password, verify_password
from access._hashing import mint


def mosquitto_passwd() -> str:
    path = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    assert Path(path).is_file(), "mosquitto_passwd is missing: run 'make setup' (apt-get install mosquitto)"
    return path


def passwd_line(tmp_path: Path, user: str, password: str, *algorithm: str) -> str:
    file = tmp_path / f"passwd-{user}"
    subprocess.run([mosquitto_passwd(), *algorithm, "-c", "-b", str(file), user, password], check=True)
    line = file.read_text().strip()
    assert line.startswith(f"{user}:")
    return line.split(":", 1)[1]


def test_round_trip() -> None:
    for password in ("s3cret", new_password(), "pässwörd ✓", " spaces and : colons "):
        hashed = hash_password(password)
        assert verify_password(password, hashed)
        assert verify_password(password.encode(), hashed)
        assert not verify_password(password + "x", hashed)
        assert not verify_password("", hashed)


def test_format_matches_mosquitto_passwd(tmp_path: Path) -> None:
    ours = hash_password("x").split("$")
    theirs = passwd_line(tmp_path, "alice", "x").split("$")
    assert ours[:3] == theirs[:3] == ["", "7", str(ITERATIONS)]
    assert [len(base64.b64decode(part)) for part in ours[3:]] == [12, 64]
    assert [len(base64.b64decode(part)) for part in theirs[3:]] == [12, 64]


def test_verifies_mosquitto_passwd_pbkdf2_lines(tmp_path: Path) -> None:
    for user, password in (("alice", "secret"), ("bob", new_password()), ("carol", "ünïcode ✓")):
        hashed = passwd_line(tmp_path, user, password)
        assert hashed.startswith("$7$101$")
        assert is_password_hash(hashed)
        assert verify_password(password, hashed)
        assert not verify_password(password[:-1], hashed)


def test_verifies_old_sha512_lines(tmp_path: Path) -> None:
    hashed = passwd_line(tmp_path, "dave", "hunter2", "-H", "sha512")
    assert hashed.startswith("$6$")
    assert is_password_hash(hashed)
    assert verify_password("hunter2", hashed)
    assert not verify_password("hunter3", hashed)


def test_malformed_hashes_are_refused_not_raised() -> None:
    good = hash_password("pw")
    _, _, count, salt, digest = good.split("$")
    for bad in (
        "",
        "pw",
        "$7$",
        f"$7${count}${salt}",
        f"$7$0${salt}${digest}",
        f"$7$-1${salt}${digest}",
        f"$7$99999999${salt}${digest}",
        f"$7$1e3${salt}${digest}",
        f"$7${count}$${digest}",
        f"$7${count}${salt}${digest[:-4]}",
        f"$7${count}$!!!!${digest}",
        f"$5${count}${salt}${digest}",
        f"$6${salt}",
        f"$6${salt}${digest}$",
        good + "$",
    ):
        assert not verify_password("pw", bad), bad
        assert not is_password_hash(bad), bad


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.text(max_size=40))
def test_any_stored_text_is_a_refusal_or_a_match(hashed: str, password: str) -> None:
    assert verify_password(password, hashed) in (True, False)
    assert is_password_hash(hashed) in (True, False)


def test_lone_surrogates_are_refused() -> None:
    assert not verify_password("\udc80", hash_password("x"))


def test_new_passwords_carry_at_least_128_random_bits() -> None:
    passwords = {new_password() for _ in range(1000)}
    assert len(passwords) == 1000
    for password in passwords:
        assert len(password) == 32  # 24 random bytes, URL-safe base64
        assert set(password) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_mint_makes_matching_pairs() -> None:
    passwords, hashes = mint(50)
    assert len(set(passwords)) == len(set(hashes)) == 50
    assert all(verify_password(p, h) for p, h in zip(passwords, hashes, strict=True))
