"""Hand a trained baseline from the driver to env runners on other nodes, through Ray's object store.

The driver trains (or loads) the dense baseline once, before any trial starts. An env runner
on another node has its own disk, so its baseline cache misses and, left alone, it would
train the same model again. Instead the driver publishes the cache entry (meta.json and the
checkpoint's bytes) in a named actor that lives as long as the driver's job; a runner whose
cache misses fetches the entry from it, checks the checkpoint's SHA-256 against the
metadata, and writes it into its own cache atomically. Nothing fetched is trusted unchecked:
`read_meta` re-verifies the written entry before it is loaded.

Given weights (`model.weights`) are not shipped: every node must read that file itself.
Outside Ray, or when no driver published anything, `fetch_entry` does nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path

from envs.files import atomic_write
from envs.workload.baseline_cache import CHECKPOINT, META, EntryMeta, checkpoint_path, read_meta

log = logging.getLogger(__name__)

DEPOT_NAME = "auto_prune_baseline_depot"
_owned_depot = None  # the driver's handle on the depot it created


class _Depot:
    """Cache entries by folder name: (meta.json text, checkpoint bytes)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, bytes]] = {}

    def put(self, name: str, meta: str, checkpoint: bytes) -> None:
        self.entries[name] = (meta, checkpoint)

    def get(self, name: str) -> tuple[str, bytes] | None:
        return self.entries.get(name)


def _depot(create: bool):
    ray = sys.modules.get("ray")  # a process that never imported Ray is not in a Ray job
    if ray is None or not ray.is_initialized():
        return None
    try:
        return ray.get_actor(DEPOT_NAME)
    except ValueError:
        if not create:
            return None
    # num_cpus=0: the depot must never compete with trials for the cluster's CPUs. Ray kills an
    # actor whose last handle is gone, named or not: the driver keeps this one for its lifetime.
    global _owned_depot
    _owned_depot = ray.remote(num_cpus=0)(_Depot).options(name=DEPOT_NAME, get_if_exists=True).remote()
    return _owned_depot


def publish_entry(entry: Path) -> bool:
    """Offer the checked cache entry at `entry` to every node of the running Ray job; False outside Ray."""
    import ray

    try:
        key = json.loads((entry / META).read_text())["key"]
    except (OSError, ValueError, KeyError) as error:
        raise FileNotFoundError(f"baseline cache entry {entry} has no readable {META}: nothing to publish") from error
    meta = read_meta(entry, key)  # verifies the checkpoint against the metadata before it is offered
    if Path(meta.checkpoint).is_absolute():
        return False  # given weights: every node reads model.weights itself
    depot = _depot(create=True)
    if depot is None:
        return False
    ray.get(depot.put.remote(entry.name, (entry / META).read_text(), checkpoint_path(entry, meta).read_bytes()))
    return True


def fetch_entry(entry: Path, key: str) -> bool:
    """Write the entry the driver published for `entry`'s name into this node's cache; True when written.

    Raises ValueError when the published bytes do not match their metadata (a tampered or
    truncated transfer), so that a runner never trains or loads on an untrusted checkpoint.
    """
    depot = _depot(create=False)
    if depot is None:
        return False
    import ray

    published = ray.get(depot.get.remote(entry.name))
    if published is None:
        return False
    install_entry(entry, key, *published)
    log.info("baseline %s fetched from the driver through Ray's object store (%d bytes)", entry.name,
             len(published[1]))
    return True


def install_entry(entry: Path, key: str, meta_text: str, checkpoint: bytes) -> None:
    """Write a published entry into this node's cache after checking the bytes against their metadata.

    Raises ValueError naming the mismatch (and writes nothing) for a tampered or truncated transfer.
    """
    try:
        meta = EntryMeta(**json.loads(meta_text))
    except (ValueError, TypeError) as error:
        raise ValueError(f"the baseline published for {entry.name} has unreadable metadata: {error}") from error
    digest = hashlib.sha256(checkpoint).hexdigest()
    if meta.key != key or digest != meta.checkpoint_sha256 or len(checkpoint) != meta.checkpoint_bytes:
        raise ValueError(f"the baseline published for {entry.name} does not match its metadata (key "
                         f"{meta.key[:12]} vs {key[:12]}, SHA-256 {digest[:12]} vs {meta.checkpoint_sha256[:12]}, "
                         f"{len(checkpoint)} vs {meta.checkpoint_bytes} bytes)")
    atomic_write(entry / CHECKPOINT, lambda path: path.write_bytes(checkpoint))
    atomic_write(entry / META, lambda path: path.write_text(meta_text))  # last: it marks the entry complete
