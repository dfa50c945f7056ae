"""Exact products of integer-valued float matrices and images at float32 matmul / convolution speed.

float32 represents every integer up to 2^24 exactly, so a float32 matmul of integer operands
is exact whenever every partial sum, in whatever order BLAS adds, stays within 2^24 in
magnitude. Any partial sum of row n is bounded by max|b| * sum_k |a[n, k]|; when that bound
holds for the whole contraction one matmul suffices (the usual case for activations, whose
rows are far from all-maximal). Otherwise the contraction is split into chunks short enough
for the worst-case bound max|a| * max|b| * chunk, and chunk results are added in float64.
Operands whose single products exceed what chunks can afford fall back to float64, exact up
to 2^53.

Convolutions take the same argument per output position: a direct convolution adds, in some
order, the products of one input patch with one filter, so when max|w| times the largest
patch sum of |x| stays within 2^24 one float32 convolution is exact. Only the direct
algorithm qualifies (Winograd and FFT convolutions compute with fractions), so the check
runs oneDNN's direct convolution on the CPU, the one PyTorch's CPU convolutions use, and
answers None elsewhere: the caller then unfolds the patches and multiplies them exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

FLOAT32_EXACT = 2**24
FLOAT64_EXACT = 2**53
MIN_FLOAT32_CHUNK = 64  # below this, float32 chunks are slower than one float64 matmul


@dataclass(frozen=True)
class MatmulPlan:
    """How an integer product is computed exactly: one float32 matmul, float32 chunks summed in
    float64, or one float64 matmul."""

    kind: str  # "float32" | "chunked" | "float64"
    pieces: int = 1
    chunk: int = 0  # contraction columns per piece (chunked only)


def plan_integer_matmul(depth: int, row_sum_max: float, a_max: float, b_max: float) -> MatmulPlan:
    """The cheapest exact way for a contraction of `depth` whose rows of |a| sum to at most
    `row_sum_max`, with |a| <= a_max and |b| <= b_max. Raises ValueError beyond float64's range."""
    if row_sum_max * b_max <= FLOAT32_EXACT:
        return MatmulPlan("float32")
    if row_sum_max * b_max > FLOAT64_EXACT:
        raise ValueError(f"integer matmul of depth {depth} with |a| <= {a_max}, |b| <= {b_max} "
                         f"exceeds float64's exact range 2^53")
    chunk = int(FLOAT32_EXACT // max(a_max * b_max, 1.0))
    if chunk < min(MIN_FLOAT32_CHUNK, depth):
        return MatmulPlan("float64")
    pieces = math.ceil(depth / chunk)
    return MatmulPlan("chunked", pieces, math.ceil(depth / pieces))


def exact_integer_matmul(a: torch.Tensor, b: torch.Tensor, b_max: float | None = None,
                         a_nonnegative: bool = False) -> torch.Tensor:
    """a [N, K] @ b [K, C] for integer-valued float tensors, exact, returned as float64.

    b_max bounds |b| (a static weight matrix: pass it to save a pass); |a| is measured, and
    a_nonnegative=True (a promise that a >= 0) skips taking its absolute value.
    """
    if a.numel() == 0 or b.numel() == 0:
        return torch.zeros(a.shape[0], b.shape[1], dtype=torch.float64, device=a.device)
    if b_max is None:
        b_max = float(b.abs().max())
    magnitude = a if a_nonnegative else a.abs()
    plan = plan_integer_matmul(a.shape[1], float(magnitude.sum(dim=1).max()), float(magnitude.max()), b_max)
    a = a.to(torch.float32)
    b = b.to(torch.float32)
    if plan.kind == "float32":
        return (a @ b).to(torch.float64)
    if plan.kind == "float64":
        return a.to(torch.float64) @ b.to(torch.float64)
    partial = torch.empty(plan.pieces, a.shape[0], b.shape[1], dtype=torch.float32, device=a.device)
    # A handful of strided matmuls (one per chunk): BLAS reads the column slices in place.
    for piece in range(plan.pieces):
        columns = slice(piece * plan.chunk, (piece + 1) * plan.chunk)
        torch.mm(a[:, columns], b[columns], out=partial[piece])
    return partial.sum(dim=0, dtype=torch.float64)


def exact_integer_conv2d(levels: torch.Tensor, weight: torch.Tensor, weight_max: float,
                         stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
                         nonnegative: bool = False) -> torch.Tensor | None:
    """levels [N, Cin, H, W] convolved with weight [Cout, Cin, kh, kw] (groups 1), both integer-valued
    float32, exact, as float32; None where that cannot be guaranteed (see the module docstring).

    weight_max bounds |weight|; nonnegative=True promises levels >= 0 (skips taking |levels|).
    """
    if not _direct_conv_available(levels) or levels.numel() == 0 or weight.numel() == 0:
        return None
    magnitude = (levels if nonnegative else levels.abs()).contiguous()
    padding, stride, dilation = list(padding), list(stride), list(dilation)
    # Every patch's sum of |x|, as a one-filter convolution of ones (1/Cout of the real one's work).
    # Its float32 sums are exact below 2^24 and, float addition being monotone, never fall below
    # 2^24 once the true sum passes it: a computed bound below 2^24 is the true one.
    window = torch.ones(1, *weight.shape[1:], dtype=torch.float32)
    patch_sum_max = float(torch.mkldnn_convolution(magnitude, window, None, padding, stride, dilation, 1).max())
    if patch_sum_max * max(weight_max, 1.0) >= FLOAT32_EXACT:
        return None
    return torch.mkldnn_convolution(levels.contiguous(), weight.to(torch.float32).contiguous(), None,
                                    padding, stride, dilation, 1)


def _direct_conv_available(levels: torch.Tensor) -> bool:
    """oneDNN's direct fp32 convolution on the CPU, at full fp32 precision (not bf16/tf32 math)."""
    conv_settings = getattr(torch.backends.mkldnn, "conv", None)
    precision = getattr(conv_settings, "fp32_precision", "none")
    return (levels.device.type == "cpu" and levels.dtype == torch.float32 and torch.backends.mkldnn.is_available()
            and precision in ("none", "ieee"))
