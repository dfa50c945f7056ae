"""The weights a device draw leaves on the crossbars, read with an ideal ADC: variation made cheap.

The OU model (hw/simulator.py) digitizes every partial sum once conductances vary, because the
ADC rounds a real-valued sum: about 330x a software inference on ResNet-20, far too slow to score
a search's episodes under several device draws. This module keeps the same cells and the same
draw (hw/programming.py `apply_device_draw`) but reads them as an ideal ADC would, without
rounding each partial sum: a layer then computes x @ W_eff, where W_eff is what its programmed
cells hold after the draw (bit slices shifted and added, the offset removed, times the layer's
scale). Only stored cells vary: a weight pruned out of the layout has no cell and stays 0, while
a zero kept inside an OU is stored (at the offset level) and varies like any other.

What it leaves out, on purpose: the ADC's rounding of each noisy partial sum (with the lossless
presets a rounding error of at most half a level per partial sum, which can mask variation
smaller than that) and the input quantization (activations stay float). With no non-ideality
W_eff is exactly the quantized matrix the fast path multiplies; with stuck cells only (integer
levels) the OU model computes exactly quantized inputs @ W_eff (tested in tests/test_hw_variation.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hw.layout_types import PackedLayer
from hw.programming import NonIdealities, apply_device_draw, scatter_slots
from hw.quantization import quantize_weights, shift_matrix, slice_weights, weight_offset
from hw.spec import HardwareSpec


@dataclass(frozen=True)
class StoredCells:
    """A layer's ideal cell levels [S, O, Q] and its weight scale: what every draw starts from."""

    layer: PackedLayer
    cells: torch.Tensor
    scale: float

    @classmethod
    def program(cls, layer: PackedLayer, spec: HardwareSpec) -> StoredCells:
        quantized = quantize_weights(layer.weights, spec.weight_bits)  # one scale per layer, as quantize_layer
        return cls(layer, slice_weights(quantized.levels, spec), quantized.scale)

    def read(self, spec: HardwareSpec, nonideal: NonIdealities, seed: int) -> torch.Tensor:
        """The R x C float32 weights the cells hold under the draw `seed` (no draw when ideal)."""
        cells = apply_device_draw(self.cells, self.layer, spec, nonideal, seed) if nonideal.any else self.cells
        levels = cells @ shift_matrix(spec, self.layer.group_width) - weight_offset(spec)  # [S, O, width]
        return scatter_slots(self.layer, levels) * self.scale


def effective_matrix(layer: PackedLayer, spec: HardwareSpec, nonideal: NonIdealities, seed: int) -> torch.Tensor:
    """The R x C float32 weights the layer's cells hold under the draw `seed` (no draw when ideal)."""
    return StoredCells.program(layer, spec).read(spec, nonideal, seed)
