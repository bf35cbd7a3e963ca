"""HTTP Basic authentication (RFC 7617): the ``Authorization`` header, and checking it.

The header comes from anyone, so every malformed one is simply a refusal: too long, another
scheme, bad base64, no colon, not UTF-8, control characters in the user name.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Final

from access._password_file import PasswordFile

MAX_HEADER: Final = 1024
"""Far above any real user (≤ 64 characters) and password; the rest is refused unread."""


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str
    password: str = field(repr=False)  # never in a log line or traceback


def parse_basic(header: str | bytes | None) -> Credentials | None:
    """The user and password of an ``Authorization: Basic …`` header, or None to refuse."""
    if header is None or len(header) > MAX_HEADER:
        return None
    try:
        text = header.decode("latin-1") if isinstance(header, bytes) else header
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError and non-ASCII str are ValueErrors
        return None
    user, colon, password = decoded.partition(":")
    if not colon or not user or not password:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in user):
        return None
    return Credentials(user, password)


def authenticate(header: str | bytes | None, passwords: PasswordFile) -> str | None:
    """The user of a valid ``Authorization`` header, or None (answer 401)."""
    credentials = parse_basic(header)
    if credentials is None or not passwords.check(credentials.user, credentials.password):
        return None
    return credentials.user
