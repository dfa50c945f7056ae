"""Writing files so that a reader never sees half of one: the one atomic write every module uses.

Baseline cache entries, trial results (final.json, finalists.json), comparison tables and
MLflow run ids are all written through `atomic_write`; a crash or a full disk leaves the old
file or none, never a truncated one. (A saved layout is a directory and swaps itself into
place in mapping/layout.py.)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: Path, write: Callable[[Path], None]) -> tuple[str, int]:
    """Call write(temp_path) for a temporary file beside `path`, then os.replace it into place.

    Returns the SHA-256 and size of what was written, read back from the temporary file: hashing
    `path` afterwards could hash another process's copy that replaced ours in between.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    os.chmod(temp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
    try:
        write(Path(temp))
        digest, size = sha256_file(Path(temp)), os.path.getsize(temp)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return digest, size
