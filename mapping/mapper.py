"""From a model and its per-layer pruning ratios to a ModelLayout (and the pruned model to run).

This is mapping/'s front door. A search builds one `Mapper` per model (listing its matrices
costs a forward pass, done once) and calls `Mapper.map(ratios)` every episode: it gets the
layout to price and either the weight masks to apply (ou_row, crossbar_row) or a physically
smaller model that maps densely (the structural baselines, filter and channel). `map_model`
and `prune_and_map` do the same for one-off use (inspect, reports, tests).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from hw.spec import HardwareSpec
from mapping.granularity import (
    MASK_GRANULARITIES,
    GranularityError,
    check_granularity,
    check_ratio,
    removed_units,
    segment_mask,
)
from mapping.layout import LayerLayout, ModelLayout, hw_geometry
from mapping.matrices import (
    LayerMatrix,
    layer_matrices,
    model_fingerprint,
    prunable_layers,
    transposed_matrix,
)
from mapping.packing import (
    PACKINGS,
    PackingError,
    dense_keep,
    pack_layer,
    share_crossbars,
    total_crossbars,
)
from mapping.structural import prune_structural

DEFAULT_INPUT_SHAPE = (1, 1, 28, 28)


def resolve_ratios(ratios: Mapping[str, float] | float, module_names: list[str]) -> dict[str, float]:
    """Per-module ratios from one ratio for all or a mapping by module name (missing names: 0).

    An unknown name is an error rather than ignored, because it usually is a typo in a policy.
    """
    if isinstance(ratios, Mapping):
        unknown = sorted(set(ratios) - set(module_names))
        if unknown:
            raise GranularityError(f"pruning ratios name unknown layers {unknown}; prunable layers are "
                                   f"{module_names[:8]}{' ...' if len(module_names) > 8 else ''}")
        return {name: check_ratio(ratios.get(name, 0.0), name) for name in module_names}
    value = check_ratio(ratios)
    return dict.fromkeys(module_names, value)


def _check_packing(packing: str) -> None:
    if packing not in PACKINGS:
        raise PackingError(f"unknown packing {packing!r}: expected one of {list(PACKINGS)}")


def _model_name(model: nn.Module, model_name: str | None) -> str:
    return model_name if model_name is not None else type(model).__name__


def _assemble(model: nn.Module, layers: list[LayerLayout], spec: HardwareSpec, granularity: str, packing: str,
              dense_crossbars: int, model_name: str | None) -> ModelLayout:
    packings = [layer.packing for layer in layers]
    if packing == "shared":
        crossbars = share_crossbars(packings, spec)
    else:
        crossbars = total_crossbars(packings, spec, packing)
    return ModelLayout(_model_name(model, model_name), model_fingerprint(model), spec.name, hw_geometry(spec),
                       granularity, packing, layers, crossbars, dense_crossbars)


def _dense_crossbars(matrices: list[LayerMatrix], spec: HardwareSpec) -> int:
    return sum(spec.dense_crossbars(m.rows, m.cols) for m in matrices)


def map_matrices(model: nn.Module, matrices: list[LayerMatrix], ratios: Mapping[str, float] | float,
                 spec: HardwareSpec, granularity: str = "ou_row", packing: str = "per_layer",
                 model_name: str | None = None) -> ModelLayout:
    """map_model for ou_row/crossbar_row with the model's matrices already listed.

    Listing matrices costs a forward pass (for output positions); a search that maps the
    same model every episode lists them once (`layer_matrices`) and calls this.
    """
    check_granularity(granularity, MASK_GRANULARITIES)
    _check_packing(packing)
    per_layer = resolve_ratios(ratios, [name for name, _ in prunable_layers(model)])
    modules = dict(prunable_layers(model))
    layers = []
    for matrix in matrices:
        ratio = per_layer[matrix.module_name]
        matrix_t = transposed_matrix(modules[matrix.module_name], matrix).cpu()
        if removed_units(ratio, matrix.rows) == 0:  # nothing pruned: the dense mapping, no index tables
            keep = dense_keep(matrix.rows, matrix.cols, spec)
            packed = pack_layer(keep, matrix.cols, "dense", spec)
        else:
            keep = segment_mask(matrix_t, ratio, granularity, spec)
            packed = pack_layer(keep, matrix.cols, granularity, spec)
        layers.append(LayerLayout(matrix, ratio, keep, packed, matrix.rows, matrix.cols))
    return _assemble(model, layers, spec, granularity, packing, _dense_crossbars(matrices, spec), model_name)


def _map_dense(pruned: nn.Module, original: list[LayerMatrix], ratios: dict[str, float], spec: HardwareSpec,
               granularity: str, input_shape: tuple[int, ...], packing: str,
               model_name: str | None) -> ModelLayout:
    """Dense mapping of a structurally pruned model, priced against the original's matrices."""
    dense_shape = {m.name: (m.rows, m.cols) for m in original}
    layers = []
    for matrix in layer_matrices(pruned, input_shape):
        keep = dense_keep(matrix.rows, matrix.cols, spec)
        rows, cols = dense_shape.get(matrix.name, (matrix.rows, matrix.cols))
        layers.append(LayerLayout(matrix, ratios[matrix.module_name], keep,
                                  pack_layer(keep, matrix.cols, "dense", spec), rows, cols))
    return _assemble(pruned, layers, spec, granularity, packing, _dense_crossbars(original, spec), model_name)


def prune_and_map(model: nn.Module, ratios: Mapping[str, float] | float, spec: HardwareSpec,
                  granularity: str = "ou_row", input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE,
                  packing: str = "per_layer", model_name: str | None = None) -> tuple[nn.Module, ModelLayout]:
    """Prune a copy of `model` and map it: returns (the model to run, its layout).

    For ou_row/crossbar_row the model is a masked copy; for filter/channel a physically
    smaller copy, whose layout is dense and whose fingerprint is the smaller model's.
    """
    mapped = Mapper(model, spec, granularity, packing, input_shape, model_name=model_name).map(ratios)
    if mapped.shrunken is not None:
        return mapped.shrunken, mapped.layout
    return apply_masks(model, mapped.layout), mapped.layout


def map_model(model: nn.Module, ratios: Mapping[str, float] | float, spec: HardwareSpec,
              granularity: str = "ou_row", input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE,
              packing: str = "per_layer", model_name: str | None = None) -> ModelLayout:
    """Choose each layer's kept units by magnitude, compact and pack them: the model's layout.

    Args:
        model: the model (not modified).
        ratios: one pruning ratio for every layer, or a mapping from module name to ratio
            (layers not named keep ratio 0), each in [0, 1).
        spec: the hardware (group widths, OU and crossbar geometry).
        granularity: ou_row | crossbar_row | filter | channel.
        input_shape: an input shape the model accepts; sets the layers' output positions.
        packing: per_layer (each layer on crossbars of its own) or shared (ou_row slots of
            all layers fill crossbars together).
        model_name: recorded in the layout (default: the model's class name).

    For filter/channel the layout describes the structurally pruned copy; use prune_and_map
    to get that copy too.
    """
    return Mapper(model, spec, granularity, packing, input_shape, model_name=model_name).map(ratios).layout


def weight_masks(model: nn.Module, layout: ModelLayout) -> dict[str, torch.Tensor]:
    """Each mapped module's weight mask (weight-shaped, weight dtype; 1 = kept) from the layout."""
    layout.check_model(model)
    modules = dict(prunable_layers(model))
    by_module: dict[str, list[LayerLayout]] = {}
    for layer in layout.layers:
        by_module.setdefault(layer.matrix.module_name, []).append(layer)
    masks = {}
    for name, layers in by_module.items():
        weight = modules[name].weight
        # Expanded from the small keep tables straight into the weight's dtype: one pass over the
        # weight-sized mask instead of a bool copy, a repeat and a conversion (the search's hot path).
        parts = [torch.from_numpy(layer.keep).to(weight.device, weight.dtype)
                 .repeat_interleave(layer.packing.group_width, dim=0)[: layer.matrix.cols] for layer in layers]
        mask = torch.cat(parts, dim=0) if len(parts) > 1 else parts[0]
        masks[name] = mask.reshape(weight.shape)
    return masks


def apply_masks(model: nn.Module, layout: ModelLayout, inplace: bool = False) -> nn.Module:
    """Zero the weights the layout prunes (in a deep copy unless inplace); returns that model."""
    layout.check_model(model)
    target = model if inplace else copy.deepcopy(model)
    modules = dict(prunable_layers(target))
    with torch.no_grad():
        for name, mask in weight_masks(target, layout).items():
            modules[name].weight.mul_(mask)
    return target


@dataclass
class MappedPolicy:
    """One policy mapped: its layout, and how to run it (masks on the model, or a smaller model)."""

    layout: ModelLayout
    masks: dict[str, torch.Tensor]  # module name -> weight-shaped mask; empty for filter/channel
    shrunken: nn.Module | None  # the structurally pruned copy for filter/channel; None otherwise


class Mapper:
    """Maps policies of one model onto one hardware spec in one granularity and packing."""

    def __init__(self, model: nn.Module, spec: HardwareSpec, granularity: str, packing: str = "per_layer",
                 input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE, matrices: list[LayerMatrix] | None = None,
                 model_name: str | None = None) -> None:
        check_granularity(granularity)
        _check_packing(packing)
        self.model, self.spec, self.granularity, self.packing = model, spec, granularity, packing
        self.input_shape, self.model_name = input_shape, model_name
        self.matrices = matrices if matrices is not None else layer_matrices(model, input_shape)

    def map(self, ratios: Mapping[str, float] | float) -> MappedPolicy:
        """The policy's layout, with the masks to apply (chosen from the model's current weights)."""
        return STRATEGIES[self.granularity](self, ratios)


def _mask_and_map(mapper: Mapper, ratios: Mapping[str, float] | float) -> MappedPolicy:
    """ou_row, crossbar_row: keep row segments by magnitude, compact and pack them; the model is masked."""
    layout = map_matrices(mapper.model, mapper.matrices, ratios, mapper.spec, mapper.granularity, mapper.packing,
                          mapper.model_name)
    return MappedPolicy(layout, weight_masks(mapper.model, layout), None)


def _shrink_and_map(mapper: Mapper, ratios: Mapping[str, float] | float) -> MappedPolicy:
    """filter, channel: remove whole units with torch-pruning; the smaller model maps densely, priced
    against the original's matrices."""
    per_layer = resolve_ratios(ratios, [name for name, _ in prunable_layers(mapper.model)])
    shrunken = prune_structural(mapper.model, per_layer, mapper.granularity, mapper.input_shape)
    layout = _map_dense(shrunken, mapper.matrices, per_layer, mapper.spec, mapper.granularity, mapper.input_shape,
                        mapper.packing, mapper.model_name)
    return MappedPolicy(layout, {}, shrunken)


# How each granularity turns ratios into a mapped policy: the one place that dispatches on it.
STRATEGIES = {"ou_row": _mask_and_map, "crossbar_row": _mask_and_map,
              "filter": _shrink_and_map, "channel": _shrink_and_map}
