"""Layer sensitivity: every searchable layer pruned alone, once per baseline, as the agent's prior knowledge.

An agent that starts from a uniform allocation has to discover by trial which layers tolerate
pruning; PIM-Prune measures it instead, pruning each layer alone. With `env.sensitivity_probe`
set to a ratio, the environment does that probe once (one evaluated episode per searchable
layer, recovered and scored exactly as any episode, without early stopping), and the agent
gets it twice: as a static feature of each layer's observation, and in the exploration prior,
which starts robust layers at higher ratios than fragile ones (see `prior_ratios`). The
probe's episodes count against `search.episodes` (platform/run.py), so the comparison with
methods that do not probe stays at equal evaluated episodes.

The result is cached beside the baseline it was measured on (`sensitivity-<key>.json` in the
baseline's cache entry), keyed by everything that changes an episode's accuracy; a file whose
key, length or values do not check out is measured again.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from envs.files import atomic_write
from envs.relabel import relabelled

if TYPE_CHECKING:  # envs/settings.py imports this module's check_probe_ratio
    from envs.settings import EnvSettings

PROBE_FILE = "sensitivity-{}.json"


def check_probe_ratio(ratio: float | None, pmax: float) -> None:
    """env.sensitivity_probe: null (no probe) or a ratio in (0, env.pmax]."""
    if ratio is None:
        return
    if not (isinstance(ratio, (int, float)) and math.isfinite(ratio) and 0.0 < ratio <= pmax):
        raise ValueError(f"env.sensitivity_probe must be null or a pruning ratio in (0, env.pmax={pmax}], "
                         f"got {ratio!r}")


def probe_vectors(size: int, ratio: float) -> list[list[float]]:
    """One search vector per searchable layer: that layer at `ratio`, every other one unpruned."""
    vectors = []
    for layer in range(size):
        vector = [0.0] * size
        vector[layer] = ratio
        vectors.append(vector)
    return vectors


def measure_probe(evaluator: Any, ratio: float) -> list[dict[str, Any]]:
    """Each searchable layer pruned alone at `ratio` (snapped as an episode snaps it), recovered and
    measured in full: one record per layer with its search vector, Δacc, CR and crossbars. A recovery
    that diverges counts as losing everything."""
    records = []
    for vector in probe_vectors(evaluator.space.size, ratio):
        result = evaluator.evaluate_in_full(evaluator.space.expand(vector))
        records.append({"vector": [float(v) for v in vector],
                        "delta_acc": 1.0 if result.reason else float(result.delta_acc),
                        "compression_rate": float(result.compression_rate), "crossbars": int(result.crossbars)})
    return records


def cached_probe(entry: Path, key: dict[str, Any], measure: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The probe's records for `key` from the baseline entry's cache, else measure() and store them."""
    text = json.dumps(key, sort_keys=True)
    path = Path(entry) / PROBE_FILE.format(hashlib.sha256(text.encode()).hexdigest()[:16])
    stored = _read(path, key)
    if stored is not None:
        return stored
    records = measure()
    atomic_write(path, lambda temp: temp.write_text(json.dumps({"key": key, "records": records}, sort_keys=True)))
    return records


def _read(path: Path, key: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A stored probe, only if it is for this key and holds one well-formed record per layer."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("key") != json.loads(json.dumps(key)):
        return None
    records = stored.get("records")
    if not isinstance(records, list) or len(records) != key["layers"]:
        return None
    for record in records:
        values = [record.get(name) for name in ("delta_acc", "compression_rate", "crossbars")] if isinstance(
            record, dict) else [None]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            return None
    return records


def probe_losses(records: Sequence[dict[str, Any]]) -> list[float]:
    return [float(record["delta_acc"]) for record in records]


def history_records(records: Sequence[dict[str, Any]], settings: EnvSettings) -> list[dict[str, Any]]:
    """The probe's episodes as a trial's search history records them, scored under its settings
    (envs/relabel.py: its epsilon and reward), so that learning curves count them among the
    evaluated episodes. Probe episodes are evaluated in full, so every one has a verdict."""
    return [{**relabelled(record, settings.epsilon, settings.scoring_reward, settings.penalty), "probe": True}
            for record in records]


def sensitivity_feature(losses: Sequence[float], epsilon: float) -> np.ndarray:
    """The observation's per-layer feature: the probe's loss in units of epsilon, 0 (no loss) to 1
    (epsilon or more), before the observation's per-feature min-max normalisation."""
    return np.clip(np.asarray(losses, dtype=np.float64) / epsilon, 0.0, 1.0)


def sensitivity_weights(losses: Sequence[float], epsilon: float) -> list[float]:
    """1 / (1 + loss/epsilon): a layer that alone costs epsilon of accuracy at the probe gets half
    the ratio of one that costs nothing (PIM-Prune's rule; pim_prune and the agent's prior share it)."""
    return [1.0 / (1.0 + max(float(loss), 0.0) / epsilon) for loss in losses]


def prior_ratios(losses: Sequence[float], epsilon: float, mean: float, pmax: float) -> list[float]:
    """Per-layer centres of the exploration prior: `mean` on average, shared out by
    sensitivity_weights, capped at pmax."""
    weights = np.asarray(sensitivity_weights(losses, epsilon))
    return [float(v) for v in np.minimum(mean * weights / weights.mean(), pmax)]
