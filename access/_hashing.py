"""Password hashes in the format of mosquitto's password file (what ``mosquitto_passwd`` writes).

::

    $7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512(password, salt, iterations, 64 bytes)>
    $6$<base64 salt>$<base64 SHA-512(password + salt)>

``$7$`` is mosquitto 2.0's default (101 iterations, 12-byte salt); ``$6$`` is what 1.x wrote, and
the broker still accepts it. The salt is decoded from its base64 text before use.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from typing import Final

ITERATIONS: Final = 101
"""mosquitto_passwd's count. Generated passwords carry 192 random bits, so more iterations would
add no strength to them, only cost: the broker runs this on every CONNECT."""
SALT_BYTES: Final = 12
PASSWORD_BYTES: Final = 24
"""``secrets.token_urlsafe(24)``: 32 characters, 192 bits."""
MAX_ITERATIONS: Final = 9_999_999
_HASH_BYTES: Final = 64


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """The ``$7$`` hash of ``password`` (the part after ``user:`` in the password file)."""
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be within 1..{MAX_ITERATIONS}")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, _HASH_BYTES)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def mint(count: int, iterations: int = ITERATIONS) -> tuple[list[str], list[str]]:
    """``count`` new passwords and their hashes; a top-level function so a process pool can run it."""
    pbkdf2 = hashlib.pbkdf2_hmac
    salts = os.urandom(SALT_BYTES * count)  # one system call for the whole chunk
    passwords = [secrets.token_urlsafe(PASSWORD_BYTES) for _ in range(count)]
    hashes = []
    for i, password in enumerate(passwords):
        salt = salts[i * SALT_BYTES : (i + 1) * SALT_BYTES]
        digest = pbkdf2("sha512", password.encode("ascii"), salt, iterations, _HASH_BYTES)
        hashes.append(f"$7${iterations}${_b64(salt)}${_b64(digest)}")
    return passwords, hashes


def _unb64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class _Parsed:
    iterations: int | None
    """None for ``$6$``."""
    salt: bytes
    digest: bytes


def _parse(hashed: str) -> _Parsed | None:
    parts = hashed.strip().split("$")
    iterations: int | None = None
    if len(parts) == 5 and parts[:2] == ["", "7"]:
        count = parts[2]
        if not (count.isascii() and count.isdigit() and len(count) <= 7):
            return None
        iterations = int(count)
        if not 1 <= iterations <= MAX_ITERATIONS:
            return None
        salt, digest = _unb64(parts[3]), _unb64(parts[4])
    elif len(parts) == 4 and parts[:2] == ["", "6"]:
        salt, digest = _unb64(parts[2]), _unb64(parts[3])
    else:
        return None
    if not salt or digest is None or len(digest) != _HASH_BYTES:
        return None
    return _Parsed(iterations, salt, digest)


_B64: Final = "(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})"
_HASH_SHAPE: Final = re.compile(rf"\$(?:7\$[1-9][0-9]{{0,6}}|6)\${_B64}\$[A-Za-z0-9+/]{{86}}==")
"""A non-empty salt and a 64-byte digest; the regular expression is 4× quicker than decoding."""


def is_password_hash(hashed: str) -> bool:
    """True when ``hashed`` is a well-formed ``$7$`` or ``$6$`` hash (nothing is verified)."""
    return _HASH_SHAPE.fullmatch(hashed) is not None


def verify_password(password: str | bytes, hashed: str) -> bool:
    """True when ``password`` matches ``hashed`` (``$7$`` or ``$6$``); False for any malformed input.

    The final comparison takes constant time.
    """
    parsed = _parse(hashed)
    if parsed is None:
        return False
    try:
        secret = password.encode("utf-8") if isinstance(password, str) else password
    except UnicodeEncodeError:  # lone surrogates: no stored password can match
        return False
    if parsed.iterations is None:
        actual = hashlib.sha512(secret + parsed.salt).digest()
    else:
        actual = hashlib.pbkdf2_hmac("sha512", secret, parsed.salt, parsed.iterations, _HASH_BYTES)
    return hmac.compare_digest(actual, parsed.digest)
