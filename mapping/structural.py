"""Structural baselines `filter` and `channel`: physically smaller models, mapped densely (docs/hardware-model.md).

`filter` removes a layer's output channels (whole matrix columns), `channel` its input
channels (`kh*kw` rows at once). Both change tensor shapes, so every layer coupled to the
removed channels must shrink with it: the next layer's inputs, BN, and every layer on the
same residual stream. torch-pruning's dependency graph finds those groups; this module only
decides *which* channels go (smallest L2 norm of the layer's own units) and *how many*.

A ratio is the fraction of the layer's original units removed. Layers that share a residual
stream reach the largest ratio any of them asks for: a later layer only removes what its own
ratio still requires after an earlier, coupled layer pruned the stream.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
import torch_pruning as tp
from torch import nn

from mapping.granularity import STRUCTURAL_GRANULARITIES, GranularityError, check_granularity, removed_units
from mapping.matrices import prunable_layers


def _edge_layers(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[set[str], str]:
    """Layers that read the model input (their input channels are the data's) and the last layer run.

    The last prunable layer to run produces the model's output (class scores), whose
    channels a filter baseline must not remove.
    """
    reads_input: set[str] = set()
    order: list[str] = []
    handles = []
    example = torch.zeros(input_shape)

    def hook(name: str):
        def record(_module: nn.Module, inputs: tuple) -> None:
            order.append(name)
            if inputs and inputs[0] is example:
                reads_input.add(name)
        return record

    for name, module in prunable_layers(model):
        handles.append(module.register_forward_pre_hook(hook(name)))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return reads_input, order[-1]


def _flattened_producer(graph: tp.DependencyGraph, linear: nn.Linear) -> tuple[nn.Conv2d, int] | None:
    """The conv whose feature map a linear layer reads flattened, and the features per channel.

    A classifier after `flatten` (VGG) has `C * H * W` input features but only `C` input
    channels: channel pruning must remove whole channels, i.e. the conv's filters.
    """
    for dep, _ in graph.get_pruning_group(linear, tp.prune_linear_in_channels, [0]):
        target = dep.target.module
        if isinstance(target, nn.Conv2d) and graph.is_out_channel_pruning_fn(dep.handler):
            per_channel, rest = divmod(linear.in_features, target.out_channels)
            return (target, per_channel) if per_channel > 1 and rest == 0 else None
    return None


def _units(module: nn.Module, granularity: str, per_channel: int = 1) -> tuple[int, torch.Tensor]:
    """Current number of prunable units and their L2 norms (output filters or input channels)."""
    weight = module.weight.detach()
    if granularity == "filter":
        return weight.shape[0], weight.reshape(weight.shape[0], -1).norm(dim=1)
    channels = weight.shape[1] // per_channel
    per_input = weight.reshape(weight.shape[0], channels, -1).transpose(0, 1).reshape(channels, -1)
    return channels, per_input.norm(dim=1)


def _pruning_fn(module: nn.Module, granularity: str):
    if isinstance(module, nn.Conv2d):
        return tp.prune_conv_out_channels if granularity == "filter" else tp.prune_conv_in_channels
    return tp.prune_linear_out_channels if granularity == "filter" else tp.prune_linear_in_channels


def prune_structural(model: nn.Module, ratios: Mapping[str, float], granularity: str,
                     input_shape: tuple[int, ...]) -> nn.Module:
    """A physically smaller deep copy of `model`, with each layer's filters or input channels removed.

    Args:
        model: the model to prune (left untouched).
        ratios: per-layer fraction of the layer's original units (filters or input channels) removed.
        granularity: `filter` (output channels) or `channel` (input channels).
        input_shape: an input shape the model accepts, to trace its dependency graph.

    Protected, whatever their ratio: the output channels of the last layer (class scores) for
    `filter`; the input channels of layers reading the data, and grouped/depthwise convs
    (whose input channels are coupled to their outputs), for `channel`. A linear layer
    reading a flattened feature map loses whole channels (its producer's filters).
    """
    check_granularity(granularity, STRUCTURAL_GRANULARITIES)
    pruned = copy.deepcopy(model).cpu().eval()
    reads_input, last = _edge_layers(pruned, input_shape)
    graph = tp.DependencyGraph().build_dependency(pruned, example_inputs=torch.zeros(input_shape),
                                                  verbose=False)
    layers = [(name, module) for name, module in prunable_layers(pruned)
              if float(ratios.get(name, 0.0)) > 0.0]
    if granularity == "filter":
        layers = [(name, module) for name, module in layers if name != last]
    else:
        layers = [(name, module) for name, module in layers
                  if name not in reads_input and getattr(module, "groups", 1) == 1]
    flattened = {name: _flattened_producer(graph, module) for name, module in layers
                 if granularity == "channel" and isinstance(module, nn.Linear)}
    per_channel = {name: found[1] for name, found in flattened.items() if found is not None}
    original = {name: _units(module, granularity, per_channel.get(name, 1))[0] for name, module in layers}
    for name, module in layers:
        current, norms = _units(module, granularity, per_channel.get(name, 1))
        remove = removed_units(float(ratios[name]), original[name]) - (original[name] - current)
        if remove <= 0:
            continue
        idxs = torch.argsort(norms, stable=True)[:remove].tolist()
        if name in per_channel:
            group = graph.get_pruning_group(flattened[name][0], tp.prune_conv_out_channels, idxs)
        else:
            group = graph.get_pruning_group(module, _pruning_fn(module, granularity), idxs)
        if graph.check_pruning_group(group):
            group.prune()
    _check_runs(pruned, input_shape, granularity)
    return pruned.train(model.training)


def _check_runs(pruned: nn.Module, input_shape: tuple[int, ...], granularity: str) -> None:
    """Fail here, naming the cause, when the dependency graph missed a coupling, not in some later forward."""
    try:
        with torch.no_grad():
            pruned(torch.zeros(input_shape))
    except RuntimeError as error:
        raise GranularityError(
            f"{granularity} pruning broke the model's forward pass ({error}): torch-pruning could not trace "
            f"how some of its channels are coupled, e.g. the zero-padding shortcuts of a CIFAR ResNet with "
            f"option A (use model.stem=B, 1x1-conv shortcuts), or prune with ou_row / crossbar_row") from error
