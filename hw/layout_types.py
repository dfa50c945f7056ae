"""The two descriptions of a mapped layer that hw/ consumes.

`LayerOccupancy` is what the cost model prices (how many rows each column group keeps);
`PackedLayer` is what the functional simulator executes (exactly what the crossbar's
registers hold: every occupied OU slot's weights, input index table and output group).
mapping/ produces both; hw/ never looks at masks or models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hw.spec import HardwareSpec

GRANULARITIES_PRICED = ("dense", "crossbar_row", "ou_row")


@dataclass
class LayerOccupancy:
    """How one layer's matrix occupies crossbars, for the cost model (docs/hardware-model.md).

    kept_rows holds, per column group, how many rows the group keeps after compaction.
    Groups are crossbar-wide blocks (spec.weight_cols_per_crossbar weight columns) for
    `dense` and `crossbar_row`, OU-wide groups (spec.weight_cols_per_ou) for `ou_row`;
    the last group may be narrower. rows/cols are the mapped matrix (smaller than
    dense_rows/dense_cols only after structural pruning); positions is the number of
    output positions per inference (1 for a linear layer).
    """

    name: str
    rows: int
    cols: int
    positions: int
    granularity: str
    kept_rows: np.ndarray
    dense_rows: int
    dense_cols: int

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES_PRICED:
            raise ValueError(f"layer {self.name}: granularity {self.granularity!r} is not one of "
                             f"{GRANULARITIES_PRICED}")
        self.kept_rows = np.asarray(self.kept_rows, dtype=np.int64)
        if self.kept_rows.ndim != 1:
            raise ValueError(f"layer {self.name}: kept_rows must be 1-D, got shape {self.kept_rows.shape}")
        if self.kept_rows.size and (self.kept_rows.min() < 0 or self.kept_rows.max() > self.rows):
            raise ValueError(f"layer {self.name}: kept_rows must lie in [0, {self.rows}]")
        if self.positions < 1:
            raise ValueError(f"layer {self.name}: positions must be >= 1, got {self.positions}")

    def group_width(self, spec: HardwareSpec) -> int:
        return spec.group_width(self.granularity)

    def expected_groups(self, spec: HardwareSpec) -> int:
        return math.ceil(self.cols / self.group_width(spec))

    @classmethod
    def uniform(cls, name: str, rows: int, cols: int, positions: int, granularity: str, kept: int,
                spec: HardwareSpec) -> LayerOccupancy:
        """An R x C matrix whose every column group (of `granularity`'s width) keeps `kept` rows."""
        groups = math.ceil(cols / spec.group_width(granularity))
        return cls(name, rows, cols, positions, granularity, np.full(groups, kept), rows, cols)

    @classmethod
    def dense(cls, name: str, rows: int, cols: int, positions: int, spec: HardwareSpec) -> LayerOccupancy:
        return cls.uniform(name, rows, cols, positions, "dense", rows, spec)

    def compacted(self, granularity: str, spec: HardwareSpec) -> LayerOccupancy:
        """This layer's dense matrix with every row kept but mapped in `granularity`'s groups: the
        layout at ratio 0 compacted OU by OU, whose crossbars set the packing gain (docs/hardware-model.md).
        Granularities without indexed groups (dense, filter, channel) map it densely."""
        rows, cols = self.dense_rows, self.dense_cols
        if granularity not in ("ou_row", "crossbar_row"):
            return LayerOccupancy.dense(self.name, rows, cols, self.positions, spec)
        return LayerOccupancy.uniform(self.name, rows, cols, self.positions, granularity, rows, spec)


@dataclass
class PackedLayer:
    """The crossbar registers of one layer: S occupied OU slots of ou_rows x group_width weights.

    weights[s, w, c] is the weight at wordline w and weight column c of slot s (zero for an
    empty wordline or a column past the layer's last); input_index[s, w] is the original input
    row that wordline w must be fed (-1: empty); output_group[s] says which group of
    group_width output columns the slot's partial sums accumulate into. A dense layer is the
    special case whose index tables are the identity.
    """

    rows: int
    cols: int
    group_width: int
    weights: torch.Tensor
    input_index: torch.Tensor
    output_group: torch.Tensor

    def __post_init__(self) -> None:
        slots, ou_rows, width = self.weights.shape
        if width != self.group_width:
            raise ValueError(f"weights are {width} columns wide, group_width is {self.group_width}")
        if tuple(self.input_index.shape) != (slots, ou_rows):
            raise ValueError(f"input_index shape {tuple(self.input_index.shape)} != {(slots, ou_rows)}")
        if tuple(self.output_group.shape) != (slots,):
            raise ValueError(f"output_group shape {tuple(self.output_group.shape)} != {(slots,)}")
        if slots and (int(self.input_index.max()) >= self.rows or int(self.input_index.min()) < -1):
            raise ValueError(f"input_index entries must lie in [-1, {self.rows - 1}]")
        if slots and (int(self.output_group.min()) < 0 or int(self.output_group.max()) >= self.groups):
            raise ValueError(f"output_group entries must lie in [0, {self.groups - 1}]")

    @property
    def slots(self) -> int:
        return int(self.weights.shape[0])

    @property
    def ou_rows(self) -> int:
        return int(self.weights.shape[1])

    @property
    def groups(self) -> int:
        return math.ceil(self.cols / self.group_width)

    @classmethod
    def dense(cls, matrix: torch.Tensor, spec: HardwareSpec) -> PackedLayer:
        """Identity-indexed slots covering an R x C matrix OU by OU (the dense mapping)."""
        rows, cols = matrix.shape
        ou_rows, width = spec.ou_rows, spec.weight_cols_per_ou
        row_blocks, groups = math.ceil(rows / ou_rows), math.ceil(cols / width)
        padded = torch.zeros(row_blocks * ou_rows, groups * width, dtype=torch.float32)
        padded[:rows, :cols] = matrix.detach().to(torch.float32)
        weights = padded.reshape(row_blocks, ou_rows, groups, width).permute(2, 0, 1, 3)
        weights = weights.reshape(-1, ou_rows, width)
        wordline = torch.arange(row_blocks * ou_rows).reshape(row_blocks, ou_rows)
        wordline = torch.where(wordline < rows, wordline, torch.full_like(wordline, -1))
        input_index = wordline.repeat(groups, 1)
        output_group = torch.arange(groups).repeat_interleave(row_blocks)
        return cls(rows, cols, width, weights.contiguous(), input_index, output_group)

    def to_dense(self) -> torch.Tensor:
        """The R x C matrix the index tables say this layer holds (scatter every slot back).

        Cells that two slots place on one weight add up, so a layout that double-books a
        weight computes a wrong product instead of hiding it. The result is the transpose of a
        contiguous C x R tensor: a conv layer's weight layout, which the simulator convolves with
        as it is (a matmul reads the transposed operand in place).
        """
        rows, width = self.rows, self.group_width
        # Each fed wordline adds its `width` cells to row (column group, input) of a [G * R, width]
        # table; unfed wordlines add theirs to one spare row, dropped after.
        spare = self.groups * rows
        target = torch.where(self.input_index >= 0, self.output_group[:, None] * rows + self.input_index, spare)
        grouped = torch.zeros(spare + 1, width, dtype=self.weights.dtype, device=self.weights.device)
        grouped.index_add_(0, target.reshape(-1), self.weights.reshape(-1, width))
        columns_first = grouped[:spare].reshape(self.groups, rows, width).transpose(1, 2).reshape(-1, rows)
        return columns_first[: self.cols].T

    def with_positional_feeding(self) -> PackedLayer:
        """The same cells fed by position, as a data path without index tables would (dislocation).

        The k-th occupied wordline of a column group receives input k instead of the input
        its index table names.
        """
        valid = self.input_index >= 0
        order = torch.argsort(self.output_group, stable=True)
        rank_in_group = torch.empty_like(order)
        sorted_groups = self.output_group[order]
        first = torch.searchsorted(sorted_groups, sorted_groups, side="left")
        rank_in_group[order] = torch.arange(order.numel()) - first
        position = rank_in_group[:, None] * self.ou_rows + torch.arange(self.ou_rows)
        positional = torch.where(valid & (position < self.rows), position, torch.full_like(position, -1))
        weights = torch.where(positional[..., None] >= 0, self.weights, torch.zeros_like(self.weights))
        return PackedLayer(self.rows, self.cols, self.group_width, weights, positional,
                           self.output_group.clone())
