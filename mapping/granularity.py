"""Pruning granularities: a layer's pruning ratio becomes a mask on its R x C matrix (docs/hardware-model.md).

The fine-grained granularities keep tensor shapes and decide per *segment*: a row of one
column group. `ou_row` groups are one OU wide (spec.weight_cols_per_ou weight columns), so
each OU can gather its own inputs; `crossbar_row` blocks are one crossbar wide
(spec.weight_cols_per_crossbar), PIM-Prune style. Inside every group the `round(ratio * R)`
segments of smallest L2 norm go. The structural baselines `filter` and `channel` change
tensor shapes and live in mapping/structural.py.

Everything is vectorized over groups: norms of a [groups, R] array, one partition per row.
The natural working form is the segment mask `keep[groups, R]`; `prune_mask` expands it to
the R x C matrix mask.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hw.spec import HardwareSpec

MASK_GRANULARITIES = ("ou_row", "crossbar_row")
STRUCTURAL_GRANULARITIES = ("filter", "channel")
GRANULARITIES = MASK_GRANULARITIES + STRUCTURAL_GRANULARITIES


class GranularityError(ValueError):
    """A granularity or pruning ratio this module cannot apply."""


def check_granularity(granularity: str, allowed: tuple[str, ...] = GRANULARITIES) -> None:
    if granularity not in allowed:
        raise GranularityError(f"unknown pruning granularity {granularity!r}: "
                               f"expected one of {list(allowed)}")


def check_ratio(ratio: float, layer: str = "") -> float:
    """A pruning ratio is the fraction of a layer's units removed, in [0, 1)."""
    where = f" for layer {layer}" if layer else ""
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        raise GranularityError(f"pruning ratio{where} must be a number in [0, 1), got {ratio!r}") from None
    if not 0.0 <= value < 1.0:  # also rejects NaN
        raise GranularityError(f"pruning ratio{where} must lie in [0, 1), got {ratio!r}")
    return value


def group_width(granularity: str, spec: HardwareSpec) -> int:
    """Weight columns per column group: one OU for ou_row, one crossbar for crossbar_row."""
    check_granularity(granularity, MASK_GRANULARITIES)
    return spec.group_width(granularity)


def removed_units(ratio: float, units: int) -> int:
    """How many of `units` a ratio removes: round half up, but always keep one unit.

    Keeping one unit means a layer never vanishes (its outputs would be constant), which a
    ratio below 1 promises.
    """
    return max(0, min(math.floor(ratio * units + 0.5), units - 1))


def segment_norms(matrix_t: torch.Tensor, width: int) -> np.ndarray:
    """Squared L2 norm of every segment: [groups, R] from the transposed matrix W.T (C x R).

    Columns past the last full group are zero-padded, so a narrow last group is judged on its
    real columns only. (torch's fused multiply-add is ~2x faster than numpy's here.)
    """
    matrix_t = matrix_t.detach().to(torch.float32)
    cols, rows = matrix_t.shape
    groups = math.ceil(cols / width)
    if groups * width != cols:
        matrix_t = torch.cat([matrix_t, matrix_t.new_zeros(groups * width - cols, rows)])
    blocks = matrix_t.reshape(groups, width, rows)
    norms = blocks[:, 0].square()
    for column in range(1, width):  # loops over the group's width, never over groups
        norms.addcmul_(blocks[:, column], blocks[:, column])
    return norms.numpy()


def keep_smallest_removed(norms: np.ndarray, removed: int) -> np.ndarray:
    """Keep-mask [groups, R] that drops exactly `removed` segments of smallest norm per group.

    One partition per row finds each group's threshold; rows where ties at the threshold
    would drop too many are redone with a stable sort (ties go to the lower row index).
    Squared norms are non-negative float32, whose bit patterns order like int32: selecting
    on that view gives the same answer about 3x faster than numpy's float partition.
    """
    groups, rows = norms.shape
    if removed <= 0:
        return np.ones((groups, rows), dtype=bool)
    order = np.ascontiguousarray(norms, dtype=np.float32).view(np.int32)
    threshold = np.partition(order, removed - 1, axis=1)[:, removed - 1: removed]
    keep = order > threshold
    if np.count_nonzero(keep) == groups * (rows - removed):  # each row keeps at most that many
        return keep
    tied = np.flatnonzero(np.count_nonzero(keep, axis=1) != rows - removed)
    ranked = np.argsort(order[tied], axis=1, kind="stable")[:, :removed]
    keep[tied] = True
    keep[tied[:, None], ranked] = False
    return keep


def segment_mask(matrix_t: torch.Tensor, ratio: float, granularity: str, spec: HardwareSpec) -> np.ndarray:
    """Kept segments [groups, R] of the transposed matrix W.T (C x R) at a ratio."""
    ratio = check_ratio(ratio)
    width = group_width(granularity, spec)
    cols, rows = matrix_t.shape
    removed = removed_units(ratio, rows)
    if removed == 0:
        return np.ones((math.ceil(cols / width), rows), dtype=bool)
    return keep_smallest_removed(segment_norms(matrix_t, width), removed)


def expand_segments(keep: np.ndarray, cols: int, width: int) -> np.ndarray:
    """R x C matrix mask from a segment mask [groups, R]: every column of a group shares its rows."""
    return np.repeat(keep, width, axis=0)[:cols].T


def segments_of(mask: np.ndarray, width: int) -> np.ndarray:
    """Segment mask [groups, R] of an arbitrary R x C mask: a row of a group is kept when any cell is.

    The cells of a kept segment that the mask drops are stored as zero weights.
    """
    rows, cols = mask.shape
    groups = math.ceil(cols / width)
    padded = np.zeros((rows, groups * width), dtype=bool)
    padded[:, :cols] = mask
    return padded.reshape(rows, groups, width).any(axis=2).T


def prune_mask(matrix: torch.Tensor | np.ndarray, ratio: float, granularity: str,
               spec: HardwareSpec) -> torch.Tensor:
    """Boolean keep-mask [R, C] of an R x C matrix at a pruning ratio (ou_row or crossbar_row).

    Args:
        matrix: the layer's unrolled weight matrix W (R wordlines x C output columns).
        ratio: fraction of each column group's row segments removed, in [0, 1).
        granularity: `ou_row` (OU-wide groups) or `crossbar_row` (crossbar-wide blocks).
        spec: the hardware, which sets the group widths.
    """
    check_granularity(granularity)
    if granularity in STRUCTURAL_GRANULARITIES:
        raise GranularityError(f"granularity {granularity!r} changes tensor shapes and has no matrix mask: "
                               f"use mapping.structural.prune_structural; mask granularities are "
                               f"{list(MASK_GRANULARITIES)}")
    dense = torch.as_tensor(matrix).detach().cpu().to(torch.float32)
    rows, cols = dense.shape
    keep = segment_mask(dense.T.contiguous(), ratio, granularity, spec)
    return torch.from_numpy(np.ascontiguousarray(expand_segments(keep, cols, group_width(granularity, spec))))


def weight_sparsity(masks: list[np.ndarray | torch.Tensor]) -> float:
    """Fraction of weights removed by a set of masks (the realized sparsity a ratio gives)."""
    total = sum(int(np.asarray(mask).size) for mask in masks)
    kept = sum(int(np.count_nonzero(np.asarray(mask))) for mask in masks)
    return 1.0 - kept / total if total else 0.0
