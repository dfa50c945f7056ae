"""The record of one evaluated policy: what every episode reports and every consumer reads.

The env's terminal `info`, the search methods' episodes, the running bests and finalists,
history.jsonl, the re-check and the summary all carry this one record, so adding a metric
is one field here. Records travel as plain dicts (`info()`: Ray, JSON and MLflow take
them as they are) and come back through `from_info`, which checks that none is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any


def _plain(value: Any) -> Any:
    """numpy scalars and arrays -> Python values, so records pickle, JSON-encode and log cleanly."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass
class MappedFigures:
    """What a pruned model's crossbar mapping costs, and its gains over the dense mapping: the hardware's
    feedback, shared by an episode's record and a finalized policy's (envs/finalize.py FinalResult)."""

    compression_rate: float
    packing_gain: float  # CR = packing_gain x pruning_gain (hw.cost_model.CompressionSplit)
    pruning_gain: float
    crossbars: int
    dense_crossbars: int
    energy_nj: float
    area_mm2: float
    area_efficiency_gain: float
    energy_efficiency_gain: float


@dataclass
class EpisodeResult(MappedFigures):
    """What the terminal step reports (the `info` dict RLlib callbacks read)."""

    reward: float
    accuracy: float
    baseline_accuracy: float
    delta_acc: float
    feasible: bool
    flops_compression: float
    params_compression: float
    weight_sparsity: float
    ratios: list[float]
    layer_names: list[str]
    on_hardware: bool
    stopped_early: bool
    eval_seconds: float
    episode_seconds: float
    reason: str = ""
    budget_cr: float = 0.0  # the target CR the episode's crossbar budget held it to (0: no budget)
    worst_accuracy: float | None = None  # under env.variation: the worst device draw's (accuracy is their mean)
    confirmed: bool = False  # scored on the whole search split by env.confirm_best (envs/confirmation.py)

    def info(self) -> dict[str, Any]:
        """The terminal step's `info`: every field, as plain Python values (JSON, pickle, MLflow)."""
        return asdict(self)

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> EpisodeResult:
        """The record back from an `info` dict (an env runner's, a JSON file's); numpy values become Python
        values. Raises ValueError naming the fields an env left out, so a broken env fails loudly."""
        missing = [name for name in REQUIRED_FIELDS if name not in info]
        if missing:
            raise ValueError(f"an episode's info lacks {missing}: envs report every field of "
                             f"envs.result.EpisodeResult")
        values = {name: _plain(info[name]) for name in FIELD_NAMES if name in info}
        values["feasible"] = bool(values["feasible"])
        return cls(**values)


FIELD_NAMES = tuple(f.name for f in fields(EpisodeResult))
# Fields with a default may be absent from records written before they existed (a resumed sweep's history).
REQUIRED_FIELDS = tuple(f.name for f in fields(EpisodeResult) if f.default is MISSING)
