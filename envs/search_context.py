"""Everything an episode needs that does not change between episodes, built once per process.

Loading data and the trained baseline, listing the model's matrices (a forward pass) and
pricing the dense mapping are done here once; every env built in the same process from
the same config shares the result, so an RLlib env runner pays for it once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from envs.embedding import PrunableLayer, group_by_module
from envs.search_space import SearchSpace, build_search_space
from envs.workload.baseline import Baseline, get_baseline
from envs.workload.data import DataConfig, DatasetSplits
from envs.workload.device import resolve_device
from hw.cost_model import compacted_crossbars, price_layers
from hw.cost_report import CostReport
from hw.layout_types import LayerOccupancy
from hw.spec import HardwareSpec, hw_spec_from_dict
from mapping.granularity import STRUCTURAL_GRANULARITIES, check_granularity, removed_units
from mapping.matrices import LayerMatrix, layer_matrices, prunable_layers

CONTEXT_SECTIONS = ("model", "data", "hw", "paths", "seed")


@dataclass
class SearchContext:
    """The dense model, its data and its crossbar description, shared by a process's envs."""

    spec: HardwareSpec
    data: DatasetSplits
    baseline: Baseline
    seed: int
    input_shape: tuple[int, ...]
    matrices: list[LayerMatrix]
    layers: list[PrunableLayer]
    layer_dense_crossbars: np.ndarray
    dense_cost: CostReport
    dense_occupancies: list[LayerOccupancy]
    dense_macs: float
    dense_weights: float
    original_weights: dict[str, torch.Tensor]
    search_tensors: tuple[torch.Tensor, torch.Tensor]
    _finetune: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)
    _samples: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)
    _spaces: dict[tuple[str, float, bool], SearchSpace] = field(default_factory=dict, repr=False)
    _compacted: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)
    _reference: dict[tuple[Any, ...], float] = field(default_factory=dict, repr=False)

    @property
    def model(self) -> nn.Module:
        return self.baseline.model

    def reference_accuracy(self, key: tuple[Any, ...], measure: Callable[[], float]) -> float:
        """The unpruned model's search accuracy under one way of measuring (`key`: evaluation mode,
        images, recovery), measured once per process.

        Δacc compares like with like: on the crossbar simulator the reference is the dense
        model on the same simulator, and it gets the same recovery as every pruned model, so
        neither quantization nor recalibration alone counts as pruning loss.
        """
        if key not in self._reference:
            self._reference[key] = measure()
        return self._reference[key]

    def search_subset(self, images: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first `images` search images (all when None): a cheaper, still paired, accuracy signal."""
        all_images, labels = self.search_tensors
        if images is None or images >= len(labels):
            return all_images, labels
        return all_images[:images], labels[:images]

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    def training_sample(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`count` training images (never search images) and their labels: a seeded, fixed sample,
        so every episode recalibrates and fine-tunes on the same images."""
        if count not in self._samples:
            generator = torch.Generator().manual_seed(self.seed)
            images, labels = next(iter(self.data.train.batches(count, shuffle=True, generator=generator)))
            self._samples[count] = images.contiguous(memory_format=torch.channels_last), labels
        return self._samples[count]

    def recovery_images(self, count: int) -> torch.Tensor:
        """The images BatchNorm is recalibrated on: `training_sample(count)`'s."""
        return self.training_sample(count)[0]

    def search_space(self, granularity: str, pmax: float, snap: bool) -> SearchSpace:
        """The layers a search decides and their crossbar breakpoints (built once per setting)."""
        key = (granularity, float(pmax), bool(snap))
        if key not in self._spaces:
            self._spaces[key] = build_search_space(self.layers, granularity, self.spec, pmax, snap)
        return self._spaces[key]

    def compacted_crossbars(self, granularity: str, packing: str) -> int:
        """Crossbars of the unpruned model compacted in `granularity` (the packing gain's denominator)."""
        key = (granularity, packing)
        if key not in self._compacted:
            self._compacted[key] = compacted_crossbars(self.spec, self.dense_occupancies, granularity, packing)
        return self._compacted[key]

    def finetune_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All training images and labels, for the final fine-tune (loaded on first use)."""
        if self._finetune is None:
            self._finetune = self.data.train.tensors()
        return self._finetune


def estimated_layer_crossbars(matrix: LayerMatrix, ratio: float, granularity: str, spec: HardwareSpec) -> int:
    """Crossbars one matrix occupies at `ratio` under a structural granularity (filter or channel).

    It prices the shrunken matrix densely and ignores the channels that coupled layers remove;
    the mask granularities have exact counts in mapping/breakpoints.py.
    """
    check_granularity(granularity, STRUCTURAL_GRANULARITIES)
    rows, cols = matrix.rows, matrix.cols
    if granularity == "filter":
        cols -= removed_units(ratio, cols)
    else:
        kernel = math.prod(matrix.weight_shape[2:]) if len(matrix.weight_shape) > 2 else 1
        rows = (rows // kernel - removed_units(ratio, rows // kernel)) * kernel
    return spec.dense_crossbars(rows, cols)


def build_search_context(config: Mapping[str, Any]) -> SearchContext:
    spec = hw_spec_from_dict(dict(config["hw"]))
    seed = int(config.get("seed", 0))
    data = DataConfig.from_mapping(dict(config["data"])).load()
    cache_dir = (config.get("paths") or {}).get("cache_dir")
    device = resolve_device((config.get("env") or {}).get("device", "auto"))
    baseline = get_baseline(dict(config["model"]), dict(config["data"]), seed=seed, cache_dir=cache_dir,
                            splits=data, device=device)
    model = baseline.model.cpu().eval()  # the shared reference stays on the CPU; each evaluator copies it over
    input_shape = (1, data.in_channels, *data.image_size)
    matrices = layer_matrices(model, input_shape)
    dense_by_matrix = {m.name: spec.dense_crossbars(m.rows, m.cols) for m in matrices}
    modules = dict(prunable_layers(model))
    layers = group_by_module(matrices, modules, dense_by_matrix)
    dense_occupancies = [LayerOccupancy.dense(m.name, m.rows, m.cols, m.positions, spec) for m in matrices]
    images, labels = data.search_tensors()
    return SearchContext(
        spec=spec, data=data, baseline=baseline, seed=seed, input_shape=input_shape, matrices=matrices,
        layers=layers,
        layer_dense_crossbars=np.array([layer.dense_crossbars for layer in layers], dtype=np.float64),
        dense_cost=price_layers(spec, dense_occupancies), dense_occupancies=dense_occupancies,
        dense_macs=float(sum(m.rows * m.cols * m.positions for m in matrices)),
        dense_weights=float(sum(m.rows * m.cols for m in matrices)),
        original_weights={name: module.weight.detach().clone() for name, module in modules.items()},
        search_tensors=(images.contiguous(memory_format=torch.channels_last), labels),
    )


@lru_cache(maxsize=2)
def _cached_context(key: str) -> SearchContext:
    return build_search_context(json.loads(key))


def search_context(config: Mapping[str, Any]) -> SearchContext:
    """The process-wide SearchContext for the config's model, data, hw, paths and seed."""
    missing = [section for section in ("model", "data", "hw") if section not in config]
    if missing:
        raise ValueError(f"env_config lacks the sections {missing} (expected the resolved experiment config)")
    relevant = {section: config.get(section) for section in CONTEXT_SECTIONS}
    relevant["device"] = (config.get("env") or {}).get("device", "auto")
    return _cached_context(json.dumps(relevant, sort_keys=True, default=str))
