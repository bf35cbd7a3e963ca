"""Checking HTTP passwords against the broker's password file, following it as it changes.

A province's file has a million lines, and ingest and each console hold one of these, so the
file is not kept in memory: loading builds an index of 16 bytes a line (the hash of each
username and its line's offset, sorted) and a lookup reads its line back with ``pread`` from the
descriptor opened at load. That descriptor keeps the indexed version readable even after the file
is replaced, and every check first compares the path's inode, size and mtime with it, so a
rotated password takes effect on the next request.

PBKDF2 costs ~60 µs, and a client repeats its Basic credentials on every request: successful
checks are remembered under an HMAC (with a key of this instance) of user, password and the
stored hash, so no clear password is kept and a renewed hash misses the cache by itself.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

import numpy as np
import numpy.typing as npt

from access._hashing import hash_password, new_password, verify_password

log = logging.getLogger(__name__)

_BLOCK: Final = 4 << 20
_MAX_LINE: Final = 4096


@dataclass(frozen=True, slots=True)
class _Identity:
    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> _Identity:
        return cls(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


class _Index:
    """Sorted username hashes and the offsets of their lines, over an open descriptor."""

    def __init__(self, fd: int, identity: _Identity) -> None:
        self.fd = fd
        self.identity = identity
        keys: list[npt.NDArray[np.int64]] = []
        starts: list[npt.NDArray[np.int64]] = []
        offset = 0  # of the first byte not yet indexed
        tail = b""
        while True:  # in blocks, so loading never holds the whole file
            block = os.pread(fd, _BLOCK, offset + len(tail))
            data = tail + block
            end = data.rfind(b"\n") + 1 if block else len(data)  # at the end, a last line may lack \n
            if end:
                lines = data[:end].split(b"\n")
                if data[end - 1] == 0x0A:
                    lines.pop()  # the empty piece after the last newline
                # a line without ':' indexes a meaningless key; lookups compare the name itself
                names = (line[: line.find(b":")] for line in lines)
                keys.append(np.fromiter(map(hash, names), np.int64, len(lines)))
                lengths = np.fromiter(map(len, lines), np.int64, len(lines)) + 1
                starts.append(offset + np.concatenate(([0], np.cumsum(lengths[:-1]))).astype(np.int64))
            offset += end
            tail = data[end:]
            if not block:
                break
        key = np.concatenate(keys) if keys else np.empty(0, np.int64)
        order = np.argsort(key, kind="stable")  # file order among equal keys
        self.keys = key[order]
        self.starts = np.concatenate(starts)[order] if starts else np.empty(0, np.int64)

    def __len__(self) -> int:
        return int(self.keys.size)

    def lookup(self, user: bytes) -> bytes | None:
        """The stored hash of ``user``, or None. Like mosquitto 2.0, the last of duplicate lines wins."""
        key = hash(user)
        i = int(np.searchsorted(self.keys, key))
        found: bytes | None = None
        prefix = user + b":"
        while i < self.keys.size and self.keys[i] == key:  # equal keys are in file order
            line = os.pread(self.fd, _MAX_LINE, int(self.starts[i])).split(b"\n", 1)[0]
            if line.startswith(prefix):
                if found is not None:
                    log.warning(
                        "password file lists %s more than once: the last line counts",
                        user.decode(errors="replace"),
                    )
                found = line[len(prefix) :].strip()
            i += 1
        return found


class PasswordFile:
    """``check(user, password)`` against a mosquitto password file; thread-safe.

    Loaded on first use and reloaded whenever the file changes. A missing or unreadable file
    refuses everyone (and says so in the log, once per change).
    """

    def __init__(self, path: Path | str, cache_size: int = 65_536) -> None:
        self.path = Path(path)
        self.cache_size = cache_size
        self._lock = threading.Lock()
        self._index: _Index | None = None
        self._problem: str | None = None
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, None] = {}
        self._dummy = hash_password(new_password())

    def __enter__(self) -> PasswordFile:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._replace(None)

    def __len__(self) -> int:
        """Lines in the file as last loaded (loading it if needed)."""
        with self._lock:
            index = self._current()
            return 0 if index is None else len(index)

    def check(self, user: str, password: str) -> bool:
        """True when ``password`` is ``user``'s. Never raises for any input."""
        try:
            user_bytes = user.encode("utf-8")
            secret = password.encode("utf-8")
        except UnicodeEncodeError:
            return False
        if not user_bytes or user_bytes[0] == 0x23 or any(c in user_bytes for c in b":\n\r\0"):
            return False  # '#' starts a comment line in the file
        with self._lock:
            index = self._current()
            stored = None if index is None else index.lookup(user_bytes)
        if stored is None:
            verify_password(secret, self._dummy)  # the same time as for a known user
            return False
        digest = hmac.digest(self._key, b"\0".join((user_bytes, stored, secret)), "sha256")
        if digest in self._verified:
            return True
        if not verify_password(secret, stored.decode("ascii", errors="replace")):
            return False
        with self._lock:
            if len(self._verified) >= self.cache_size:
                del self._verified[next(iter(self._verified))]  # the oldest
            self._verified[digest] = None
        return True

    def _current(self) -> _Index | None:
        """The index of the file as it is now (called with the lock held)."""
        try:
            identity = _Identity.of(os.stat(self.path))
        except OSError as exc:
            self._replace(None, f"cannot read password file {self.path}: {exc.strerror}")
            return None
        if self._index is not None and self._index.identity == identity:
            return self._index
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            self._replace(None, f"cannot read password file {self.path}: {exc.strerror}")
            return None
        try:
            # the identity of what was opened, in case the file was replaced since the stat
            index = _Index(fd, _Identity.of(os.fstat(fd)))
        except BaseException:
            os.close(fd)
            raise
        self._replace(index)
        log.info("password file %s loaded: %d lines", self.path, len(index))
        return index

    def _replace(self, index: _Index | None, problem: str | None = None) -> None:
        if self._index is not None and self._index is not index:
            os.close(self._index.fd)
        self._index = index
        if problem is not None and problem != self._problem:
            log.warning("%s: every HTTP password is refused", problem)
        self._problem = problem
