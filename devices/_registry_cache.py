"""A loaded registry kept in the service's data directory, so that a restart at province scale does
not parse and check 1,000,000 CSV rows again (issue 17: ~9 s on a quiet machine, ~20 s on a loaded
one; the cache loads in 1.3-1.7 s).

The cache is valid for exactly the bytes it was built from: its key is a BLAKE2b digest of the
registry's four files and of the loader's own source, so an edited file, a file copied over with
an old mtime or a new firegrid version all mean a full load (which writes the cache again). The
file is the service's own, like its event store: written with mode 0600 in the data directory
(``FIREGRID_DATA_DIR``), atomically (a temporary file of the writing process, then rename). It
is a pickle, which is why it is read only from there; an unreadable or stale cache is logged and
replaced, never an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import time
from pathlib import Path
from typing import Final

from devices import _registry
from devices._registry import REGISTRY_FILES, Registry, collector_paused

log = logging.getLogger(__name__)

FORMAT: Final = b"firegrid-registry-cache 1\n"
CHUNK: Final = 1 << 20


def registry_key(root: Path) -> bytes:
    """The digest of the registry's files (names, sizes, bytes) and of the loader's source."""
    digest = hashlib.blake2b(digest_size=32)
    digest.update(Path(_registry.__file__).read_bytes())
    for name in REGISTRY_FILES:
        path = root / name
        digest.update(f"\0{name}\0".encode())
        if not path.is_file():
            digest.update(b"absent")
            continue
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest().encode()


def load_registry(root: Path | str, cache: Path | None) -> Registry:
    """:meth:`Registry.load` of ``root``, from ``cache`` when it holds this very registry; a full
    load otherwise, which then writes ``cache``. ``cache=None``: always a full load."""
    root = Path(root)
    if cache is None or not root.is_dir():
        return Registry.load(root)
    started = time.perf_counter()
    key = registry_key(root)
    registry = _read(cache, key)
    if registry is not None:
        registry.path = root
        for message in registry.warnings[:20]:
            log.warning("%s", message)
        log.info("registry loaded from its cache %s in %.1f s", cache, time.perf_counter() - started)
        return registry
    registry = Registry.load(root)
    _write(cache, key, registry)
    return registry


def _read(cache: Path, key: bytes) -> Registry | None:
    try:
        with cache.open("rb") as handle:
            if handle.readline() != FORMAT or handle.readline().rstrip(b"\n") != key:
                log.info("registry cache %s is of another registry: loading the registry", cache)
                return None
            with collector_paused():  # millions of objects and no cycles, as a load
                registry = pickle.load(handle)
    except FileNotFoundError:
        return None
    except Exception as exc:  # a truncated or foreign file: load the registry, replace the cache
        log.warning("registry cache %s unreadable (%s): loading the registry", cache, exc)
        return None
    if not isinstance(registry, Registry):
        log.warning("registry cache %s holds no registry: loading the registry", cache)
        return None
    return registry


def _write(cache: Path, key: bytes, registry: Registry) -> None:
    # a name of its own: two processes writing at once each rename a whole file
    partial = cache.with_name(f"{cache.name}.{os.getpid()}.partial")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(FORMAT + key + b"\n")
            pickle.dump(registry, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, cache)
    except OSError as exc:  # a full or read-only disk costs the next start time, nothing else
        log.warning("registry cache %s not written: %s", cache, exc)
        partial.unlink(missing_ok=True)
