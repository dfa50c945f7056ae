"""Trained dense baselines: given weights, or trained once and cached, so a search starts instantly.

The cache key hashes everything that determines the weights (model config, the data's contents
and split, the training recipe, the seed), so a changed recipe or dataset never reuses a stale
model; cosmetic settings (threads, log interval, evaluation batch size) are left out of it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from envs.config_keys import reject_unknown_keys
from envs.files import atomic_write, sha256_file
from envs.workload.baseline_cache import (
    CHECKPOINT,
    CorruptEntry,
    EntryMeta,
    cache_key,
    checkpoint_path,
    read_meta,
    write_meta,
)
from envs.workload.baseline_share import fetch_entry
from envs.workload.data import DataConfig, DatasetSplits
from envs.workload.evaluation import evaluate, evaluate_split
from envs.workload.models import build_model
from envs.workload.training import TrainRecipe, TrainStats, train_model
from envs.workload.weights import check_state_dict, load_weights, read_state_dict

log = logging.getLogger(__name__)

CACHE_ENV = "AUTO_PRUNE_CACHE"


def default_cache_dir() -> Path:
    """$AUTO_PRUNE_CACHE/baselines, else ~/.cache/auto-prune/baselines."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else Path.home() / ".cache" / "auto-prune") / "baselines"


@dataclass(frozen=True)
class ModelConfig:
    """The `model` config group (conf/model/*.yaml), less its `recipe` block."""

    name: str = "resnet50"
    small_input: bool = True
    stem: str | None = None
    weights: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | ModelConfig) -> ModelConfig:
        if isinstance(values, cls):
            return values
        known = {f.name for f in fields(cls)}
        reject_unknown_keys(values, known | {"recipe"}, "model config")
        TrainRecipe.from_mapping(values.get("recipe"))  # a bad recipe fails here, before any training
        return cls(**{k: values[k] for k in known if k in values})


@dataclass
class Baseline:
    """A dense model ready for the search, with its accuracies."""

    model: nn.Module  # eval mode, channels-last, on the requested device
    test_accuracy: float
    search_accuracy: float
    checkpoint_path: Path
    trained_seconds: float  # training done by this call: 0.0 when loaded from cache or weights
    source: str  # "trained", "cache" or "weights"
    entry: Path  # the cache folder holding meta.json
    train_stats: TrainStats | None = None  # set when this call trained the model


def _key_fields(model_cfg: ModelConfig, data_cfg: DataConfig, recipe: TrainRecipe | None, seed: int,
                splits: DatasetSplits) -> dict[str, Any]:
    model = asdict(model_cfg)
    if model_cfg.weights is not None:
        model["weights"] = sha256_file(Path(model_cfg.weights).expanduser())
    data = {"name": splits.name, "seed": data_cfg.seed, "search_images": len(splits.search),
            "fingerprint": splits.fingerprint()}
    if splits.name == "imagenet":
        data.update(resize=data_cfg.resize, crop=data_cfg.crop)
    trained = {"recipe": recipe.key_fields(), "seed": seed} if recipe is not None else {}
    return {"model": model, "data": data, **trained}


def _measure(model: nn.Module, splits: DatasetSplits, batch_size: int) -> tuple[float, float]:
    images, labels = splits.search_tensors()
    search = evaluate(model, images, labels, batch_size).accuracy
    test = evaluate_split(model, splits.test, batch_size).accuracy
    return test, search


def _load_entry(model: nn.Module, entry: Path, meta: EntryMeta) -> None:
    try:
        state = read_state_dict(checkpoint_path(entry, meta))
        check_state_dict(model, state, str(entry))
    except (ValueError, FileNotFoundError) as error:
        raise CorruptEntry(str(error)) from error
    model.load_state_dict(state)


def _resolve_recipe(model_cfg: Mapping[str, Any] | ModelConfig, recipe) -> TrainRecipe:
    if recipe is None and isinstance(model_cfg, Mapping) and model_cfg.get("recipe") is not None:
        recipe = model_cfg["recipe"]
    return TrainRecipe.from_mapping(recipe)


def get_baseline(
    model_cfg: Mapping[str, Any] | ModelConfig,
    data_cfg: Mapping[str, Any] | DataConfig,
    recipe: Mapping[str, Any] | TrainRecipe | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    *,
    splits: DatasetSplits | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[str], None] | None = None,
) -> Baseline:
    """The dense baseline for a model and dataset: from the cache, from `model.weights`, or trained.

    Args:
        model_cfg: ModelConfig or its mapping (a `recipe` key in it is used when `recipe` is None).
        data_cfg: DataConfig or its mapping.
        recipe: how to train when there are no weights (default TrainRecipe()).
        seed: seeds model init and batch order.
        cache_dir: where entries live (default: default_cache_dir()).
        splits: the already loaded dataset, to avoid loading it twice (must match data_cfg).
        device: where to train and evaluate.
        progress: receives training progress lines (default: the training logger).

    The caller's global RNG state is left as it was: model init and training seed their own
    fork of it. An RLlib env runner seeds torch with seed + its index before it builds the env
    that calls this; reseeding the global RNG here made every runner sample the same actions,
    so two runners evaluated every episode twice.
    """
    with torch.random.fork_rng(devices=[]):
        return _load_or_train(model_cfg, data_cfg, recipe, seed, cache_dir, splits, device, progress)


def _load_or_train(model_cfg, data_cfg, recipe, seed, cache_dir, splits, device, progress) -> Baseline:
    """get_baseline's body, run inside a fork of the global RNG."""
    train_recipe = _resolve_recipe(model_cfg, recipe)
    model_cfg, data_cfg = ModelConfig.from_mapping(model_cfg), DataConfig.from_mapping(data_cfg)
    splits = splits if splits is not None else data_cfg.load()
    weights = Path(model_cfg.weights).expanduser() if model_cfg.weights is not None else None
    if weights is not None and not weights.is_file():
        raise FileNotFoundError(f"model weights file {str(weights)!r} does not exist; expected a state dict "
                                "saved with torch.save(model.state_dict(), path), or model.weights=null to train")
    key_fields = _key_fields(model_cfg, data_cfg, None if weights else train_recipe, seed, splits)
    key = cache_key(key_fields)
    entry = Path(cache_dir or default_cache_dir()).expanduser() / f"{model_cfg.name}-{splits.name}-{key[:16]}"
    torch.manual_seed(seed)
    model = build_model(model_cfg.name, splits.num_classes, splits.in_channels, model_cfg.small_input,
                        stem=model_cfg.stem)
    cached = _from_cache(model, entry, key, device, "re-evaluating the weights" if weights else "retraining")
    if cached is None and weights is None and fetch_entry(entry, key):  # another node's driver trained it
        cached = _from_cache(model, entry, key, device, "retraining")
    if cached is not None:
        return cached

    trained_seconds, stats = 0.0, None
    if weights is not None:
        load_weights(model, weights)
        checkpoint = weights.resolve()
        digest, size = key_fields["model"]["weights"], checkpoint.stat().st_size
    else:
        stats = train_model(model, splits.train, train_recipe, seed, device=device, progress=progress)
        trained_seconds = stats.seconds
        checkpoint = entry / CHECKPOINT
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        digest, size = atomic_write(checkpoint, lambda path: torch.save(state, path))
    model = _ready(model, device)
    test_accuracy, search_accuracy = _measure(model, splits, data_cfg.eval_batch_size)
    write_meta(entry, EntryMeta(
        key=key, key_fields=key_fields, test_accuracy=test_accuracy, search_accuracy=search_accuracy,
        train_seconds=trained_seconds, checkpoint=checkpoint.name if weights is None else str(checkpoint),
        checkpoint_sha256=digest, checkpoint_bytes=size,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), torch_version=torch.__version__,
    ))
    log.info("baseline %s %s: test %.4f, search %.4f (%s)", model_cfg.name,
             "loaded from weights" if weights else f"trained in {trained_seconds:.0f} s", test_accuracy,
             search_accuracy, entry)
    return Baseline(model, test_accuracy, search_accuracy, checkpoint, trained_seconds,
                    "weights" if weights else "trained", entry, stats)


def _from_cache(model: nn.Module, entry: Path, key: str, device: str | torch.device,
                otherwise: str) -> Baseline | None:
    """The cached baseline at `entry`, or None when there is none or it cannot be trusted (logged)."""
    try:
        meta = read_meta(entry, key)
        if meta is None:
            return None
        _load_entry(model, entry, meta)
    except CorruptEntry as error:
        log.warning("baseline cache entry %s is corrupt (%s): ignoring it and %s", entry, error, otherwise)
        return None
    log.info("baseline loaded from cache %s: test %.4f, search %.4f", entry, meta.test_accuracy,
             meta.search_accuracy)
    return Baseline(_ready(model, device), meta.test_accuracy, meta.search_accuracy, checkpoint_path(entry, meta),
                    0.0, "cache", entry)


def _ready(model: nn.Module, device: str | torch.device) -> nn.Module:
    return model.to(device=device, memory_format=torch.channels_last).eval()
