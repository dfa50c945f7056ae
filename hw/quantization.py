"""How real-valued weights and inputs become the integers a crossbar stores and is fed (docs/hardware-model.md).

Weights are quantized once per layer, symmetrically, because a crossbar is programmed once and
every slot of a layer shares one digital scale. Inputs are quantized per row of the input
matrix (one sample, or one image for a conv layer) so that a result never depends on which
other samples share the batch. Everything here returns integer-valued float tensors: the
simulator computes with integers that float32 holds exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hw.spec import HardwareSpec


@dataclass(frozen=True)
class QuantizedWeights:
    """levels: integer-valued weights in [-(2^(bw-1)-1), 2^(bw-1)-1]; weight = levels * scale."""

    levels: torch.Tensor
    scale: float


@dataclass(frozen=True)
class QuantizedInputs:
    """levels[n, r]: integer input; x[n, r] ~= levels[n, r] * scale[n].

    A row whose values are all non-negative (a ReLU output) uses the unsigned range
    [0, 2^bi - 1]; any other row uses the signed range [-(2^(bi-1)-1), 2^(bi-1)-1].
    """

    levels: torch.Tensor
    scale: torch.Tensor
    signed: torch.Tensor


@dataclass(frozen=True)
class FedInputs:
    """What the DACs drive: an unsigned code per input, fed `dac_bits` per pass.

    value[n, r] is the integer the wordline represents in total, i.e. the sum over passes of
    pass_weights[p, n] * chunk_p(code[n, r]). Two's complement (dac_bits = 1) gives the MSB
    pass the weight -2^(bi-1), so value equals the quantized input. With wider DACs a
    signed row is fed in offset binary instead (code = level + 2^(bi-1), every pass
    positive) because a multi-bit two's complement chunk cannot be driven by one unipolar
    DAC; the simulator then subtracts digital_offset[n] * (column sum of the weights).
    """

    value: torch.Tensor
    pass_weights: torch.Tensor
    digital_offset: torch.Tensor
    input_bits: int

    def code(self) -> torch.Tensor:
        """[N, R] int32 codes whose dac_bits-wide chunks the passes drive (built on demand:
        slots folded into the linear matmul never need them)."""
        # Two's complement code of a negative level = its low input_bits bits.
        return self.value.to(torch.int32).bitwise_and_(2**self.input_bits - 1)


def quantize_weights(weights: torch.Tensor, bits: int) -> QuantizedWeights:
    """Symmetric per-tensor quantization: scale from max|w|, levels +-(2^(bits-1)-1)."""
    top = 2 ** (bits - 1) - 1
    weights = weights.detach().to(torch.float32)
    amax = float(weights.abs().max()) if weights.numel() else 0.0
    scale = amax / top if amax > 0 else 1.0
    levels = torch.round(weights / scale).clamp_(-top, top)
    return QuantizedWeights(levels, scale)


def quantize_inputs(x: torch.Tensor, bits: int) -> QuantizedInputs:
    """Quantize every row of a 2-D tensor on its own scale (see QuantizedInputs)."""
    if x.dim() != 2:
        raise ValueError(f"inputs must be 2-D [rows, features], got shape {tuple(x.shape)}")
    x = x.detach().to(torch.float32)
    if x.shape[1] == 0:
        zeros = torch.zeros(x.shape[0], device=x.device)
        return QuantizedInputs(x.clone(), zeros + 1.0, zeros.bool())
    # amax and amin separately: torch's fused aminmax over a row is ~10x slower on CPU.
    high, low = x.amax(dim=1), x.amin(dim=1)
    signed = low < 0
    top = torch.where(signed, 2.0 ** (bits - 1) - 1, 2.0**bits - 1)
    magnitude = torch.maximum(high, -low)
    scale = torch.where(magnitude > 0, magnitude / top, torch.ones_like(magnitude))
    # No clamp needed: |x| <= magnitude, so |x / scale| <= top * (1 + 2^-22) rounds to at most
    # top, and a non-negative row never rounds below 0.
    levels = (x / scale[:, None]).round_()
    return QuantizedInputs(levels, scale, signed)


def feed_inputs(inputs: QuantizedInputs, spec: HardwareSpec) -> FedInputs:
    """Split quantized inputs into DAC passes (see FedInputs for the signed encodings)."""
    passes, dac = spec.input_passes, spec.dac_bits
    rows, device = inputs.levels.shape[0], inputs.levels.device
    pass_weights = (2.0 ** (dac * torch.arange(passes, dtype=torch.float32, device=device)))[:, None].repeat(1, rows)
    offset = torch.zeros(rows, device=device)
    if dac == 1:
        pass_weights[-1] = torch.where(inputs.signed, -pass_weights[-1], pass_weights[-1])
        value = inputs.levels
    else:
        offset = torch.where(inputs.signed, 2.0 ** (spec.input_bits - 1), 0.0)
        value = inputs.levels + offset[:, None]
    return FedInputs(value, pass_weights, offset, spec.input_bits)


def weight_offset(spec: HardwareSpec) -> int:
    """The bias added to every stored weight in offset mode (0 for differential arrays)."""
    return 2 ** (spec.weight_bits - 1) if spec.signed == "offset" else 0


def slice_weights(levels: torch.Tensor, spec: HardwareSpec) -> torch.Tensor:
    """Cell levels of quantized weights: [..., J] -> [..., J * signed_factor * slices].

    Offset mode stores u = w + 2^(bw-1) (non-negative); differential stores max(w, 0) and
    max(-w, 0) in two arrays. Each stored value is cut into `slices` cells of cell_bits,
    least significant first; the cell column order inside a weight column is (array, slice).
    """
    stored_int = levels.to(torch.int64)
    if spec.signed == "offset":
        arrays = (stored_int + weight_offset(spec))[..., None]
    else:
        arrays = torch.stack((stored_int.clamp(min=0), (-stored_int).clamp(min=0)), dim=-1)
    shifts = spec.cell_bits * torch.arange(spec.slices)
    cells = (arrays[..., None] >> shifts) & (2**spec.cell_bits - 1)
    return cells.reshape(*levels.shape[:-1], -1).to(torch.float32)


def unslice_weights(cells: torch.Tensor, spec: HardwareSpec) -> torch.Tensor:
    """The quantized weight levels that `cells` hold: the inverse of slice_weights ([..., J * cells per
    weight] -> [..., J]), for reading programmed crossbars back."""
    per_weight = spec.cells_per_weight
    if cells.shape[-1] % per_weight:
        raise ValueError(f"{cells.shape[-1]} cell columns do not hold whole weights of {per_weight} cells")
    grouped = cells.to(torch.int64).reshape(*cells.shape[:-1], -1, spec.signed_factor, spec.slices)
    stored = (grouped << (spec.cell_bits * torch.arange(spec.slices))).sum(dim=-1)  # [..., J, arrays]
    if spec.signed == "offset":
        levels = stored[..., 0] - weight_offset(spec)
    else:
        levels = stored[..., 0] - stored[..., 1]
    return levels.to(torch.float32)


def shift_matrix(spec: HardwareSpec, width: int) -> torch.Tensor:
    """[Q, width] weights of the digital shift-and-add: cell column q of weight column j counts
    sign(array) * 2^(slice * cell_bits) towards output j (Q = width * cells_per_weight)."""
    per_cell = 2.0 ** (spec.cell_bits * torch.arange(spec.slices, dtype=torch.float32))
    signs = torch.tensor([1.0, -1.0][: spec.signed_factor])
    per_weight = (signs[:, None] * per_cell).reshape(-1)
    return torch.block_diag(*([per_weight[:, None]] * width)) if width else torch.zeros(0, 0)
