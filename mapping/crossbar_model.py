"""Hardware-in-the-loop inference: a model whose mapped conv/linear layers run on the simulator.

Every prunable module of a masked copy of the model is replaced by a `CrossbarLayer` that
hands its input to hw's CrossbarSimulator together with the layer's packed slots; BN, ReLU,
pooling and residual additions stay in torch. The `feeding` switch runs the same masked
model three ways, which is how the dislocation problem (docs/hardware-model.md) is shown on a whole
network:

- `indexed`: the layout's compacted slots, each OU gathering its inputs through its index table;
- `dense`: the masked matrices on the plain dense mapping (identity index tables), the reference;
- `positional`: the compacted slots fed by wordline position, as a data path without indices.
"""

from __future__ import annotations

import torch
from torch import nn

from hw.layout_types import PackedLayer
from hw.simulator import CrossbarSimulator
from mapping.layout import LayerLayout, ModelLayout
from mapping.mapper import apply_masks
from mapping.matrices import prunable_layers, weight_matrix

FEEDINGS = ("indexed", "dense", "positional")


class CrossbarLayer(nn.Module):
    """One conv/linear module executed on crossbars (one packed layer per conv group)."""

    def __init__(self, module: nn.Module, packed: list[PackedLayer], simulator: CrossbarSimulator,
                 path: str = "auto") -> None:
        super().__init__()
        self.is_conv = isinstance(module, nn.Conv2d)
        if self.is_conv and isinstance(module.padding, str):
            raise ValueError(f"conv padding={module.padding!r} is not supported on crossbars: "
                             f"use integer padding")
        if self.is_conv and module.padding_mode != "zeros":
            raise ValueError(f"conv padding_mode={module.padding_mode!r} is not supported on crossbars")
        self.packed = packed
        self.simulator = simulator
        self.path = path
        self.groups = int(module.groups) if self.is_conv else 1
        if self.is_conv:
            self.kernel_size, self.stride = module.kernel_size, module.stride
            self.padding, self.dilation = module.padding, module.dilation
        bias = module.bias.detach().clone() if module.bias is not None else None
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.is_conv:
            return self.simulator.linear(x, self.packed[0], self.bias, self.path)
        inputs = x.chunk(self.groups, dim=1) if self.groups > 1 else (x,)
        outs = [self.simulator.conv2d(part, layer, self.kernel_size, self.stride, self.padding,
                                      self.dilation, path=self.path)
                for part, layer in zip(inputs, self.packed, strict=True)]
        out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        return out if self.bias is None else out + self.bias.to(out.dtype)[None, :, None, None]


class CrossbarModel(nn.Module):
    """A masked copy of `model` whose mapped layers run on `simulator` from `layout`.

    Args:
        model: the model the layout was made for (for filter/channel layouts, the pruned copy
            prune_and_map returned); it is copied and masked, never modified.
        layout: the model's layout (fingerprint and hardware geometry are checked).
        simulator: the crossbar simulator; its spec must be the layout's hardware.
        feeding: indexed (the layout), dense (identity mapping of the masked matrices) or
            positional (the layout without its index tables), see the module docstring.
        path: the simulator path (auto, fast, ou).
    """

    def __init__(self, model: nn.Module, layout: ModelLayout, simulator: CrossbarSimulator,
                 feeding: str = "indexed", path: str = "auto") -> None:
        super().__init__()
        if feeding not in FEEDINGS:
            raise ValueError(f"unknown feeding {feeding!r}: expected one of {list(FEEDINGS)}")
        layout.check_spec(simulator.spec)
        self.layout = layout
        self.feeding = feeding
        self.model = apply_masks(model, layout)
        packed = _packed_layers(self.model, layout, simulator, feeding)
        modules = dict(prunable_layers(self.model))
        for name, module in modules.items():
            parts = [packed[layer.name] for layer in layout.layers if layer.matrix.module_name == name]
            _replace(self.model, name, CrossbarLayer(module, parts, simulator, path))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _packed_layers(masked: nn.Module, layout: ModelLayout, simulator: CrossbarSimulator,
                   feeding: str) -> dict[str, PackedLayer]:
    if feeding == "dense":
        modules = dict(prunable_layers(masked))
        return {layer.name: _dense(modules, layer, simulator) for layer in layout.layers}
    packed = layout.packed_layers(masked, simulator.spec)
    if feeding == "positional":
        return {name: layer.with_positional_feeding() for name, layer in packed.items()}
    return packed


def _dense(modules: dict[str, nn.Module], layer: LayerLayout, simulator: CrossbarSimulator) -> PackedLayer:
    return PackedLayer.dense(weight_matrix(modules[layer.matrix.module_name], layer.matrix), simulator.spec)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
