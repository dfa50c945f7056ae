"""The baseline cache's files: one folder per key holding model.pt and meta.json, written atomically.

meta.json is written last and records the checkpoint's SHA-256 and size, so an entry whose
checkpoint is truncated, replaced or garbled is detected instead of loaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from envs.files import atomic_write, sha256_file

CACHE_FORMAT = 1  # bump when the training code changes what a cached entry means
CHECKPOINT = "model.pt"
META = "meta.json"


class CorruptEntry(Exception):
    """A cache entry that exists but cannot be trusted; the message says why."""


@dataclass(frozen=True)
class EntryMeta:
    """What meta.json records beside a checkpoint."""

    key: str
    key_fields: dict[str, Any]
    test_accuracy: float
    search_accuracy: float
    train_seconds: float  # wall clock of the original training (0 for given weights)
    checkpoint: str  # file name inside the entry, or the absolute path of given weights
    checkpoint_sha256: str
    checkpoint_bytes: int
    created: str
    torch_version: str
    format: int = CACHE_FORMAT


def cache_key(fields: dict[str, Any]) -> str:
    """SHA-256 of the fields as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def write_meta(entry: Path, meta: EntryMeta) -> None:
    atomic_write(entry / META, lambda p: p.write_text(json.dumps(asdict(meta), indent=2, sort_keys=True)))


def read_meta(entry: Path, key: str) -> EntryMeta | None:
    """The entry's metadata checked against `key` and its checkpoint; None when there is no entry.

    Raises CorruptEntry when meta.json or the checkpoint it names cannot be trusted.
    """
    meta_path = entry / META
    if not meta_path.exists():
        if (entry / CHECKPOINT).exists():
            raise CorruptEntry(f"{CHECKPOINT} without {META} (an interrupted write?)")
        return None
    try:
        meta = EntryMeta(**json.loads(meta_path.read_text()))
    except (ValueError, TypeError) as error:
        raise CorruptEntry(f"{META} is unreadable: {error}") from error
    if meta.format != CACHE_FORMAT or meta.key != key:
        raise CorruptEntry(f"{META} is for key {meta.key[:12]} format {meta.format}, expected {key[:12]} "
                           f"format {CACHE_FORMAT}")
    checkpoint = checkpoint_path(entry, meta)
    if not checkpoint.is_file():
        raise CorruptEntry(f"checkpoint {str(checkpoint)!r} is missing")
    size = checkpoint.stat().st_size
    if size != meta.checkpoint_bytes:
        raise CorruptEntry(f"checkpoint {str(checkpoint)!r} has {size} bytes, {META} recorded {meta.checkpoint_bytes}")
    digest = sha256_file(checkpoint)
    if digest != meta.checkpoint_sha256:
        raise CorruptEntry(f"checkpoint {str(checkpoint)!r} has SHA-256 {digest[:12]}, {META} recorded "
                           f"{meta.checkpoint_sha256[:12]}")
    return meta


def checkpoint_path(entry: Path, meta: EntryMeta) -> Path:
    path = Path(meta.checkpoint)
    return path if path.is_absolute() else entry / path
