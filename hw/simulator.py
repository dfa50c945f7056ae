"""Functional simulator of a packed layer on ReRAM crossbars (docs/hardware-model.md).

It computes what the hardware computes, OU by OU: quantized, bit-sliced weights; inputs
quantized per row and fed `dac_bits` per pass; per OU slot, cell column and pass the partial
sum over the slot's wordlines (inputs gathered through its input index table) digitized by
an ADC that saturates at 2^adc_bits - 1; shift-and-add over slices and passes; accumulation
into the slot's output column group; dequantization. See hw/programming.py for why cell
columns whose ADC provably cannot saturate are computed by one exact integer matmul, and
hw/ou_engine.py for the vectorized partial sums of the others.

Devices: a layer is programmed once, on the CPU (so a seed draws the same devices everywhere),
then copied to the device of the inputs it is run on; every step after that runs there. The
arithmetic is integer-exact in float32/float64 on any device (hw/int_matmul.py), so a GPU gives
the CPU's results bit for bit.

Paths: "ou" always runs that OU model; "fast" multiplies the quantized operands exactly
(only allowed when the ADC is lossless and there are no non-idealities, where both give
bit-identical results); "auto" picks "fast" when allowed, else "ou". On the CPU a conv layer
on the fast path is one direct convolution of the quantized image wherever hw/int_matmul.py
proves it exact, which is what lets hardware-in-the-loop episodes cost about what software
ones do (bench/env_episode.py).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from hw.int_matmul import exact_integer_conv2d, exact_integer_matmul
from hw.layout_types import PackedLayer
from hw.ou_engine import Workspace, analog_outputs
from hw.programming import (
    CellArrays,
    NonIdealities,
    QuantizedLayer,
    program_cells,
    quantize_layer,
)
from hw.quantization import QuantizedInputs, feed_inputs, quantize_inputs
from hw.spec import HardwareSpec

PATHS = ("auto", "fast", "ou")


@dataclass
class _Programmed:
    """Per-layer cache entry: crossbars are programmed once, then read many times."""

    layer_ref: weakref.ReferenceType
    version: tuple[int, ...]
    quantized: QuantizedLayer
    cells: CellArrays | None = None
    placed: dict[torch.device, tuple[QuantizedLayer, CellArrays | None]] = field(default_factory=dict)

    def on(self, device: torch.device, with_cells: bool) -> tuple[QuantizedLayer, CellArrays | None]:
        """The programmed state on `device` (the CPU's own; elsewhere copied once and kept)."""
        if device.type == "cpu":
            return self.quantized, self.cells
        quantized, cells = self.placed.get(device, (None, None))
        if quantized is None:
            quantized = self.quantized.to(device)
        if with_cells and cells is None:
            cells = self.cells.to(device)
        self.placed[device] = (quantized, cells)
        return quantized, cells


class CrossbarSimulator:
    """Runs packed layers as the crossbar hardware of `spec` would.

    Args:
        spec: the hardware (geometry, precisions, signed encoding).
        noise_sigma: multiplicative conductance variation per cell, N(1, sigma).
        stuck_at_zero: fraction of cells stuck at level 0.
        stuck_at_one: fraction of cells stuck at the maximum level.
        seed: seeds the torch.Generator that draws a layer's non-idealities when it is
            programmed (the same seed gives the same devices; every layer's draw starts
            from this seed).
        elide_unsaturable: skip the ADC model for cell columns that provably cannot
            saturate (identical results; False digitizes every partial sum, a reference).
    """

    def __init__(self, spec: HardwareSpec, noise_sigma: float = 0.0, stuck_at_zero: float = 0.0,
                 stuck_at_one: float = 0.0, seed: int = 0, elide_unsaturable: bool = True) -> None:
        self.spec = spec
        self.nonideal = NonIdealities(noise_sigma, stuck_at_zero, stuck_at_one)
        self.seed = seed
        self.elide_unsaturable = elide_unsaturable
        self._programmed: dict[int, _Programmed] = {}
        self._workspace = Workspace()

    @property
    def fast_path_exact(self) -> bool:
        """The exact fast path equals the OU model: lossless ADC, ideal devices."""
        return self.spec.adc_lossless and not self.nonideal.any

    # ----------------------------------------------------------------------------- layers
    def matmul(self, x: torch.Tensor, layer: PackedLayer, path: str = "auto") -> torch.Tensor:
        """x [N, R] -> [N, C] float32; each row of x is quantized on its own scale."""
        if x.dim() != 2 or x.shape[1] != layer.rows:
            raise ValueError(f"input must be [N, {layer.rows}] for this layer, got {tuple(x.shape)}")
        return self._run(quantize_inputs(x, self.spec.input_bits), layer, path)

    def linear(self, x: torch.Tensor, layer: PackedLayer, bias: torch.Tensor | None = None,
               path: str = "auto") -> torch.Tensor:
        """A linear layer: x [..., R] -> [..., C] (+ bias, added digitally in float)."""
        out = self.matmul(x.reshape(-1, x.shape[-1]), layer, path).reshape(*x.shape[:-1], layer.cols)
        return out if bias is None else out + bias.to(out.dtype)

    def conv2d(self, x: torch.Tensor, layer: PackedLayer, kernel_size: int | tuple[int, int],
               stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
               dilation: int | tuple[int, int] = 1, bias: torch.Tensor | None = None,
               path: str = "auto") -> torch.Tensor:
        """A conv layer (groups = 1) through im2col: x [N, Cin, H, W] -> [N, Cout, Ho, Wo].

        The layer's rows follow weight.reshape(Cout, -1).T, i.e. row = cin*kh*kw + ki*kw + kj,
        which is F.unfold's order. Inputs are quantized per image (one scale for all of an
        image's patches, as a feature map held in one buffer would be), so the result equals
        a convolution of the dequantized image with the dequantized weights.

        On the exact fast path the integer product is one direct convolution of the quantized
        image with the layer's scattered matrix where hw/int_matmul.py can prove it exact (the
        same integers as im2col's matmul at a software convolution's cost); else, and on every
        other path, the patches are unfolded and multiplied as a matrix.
        """
        if x.dim() != 4:
            raise ValueError(f"conv2d input must be [N, Cin, H, W], got shape {tuple(x.shape)}")
        kh, kw = _pair(kernel_size)
        if x.shape[1] * kh * kw != layer.rows:
            raise ValueError(f"Cin*kh*kw = {x.shape[1]}*{kh}*{kw} != layer rows {layer.rows}")
        batch, (height, width) = x.shape[0], x.shape[2:]
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        per_image = quantize_inputs(x.reshape(batch, -1), self.spec.input_bits)
        levels = per_image.levels.reshape(x.shape)
        if self._takes_fast_path(path):
            quantized, _ = self._entry(layer).on(x.device, with_cells=False)
            weight = quantized.matrix.T.reshape(layer.cols, x.shape[1], kh, kw)
            integer_out = exact_integer_conv2d(levels, weight, quantized.matrix_max, stride, padding, dilation,
                                               nonnegative=not bool(per_image.signed.any()))
            if integer_out is not None:
                out = _dequantize(integer_out, per_image.scale, quantized.weights.scale)
                return out if bias is None else out + bias.to(out.dtype)[None, :, None, None]
        patches = F.unfold(levels, (kh, kw), dilation=dilation, padding=padding, stride=stride)
        positions = patches.shape[2]
        rows = QuantizedInputs(patches.transpose(1, 2).reshape(-1, layer.rows),
                               per_image.scale.repeat_interleave(positions),
                               per_image.signed.repeat_interleave(positions))
        out = self._run(rows, layer, path).reshape(batch, positions, layer.cols).transpose(1, 2)
        out_h = (height + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        out_w = (width + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        out = out.reshape(batch, layer.cols, out_h, out_w)
        return out if bias is None else out + bias.to(out.dtype)[None, :, None, None]

    def program(self, layer: PackedLayer) -> QuantizedLayer:
        """Quantize (and cache) a layer's weights; later calls with the same layer reuse it."""
        return self._entry(layer).quantized

    def cell_arrays(self, layer: PackedLayer) -> CellArrays:
        """The layer's programmed cells and ADC analysis (cached; built on first OU-path use)."""
        entry = self._entry(layer)
        if entry.cells is None:
            entry.cells = program_cells(layer, entry.quantized, self.spec, self.nonideal, self.seed,
                                        self.elide_unsaturable)
        return entry.cells

    # ---------------------------------------------------------------------------- internals
    def _takes_fast_path(self, path: str) -> bool:
        """Whether `path` resolves to the exact fast path (refusing "fast" where it would not be exact)."""
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        if path == "fast" and not self.fast_path_exact:
            raise ValueError(
                f"the fast path is exact only with a lossless ADC (OU partial sum max "
                f"{self.spec.ou_partial_sum_max} <= {self.spec.adc_max}) and no non-idealities")
        return path == "fast" or (path == "auto" and self.fast_path_exact)

    def _run(self, inputs: QuantizedInputs, layer: PackedLayer, path: str) -> torch.Tensor:
        entry = self._entry(layer)
        device = inputs.levels.device
        if self._takes_fast_path(path):
            quantized, _ = entry.on(device, with_cells=False)
            integer_out = exact_integer_matmul(inputs.levels, quantized.matrix, quantized.matrix_max,
                                               not bool(inputs.signed.any()))
        else:
            self.cell_arrays(layer)
            quantized, cells = entry.on(device, with_cells=True)
            integer_out = self._ou_path(inputs, layer, quantized, cells)
        return _dequantize(integer_out, inputs.scale, quantized.weights.scale)

    def _entry(self, layer: PackedLayer) -> _Programmed:
        if layer.weights.device.type != "cpu":
            raise ValueError(f"packed layers are programmed on the CPU (the same seed, the same devices on every "
                             f"machine); got one on {layer.weights.device}: pass it on the CPU, run inputs anywhere")
        version = tuple(t._version for t in (layer.weights, layer.input_index, layer.output_group))
        entry = self._programmed.get(id(layer))
        if entry is None or entry.layer_ref() is not layer or entry.version != version:
            if entry is None or entry.layer_ref() is not layer:  # forget the entry when the layer dies
                weakref.finalize(layer, self._programmed.pop, id(layer), None)
            entry = _Programmed(weakref.ref(layer), version, quantize_layer(layer, self.spec))
            self._programmed[id(layer)] = entry
        return entry

    def _ou_path(self, inputs: QuantizedInputs, layer: PackedLayer, quantized: QuantizedLayer,
                 cells: CellArrays) -> torch.Tensor:
        fed = feed_inputs(inputs, self.spec)
        nonnegative = not bool(inputs.signed.any()) or self.spec.dac_bits > 1  # offset binary
        out = exact_integer_matmul(fed.value, cells.linear_matrix, cells.linear_max, nonnegative)
        if bool((fed.digital_offset != 0).any()):
            out -= fed.digital_offset.to(torch.float64)[:, None] * quantized.column_sums[None, :]
        if cells.bundles:
            analog = analog_outputs(fed, cells, self.spec, layer.rows, layer.groups * layer.group_width,
                                    self._workspace)
            out += analog[:, : layer.cols]
        return out


def _dequantize(integer_out: torch.Tensor, input_scale: torch.Tensor, weight_scale: float) -> torch.Tensor:
    """The digital rescale shared by every path, so equal integers give bit-identical floats.

    integer_out is [N, C] or [N, C, H, W] (a convolution's output); input_scale is per row n. The
    product is taken in float32 (the integers, then the per-row scale, each rounded once to float32):
    a float64 pass over every activation would cost a fifth of a ResNet-50 inference.
    """
    scale = (input_scale.to(torch.float64) * weight_scale).to(torch.float32)
    out = integer_out.to(torch.float32)  # in place below: integer_out is this module's own temporary
    return out.mul_(scale.reshape(-1, *([1] * (integer_out.dim() - 1))))


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))
