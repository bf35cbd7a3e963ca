"""Broker files that hold only the service accounts: for a broker shared by many registries and
topic prefixes (the test suite's, a benchmark's), where per-device principals come later or never.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from access._acl import service_rules
from access._credentials import ACL, PASSWD
from access._hashing import hash_password, new_password
from access._principals import SERVICE_ACCOUNTS
from devices import Topics


def write_service_accounts(out: Path | str, prefixes: Iterable[str] = ("",)) -> dict[str, str]:
    """Write ``passwd`` and ``acl`` with a new password for each service account, whose rights
    hold under each topic prefix of ``prefixes`` (``"+/"``: any one-level prefix); return the
    clear passwords (the caller keeps them in memory, never in a file)."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    passwords = {name: new_password() for name in SERVICE_ACCOUNTS}
    acl: list[str] = []
    for name in SERVICE_ACCOUNTS:
        acl.append(f"user {name}\n")
        for prefix in prefixes:
            acl += [f"topic {access} {topic}\n" for access, topic in service_rules(Topics(prefix))[name]]
        acl.append("\n")
    _write(root / PASSWD, "".join(f"{name}:{hash_password(pw)}\n" for name, pw in passwords.items()), 0o600)
    _write(root / ACL, "".join(acl), 0o644)
    return passwords


def _write(path: Path, text: str, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)
