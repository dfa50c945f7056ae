"""The per-layer state the agent observes (docs/platform.md), computed once per model.

Static features describe the layer; dynamic ones say where the episode stands in crossbar
terms, so the agent can trade a layer's ratio against the crossbars still to be won.
Static features are min-max normalised per feature across the model's layers, as AMC does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from mapping.matrices import LayerMatrix

# sensitivity: the layer's accuracy loss when pruned alone (env.sensitivity_probe, envs/sensitivity.py), 0 without.
STATIC_FEATURES = ("index", "is_conv", "in_channels", "out_channels", "kernel", "stride", "weights",
                   "positions", "dense_crossbars", "max_saving", "sensitivity")
# budget_fraction: the crossbars an episode may keep, as a fraction of dense (1 / target CR) under
# env.formulation=budget, 0 without a budget: the agent learns one policy per target, as CACP does.
DYNAMIC_FEATURES = ("saved_fraction", "remaining_fraction", "previous_action", "budget_fraction")
N_FEATURES = len(STATIC_FEATURES) + len(DYNAMIC_FEATURES)


@dataclass(frozen=True)
class PrunableLayer:
    """One decision of an episode: a module and the crossbar matrices it owns (several for groups)."""

    name: str
    kind: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    weights: int
    positions: int
    dense_crossbars: int
    matrices: tuple[LayerMatrix, ...]


def group_by_module(matrices: list[LayerMatrix], modules: dict[str, nn.Module],
                    dense_crossbars: dict[str, int]) -> list[PrunableLayer]:
    """One PrunableLayer per module, in module order; dense_crossbars is keyed by matrix name."""
    by_module: dict[str, list[LayerMatrix]] = {}
    for matrix in matrices:
        by_module.setdefault(matrix.module_name, []).append(matrix)
    layers = []
    for name, parts in by_module.items():
        module = modules[name]
        shape = parts[0].weight_shape
        kernel = int(np.prod(shape[2:])) if len(shape) > 2 else 1
        stride = int(module.stride[0]) if isinstance(module, nn.Conv2d) else 1
        in_channels = shape[1] * parts[0].groups
        layers.append(PrunableLayer(
            name=name, kind=parts[0].kind, in_channels=in_channels, out_channels=shape[0], kernel=kernel,
            stride=stride, weights=int(np.prod(shape)), positions=parts[0].positions,
            dense_crossbars=sum(dense_crossbars[m.name] for m in parts), matrices=tuple(parts)))
    return layers


def static_features(layers: list[PrunableLayer], max_saving: list[int],
                    sensitivity: list[float] | None = None) -> np.ndarray:
    """[layers, len(STATIC_FEATURES)] in [0, 1]; a feature constant across layers becomes 0.

    max_saving[i]: the crossbars layer i can free at most (what it can still save, as a feature
    next to its dense crossbars). sensitivity[i]: layer i's probed loss (envs/sensitivity.py), if probed.
    """
    sensitivity = sensitivity if sensitivity is not None else [0.0] * len(layers)
    raw = np.array([[i, layer.kind == "conv", layer.in_channels, layer.out_channels, layer.kernel,
                     layer.stride, layer.weights, layer.positions, layer.dense_crossbars, saving, loss]
                    for i, (layer, saving, loss) in enumerate(zip(layers, max_saving, sensitivity, strict=True))],
                   dtype=np.float64)
    low, high = raw.min(axis=0), raw.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    return ((raw - low) / span).astype(np.float32)


def observation(static: np.ndarray, step: int, saved_fraction: float, remaining_fraction: float,
                previous_action: float, budget_fraction: float = 0.0) -> np.ndarray:
    dynamic = np.array([saved_fraction, remaining_fraction, previous_action, budget_fraction], dtype=np.float32)
    return np.concatenate([static[step], dynamic]).astype(np.float32)
