"""The weight matrices a model puts on crossbars, and how a matrix mask maps back to weights.

Crossbars hold matrices, not layers: a conv layer `Cout x Cin x kh x kw` is unrolled (im2col)
to `R x C` with `R = Cin*kh*kw` wordlines and `C = Cout` bitline groups, a linear layer to
`R = in`, `C = out` (docs/hardware-model.md). A grouped conv is one matrix per group, because a group's
outputs never read the other groups' inputs. Everything downstream (masks, packing, pricing)
works on these matrices; only this module knows how they relate to `nn.Module` weights.

Internally the transposed matrix `W.T = weight.reshape(Cout, -1)` is used: it is a free,
contiguous view of the weight, with one row per output column.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class LayerMatrix:
    """One matrix of a prunable layer: where it comes from, its size and its output positions.

    name is the module name, suffixed `[k]` for group k of a grouped conv. positions counts
    output positions per inference (conv: output H*W summed over calls; linear: 1 per call).
    """

    name: str
    module_name: str
    kind: str  # "conv" | "linear"
    weight_shape: tuple[int, ...]
    group: int
    groups: int
    rows: int
    cols: int
    positions: int

    @property
    def weight_rows(self) -> slice:
        """The slice of `weight.reshape(Cout, -1)` (output channels) this matrix covers."""
        return slice(self.group * self.cols, (self.group + 1) * self.cols)


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Conv2d and Linear modules in module order: the layers that occupy crossbars."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, PRUNABLE_TYPES)]


def _groups(module: nn.Module) -> int:
    return int(module.groups) if isinstance(module, nn.Conv2d) else 1


def output_positions(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Output positions per prunable layer, from one forward pass on zeros with hooks.

    A conv layer fires its crossbars once per output pixel (H*W), a linear layer once per
    input vector beyond the batch dimension. A module called twice counts both calls.
    """
    layers = prunable_layers(model)
    positions = {name: 0 for name, _ in layers}
    handles = []

    def hook(name: str):
        def record(_module: nn.Module, _inputs, output: torch.Tensor) -> None:
            shape = output.shape
            per_item = math.prod(shape[2:]) if isinstance(_module, nn.Conv2d) else math.prod(shape[1:-1])
            positions[name] += int(per_item)
        return record

    for name, module in layers:
        handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    unused = [name for name, count in positions.items() if count == 0]
    if unused:
        raise ValueError(f"prunable layers {unused} did not run in a forward pass on input shape "
                         f"{tuple(input_shape)}: they cannot be mapped (no output positions)")
    return positions


def layer_matrices(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerMatrix]:
    """Every matrix the model puts on crossbars, in module order (grouped convs: one per group)."""
    positions = output_positions(model, input_shape)
    matrices = []
    for name, module in prunable_layers(model):
        weight_shape = tuple(int(s) for s in module.weight.shape)
        kind = "conv" if isinstance(module, nn.Conv2d) else "linear"
        groups = _groups(module)
        cols = weight_shape[0] // groups
        rows = math.prod(weight_shape[1:])
        for group in range(groups):
            label = f"{name}[{group}]" if groups > 1 else name
            matrices.append(LayerMatrix(label, name, kind, weight_shape, group, groups, rows, cols,
                                        positions[name]))
    return matrices


def transposed_matrix(module: nn.Module, layer: LayerMatrix) -> torch.Tensor:
    """`W.T` (C x R) of one matrix: a view of the weight, one row per output column."""
    return module.weight.detach().reshape(module.weight.shape[0], -1)[layer.weight_rows]


def weight_matrix(module: nn.Module, layer: LayerMatrix) -> torch.Tensor:
    """The R x C matrix `W` of docs/hardware-model.md (conv: `weight.reshape(Cout, -1).T`; linear: `weight.T`)."""
    return transposed_matrix(module, layer).T


def weight_mask(matrix_masks: list[torch.Tensor | np.ndarray], weight_shape: tuple[int, ...]) -> torch.Tensor:
    """Back-convert the R x C masks of a layer's matrices (one per group) to a mask of its weight."""
    groups = len(matrix_masks)
    parts = [torch.as_tensor(np.asarray(mask, dtype=bool)).T for mask in matrix_masks]
    stacked = torch.cat(parts, dim=0) if groups > 1 else parts[0]
    expected = (weight_shape[0], math.prod(weight_shape[1:]))
    if tuple(stacked.shape) != expected:
        raise ValueError(f"masks of shape {tuple(parts[0].shape[::-1])} x {groups} groups do not fit a "
                         f"weight of shape {weight_shape}")
    return stacked.reshape(weight_shape)


def model_fingerprint(model: nn.Module) -> str:
    """sha256 over the prunable layers' names, types, weight shapes and groups.

    It identifies the structure a layout was made for (not the weight values, which
    fine-tuning changes without invalidating the layout), and needs no forward pass.
    """
    digest = hashlib.sha256()
    for name, module in prunable_layers(model):
        shape = tuple(int(s) for s in module.weight.shape)
        digest.update(f"{name}|{type(module).__name__}|{shape}|{_groups(module)};".encode())
    return digest.hexdigest()


def write_weight_matrix(module: nn.Module, layer: LayerMatrix, matrix: torch.Tensor) -> None:
    """Write an R x C matrix back into the part of `module`'s weight it came from (weight_matrix's inverse)."""
    weight = module.weight
    expected = (layer.rows, layer.cols)
    if tuple(matrix.shape) != expected:
        raise ValueError(f"{layer.name}: a matrix of shape {tuple(matrix.shape)} does not fit {expected}")
    with torch.no_grad():
        flat = weight.detach().reshape(weight.shape[0], -1).clone()
        flat[layer.weight_rows] = matrix.T.to(flat.dtype)
        weight.copy_(flat.reshape(weight.shape))
