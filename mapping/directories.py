"""Writing a folder of files so that a reader sees the old folder or the whole new one, never half.

Layouts (mapping/layout.py), programmed-crossbar exports (mapping/crossbar_export.py) and pruned
models (envs/model_artifact.py) are folders of a payload and a manifest that checksums it; a
crash between two files must not leave a manifest naming a payload that is not there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def write_directory(target: str | Path, files: dict[str, bytes]) -> Path:
    """Write `files` (name -> bytes) as the folder `target`, replacing a previous one atomically.

    Files are written and fsynced in a temporary folder beside the target, which is then renamed
    into place; a previous folder is moved aside first and restored if the rename fails, so a
    failed write leaves the old folder intact and no partial folder behind.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"cannot write the folder {target}: it exists and is not a directory")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        for name, payload in files.items():
            _write_synced(staging / name, payload)
        _fsync_dir(staging)
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(target.parent)
    return target


def _write_synced(path: Path, payload: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`; an existing target is moved aside and removed only afterwards."""
    if not target.exists():
        os.replace(staging, target)
        return
    backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, backup)  # rename(2) may replace the empty backup directory
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)
