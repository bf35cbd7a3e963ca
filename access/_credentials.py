"""``firegrid credentials``: the broker's ``passwd`` and ``acl`` from the registry, and ``secrets.csv``.

A run keeps every existing password (its hash line as it is, never re-hashed), makes passwords
for principals new in the registry and for those named to rotate, and drops the lines of names
that are no longer principals (lines added by hand included). ``secrets.csv`` holds the clear
passwords made by this run only, and is the one file that ever holds one. All three files are
written to temporary files first and renamed into place, ``secrets.csv`` first: an interrupted run
leaves the old files, or new passwords that a re-run simply makes again.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Final, TextIO

from access._acl import acl_text, check_topic_prefix
from access._hashing import is_password_hash
from access._mint import PasswordMint
from access._principals import SERVICE_ACCOUNTS, Principal, Principals
from devices import ConfigError, Registry

PASSWD: Final = "passwd"
ACL: Final = "acl"
SECRETS: Final = "secrets.csv"
SECRETS_HEADER: Final = ("principal", "role", "password")
_CHUNK: Final = 10_000


@dataclass(frozen=True, slots=True)
class CredentialsSummary:
    out: Path
    added: int
    kept: int
    dropped: int
    renewed: int

    def __str__(self) -> str:
        return (
            f"credentials in {self.out}: {self.added:,} added, {self.kept:,} kept, "
            f"{self.dropped:,} dropped, {self.renewed:,} renewed"
        )


def read_password_file(path: Path) -> dict[str, str]:
    """``user → hash`` of a mosquitto password file (blank and ``#`` lines skipped; as in mosquitto
    2.0, the last of a user's lines wins)."""
    users: dict[str, str] = {}
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        for line in handle:
            user, colon, hashed = line.rstrip("\r\n").partition(":")
            if colon and user and not user.startswith("#"):
                users[user] = hashed
    return users


def make_credentials(
    registry_dir: Path | str,
    out: Path | str,
    *,
    rotate: Iterable[str] = (),
    topic_prefix: str = "",
    processes: int | None = None,
) -> CredentialsSummary:
    """Load the registry and write the credentials into ``out``.

    On a first run every principal needs a new password: hashing starts on the pool while the
    registry loads (both take tens of seconds for a province).
    """
    check_topic_prefix(topic_prefix)
    with PasswordMint(processes) as mint:
        if not (Path(out) / PASSWD).exists():
            mint.prefetch(_estimate_principals(Path(registry_dir)))
        registry = Registry.load(registry_dir)
        return write_credentials(registry, out, rotate=rotate, topic_prefix=topic_prefix, mint=mint)


def write_credentials(
    registry: Registry,
    out: Path | str,
    *,
    rotate: Iterable[str] = (),
    topic_prefix: str = "",
    mint: PasswordMint | None = None,
) -> CredentialsSummary:
    """Write ``passwd``, ``acl`` and ``secrets.csv`` for ``registry`` into ``out`` (see module doc).

    Raises :class:`RegistryError` when principals share a name, :class:`ConfigError` for a
    name to rotate that is not a principal or an unusable topic prefix.
    """
    check_topic_prefix(topic_prefix)
    principals = Principals(registry)
    renew = set(rotate)
    unknown = sorted(name for name in renew if name not in principals)
    if unknown:
        more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
        raise ConfigError(f"cannot rotate {', '.join(unknown[:5])}{more}: not a principal of the registry")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    existing = read_password_file(root / PASSWD) if (root / PASSWD).exists() else {}
    # the hash each principal keeps, or None for a new password (in the order of ``principals``)
    kept: list[str | None] = []
    renewed = 0
    for principal in principals:
        hashed = existing.get(principal.name)
        if hashed is not None and principal.name not in renew and is_password_hash(hashed):
            kept.append(hashed)
        else:
            kept.append(None)
            renewed += hashed is not None  # rotated, or a line that is no hash
    fresh = kept.count(None)
    dropped = len(existing) - (len(kept) - fresh) - renewed  # the lines no principal matched
    del existing
    with _Staging(root) as staging:
        with staging.open(SECRETS, 0o600) as secrets_file, staging.open(PASSWD, 0o600) as passwd_file:
            own_mint = mint is None
            mint = PasswordMint() if mint is None else mint
            try:
                mint.prefetch(fresh)
                _write_passwords(principals, kept, mint, passwd_file, secrets_file)
            finally:
                if own_mint:
                    mint.close()
        with staging.open(ACL, 0o644) as acl_file:
            for piece in acl_text(principals, topic_prefix):
                acl_file.write(piece)
        staging.commit()
    return CredentialsSummary(root, fresh - renewed, len(kept) - fresh, dropped, renewed)


def _write_passwords(
    principals: Principals, kept: list[str | None], mint: PasswordMint, passwd: TextIO, secrets: TextIO
) -> None:
    rows = csv.writer(secrets, lineterminator="\n")
    rows.writerow(SECRETS_HEADER)
    everyone: Iterator[Principal] = iter(principals)
    for start in range(0, len(kept), _CHUNK):
        chunk = list(islice(everyone, _CHUNK))
        hashes = kept[start : start + _CHUNK]
        new = [p for p, h in zip(chunk, hashes, strict=True) if h is None]
        passwords, made = mint.take(len(new))
        rows.writerows((p.name, p.role.value, pw) for p, pw in zip(new, passwords, strict=True))
        fresh = iter(made)
        passwd.write(
            "".join(
                f"{p.name}:{h if h is not None else next(fresh)}\n"
                for p, h in zip(chunk, hashes, strict=True)
            )
        )


def _estimate_principals(registry_dir: Path) -> int:
    """Rows of the registry's CSV files, before they are parsed: the size of a first run."""
    total = len(SERVICE_ACCOUNTS)
    for name in ("devices.csv", "workers.csv", "stations.csv"):
        try:
            with (registry_dir / name).open("rb") as handle:
                total += sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b"")) - 1
        except OSError:
            continue
    return max(total, 0)


class _Staging:
    """Files written under temporary names in ``root`` and renamed into place by :meth:`commit`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staged: list[tuple[Path, Path]] = []

    def __enter__(self) -> _Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        for temporary, _ in self.staged:  # whatever commit() did not rename
            temporary.unlink(missing_ok=True)

    @contextmanager
    def open(self, name: str, mode: int) -> Iterator[TextIO]:
        fd, temporary = tempfile.mkstemp(dir=self.root, prefix=f".{name}.", suffix=".tmp")
        self.staged.append((Path(temporary), self.root / name))
        os.fchmod(fd, mode)  # before any byte is written
        with open(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())

    def commit(self) -> None:
        while self.staged:
            temporary, final = self.staged[0]
            os.replace(temporary, final)
            self.staged.pop(0)
        directory = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
