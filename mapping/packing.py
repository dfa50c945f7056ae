"""Compaction and packing: kept row segments to consecutive wordlines, OU slots to crossbars (docs/hardware-model.md).

Input is a layer's segment mask `keep[groups, R]` (which rows each column group keeps).
Compaction stores a group's kept rows at consecutive wordlines and cuts them into OU slots
of `ou_rows` wordlines; each slot records its input index table (which original input each
wordline must be fed, -1 for an empty wordline) and its output group (the OU-wide column
group its partial sums accumulate into). Packing then places slots in crossbars:

- `ou_row`: every OU is indexed, so slots go anywhere; a layer needs
  `ceil(sum_j ceil(r_j / Or) / slots_per_crossbar)` crossbars (`packing="per_layer"`), or the
  slots of all layers fill crossbars one after another (`packing="shared"`: small layers share).
- `crossbar_row`: a crossbar-wide block keeps whole rows; its kept rows fill
  `ceil(r_b / Xr)` crossbars of their own, whose OU columns all share one index table.
- `dense`: the crossbar_row layout with every row kept and identity index tables.

All of it is array arithmetic over the whole layer (cumsum/repeat), no loop over groups or slots.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from hw.cost_model import PACKINGS, layer_crossbars, ou_row_slots, pooled_crossbars
from hw.layout_types import LayerOccupancy, PackedLayer
from hw.spec import HardwareSpec

PACKED_GRANULARITIES = ("ou_row", "crossbar_row", "dense")


class PackingError(ValueError):
    """A packing request no crossbar data path supports."""


@dataclass
class SlotTable:
    """What the registers of a layer's occupied OU slots hold, and where each slot sits.

    input_index[s, w]: original input row fed to wordline w of slot s (-1: empty wordline).
    output_group[s]: OU-wide column group the slot's partial sums accumulate into.
    crossbar[s]: crossbar holding the slot (layer-local for per_layer packing, model-wide for shared).
    position[s]: the slot's OU position inside its crossbar, row-major over the OU grid.
    """

    input_index: np.ndarray
    output_group: np.ndarray
    crossbar: np.ndarray
    position: np.ndarray

    @property
    def slots(self) -> int:
        return int(self.output_group.shape[0])


@dataclass
class LayerPacking:
    """One compacted and packed matrix: its occupancy (for pricing) and its slot table (for execution).

    kept_rows[j] is how many rows column group j keeps; groups are `group_width` weight columns
    wide (one OU for ou_row, one crossbar for crossbar_row and dense). crossbars counts the
    crossbars this layer's slots occupy (with shared packing some of them hold other layers too).
    """

    granularity: str
    rows: int
    cols: int
    group_width: int
    kept_rows: np.ndarray
    slot_table: SlotTable | Callable[[], SlotTable] = field(repr=False)
    crossbars: int
    kept_weights: int

    @property
    def slots(self) -> SlotTable:
        """The slot table, built on first use: pricing needs only kept_rows, and a search prices
        every episode's layout while only the exported or simulated ones need their registers."""
        if callable(self.slot_table):
            self.slot_table = self.slot_table()
        return self.slot_table

    def occupancy(self, name: str, positions: int, dense_rows: int | None = None,
                  dense_cols: int | None = None) -> LayerOccupancy:
        """The cost model's view of this layer."""
        return LayerOccupancy(name, self.rows, self.cols, positions, self.granularity, self.kept_rows.copy(),
                              self.rows if dense_rows is None else dense_rows,
                              self.cols if dense_cols is None else dense_cols)


def group_widths(cols: int, width: int) -> np.ndarray:
    """Real weight columns of each group of `width` (the last may be narrower)."""
    groups = math.ceil(cols / width)
    widths = np.full(groups, width, dtype=np.int64)
    if groups and cols % width:
        widths[-1] = cols % width
    return widths


def compact_rows(keep: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each group's kept rows at consecutive positions, cut into chunks of `chunk` wordlines.

    Returns the index table [M, chunk] (original row per wordline, -1 past a group's last kept
    row), the owning group of each chunk [M], with M = sum_j ceil(r_j / chunk), groups in order,
    and the kept rows per group.
    """
    groups, rows = keep.shape
    flat = np.flatnonzero(keep)
    counts = np.diff(np.searchsorted(flat, np.arange(groups + 1) * rows))  # kept rows per group
    chunks = -(-counts // chunk)
    owner = np.repeat(np.arange(groups, dtype=np.int32), chunks)
    if groups and counts.min() == counts.max():  # every group keeps r rows: one reshape does it
        kept, per_group = int(counts[0]), int(chunks[0])
        table = np.full((groups, per_group * chunk), -1, dtype=np.int32)
        table[:, :kept] = flat.reshape(groups, kept) - (np.arange(groups) * rows)[:, None]
        return table.reshape(groups * per_group, chunk), owner, counts
    first_kept = np.cumsum(counts) - counts
    first_slot = np.cumsum(chunks) - chunks
    target = np.repeat(first_slot * chunk - first_kept, counts) + np.arange(flat.size)
    table = np.full(int(chunks.sum()) * chunk, -1, dtype=np.int32)
    table[target] = flat - np.repeat(np.arange(groups) * rows, counts)
    return table.reshape(-1, chunk), owner, counts


def pack_ou_rows(keep: np.ndarray, cols: int, spec: HardwareSpec) -> LayerPacking:
    """ou_row: OU-wide groups, slots placed anywhere, filled crossbar after crossbar."""
    width = spec.weight_cols_per_ou
    per_crossbar = spec.ou_slots_per_crossbar
    kept_rows = np.count_nonzero(keep, axis=1)

    def build() -> SlotTable:
        index, owner, _ = compact_rows(keep, spec.ou_rows)
        slot = np.arange(owner.size, dtype=np.int64)
        return SlotTable(index, owner, (slot // per_crossbar).astype(np.int32), (slot % per_crossbar).astype(np.int32))

    kept_weights = int(kept_rows @ group_widths(cols, width))
    return LayerPacking("ou_row", keep.shape[1], cols, width, kept_rows, build,
                        layer_crossbars(spec, "ou_row", kept_rows), kept_weights)


def pack_crossbar_rows(keep: np.ndarray, cols: int, spec: HardwareSpec, granularity: str = "crossbar_row"
                       ) -> LayerPacking:
    """crossbar_row (and dense): a block's kept rows fill crossbars of its own, one index table each.

    The block's compacted rows are cut into OU-row chunks; crossbar c of block b holds chunks
    c*(Xr/Or) ... and every one of the block's OU columns gets a slot per chunk, sharing the
    chunk's index table.
    """
    block = spec.weight_cols_per_crossbar
    ou_width = spec.weight_cols_per_ou
    ou_grid_rows, ou_grid_cols = spec.xbar_rows // spec.ou_rows, spec.xbar_cols // spec.ou_cols
    kept_rows = np.count_nonzero(keep, axis=1)

    def build() -> SlotTable:
        block_crossbars = -(-kept_rows // spec.xbar_rows)  # for placing chunks; the count is layer_crossbars'
        index, owner, _ = compact_rows(keep, spec.ou_rows)
        block_chunks = -(-kept_rows // spec.ou_rows)
        chunk_in_block = np.arange(owner.size) - np.repeat(np.cumsum(block_chunks) - block_chunks, block_chunks)
        chunk_crossbar = (np.cumsum(block_crossbars) - block_crossbars)[owner] + chunk_in_block // ou_grid_rows
        ou_columns = -(-group_widths(cols, block) // ou_width)
        copies = ou_columns[owner]
        chunk_of_slot = np.repeat(np.arange(owner.size), copies)
        column = np.arange(chunk_of_slot.size) - np.repeat(np.cumsum(copies) - copies, copies)
        return SlotTable(
            input_index=index[chunk_of_slot],
            output_group=(owner[chunk_of_slot].astype(np.int64) * ou_grid_cols + column).astype(np.int32),
            crossbar=chunk_crossbar[chunk_of_slot].astype(np.int32),
            position=((chunk_in_block[chunk_of_slot] % ou_grid_rows) * ou_grid_cols + column).astype(np.int32))

    kept_weights = int(kept_rows @ group_widths(cols, block))
    return LayerPacking(granularity, keep.shape[1], cols, block, kept_rows, build,
                        layer_crossbars(spec, granularity, kept_rows), kept_weights)


def pack_layer(keep: np.ndarray, cols: int, granularity: str, spec: HardwareSpec) -> LayerPacking:
    """Compact and pack one matrix on its own crossbars (per-layer packing).

    Args:
        keep: segment mask [groups, R]; groups are OU-wide for ou_row, crossbar-wide otherwise.
        cols: the matrix's columns C (the last group may be narrower).
        granularity: ou_row, crossbar_row or dense (keep must then be all True).
        spec: the hardware.
    """
    if granularity not in PACKED_GRANULARITIES:
        raise PackingError(f"cannot pack granularity {granularity!r}: "
                           f"expected one of {list(PACKED_GRANULARITIES)}")
    width = spec.group_width(granularity)
    if keep.shape[0] != math.ceil(cols / width):
        raise PackingError(f"{granularity} segment mask has {keep.shape[0]} groups, {cols} columns need "
                           f"{math.ceil(cols / width)} groups of {width}")
    if granularity == "ou_row":
        return pack_ou_rows(keep, cols, spec)
    return pack_crossbar_rows(keep, cols, spec, granularity)


def dense_keep(rows: int, cols: int, spec: HardwareSpec) -> np.ndarray:
    """The segment mask of a dense (unpruned or structurally pruned) matrix."""
    return np.ones((math.ceil(cols / spec.weight_cols_per_crossbar), rows), dtype=bool)


def share_crossbars(packings: Sequence[LayerPacking], spec: HardwareSpec) -> int:
    """Shared packing: all ou_row layers' slots fill crossbars one after another, in layer order.

    Every ou_row slot is indexed (input table and output group), so a crossbar may hold slots
    of several layers; this first fit over the concatenated slot stream is optimal for the count:
    ceil(total slots / slots per crossbar). It rewrites each ou_row layer's crossbar ids to ids
    of the shared pool and its `crossbars` to the number of crossbars it touches. Layers without
    per-OU output indices (dense, i.e. unpruned, and crossbar_row) keep crossbars of their own,
    numbered per layer, as the cost model prices them. Returns the model total.
    """
    per_crossbar = spec.ou_slots_per_crossbar
    offset = 0
    for packing in packings:
        if packing.granularity != "ou_row":
            continue
        slot = offset + np.arange(packing.slots.slots, dtype=np.int64)
        packing.slots.crossbar = (slot // per_crossbar).astype(np.int32)
        packing.slots.position = (slot % per_crossbar).astype(np.int32)
        packing.crossbars = int(slot[-1] // per_crossbar - slot[0] // per_crossbar + 1) if slot.size else 0
        offset += slot.size
    return total_crossbars(packings, spec, "shared")


def total_crossbars(packings: Sequence[LayerPacking], spec: HardwareSpec, packing: str) -> int:
    """Occupied crossbars of a model: the sum per layer, or the shared pool plus the layers outside it."""
    if packing not in PACKINGS:
        raise PackingError(f"unknown packing {packing!r}: expected one of {list(PACKINGS)}")
    if packing == "shared":
        pooled = sum(ou_row_slots(spec, p.kept_rows) for p in packings if p.granularity == "ou_row")
        own = sum(p.crossbars for p in packings if p.granularity != "ou_row")
        return pooled_crossbars(spec, pooled) + own
    return sum(p.crossbars for p in packings)


def utilization(packings: Sequence[LayerPacking], crossbars: int, spec: HardwareSpec) -> float:
    """Cells holding kept weights / cells of occupied crossbars.

    A kept weight occupies spec.cells_per_weight cells even if its value is exactly zero; with
    magnitude pruning kept weights are non-zero, so this is the non-zero cell fraction.
    """
    cells = sum(p.kept_weights for p in packings) * spec.cells_per_weight
    return cells / (crossbars * spec.xbar_rows * spec.xbar_cols) if crossbars else 0.0


def packed_layer(matrix_t: torch.Tensor, slots: SlotTable, spec: HardwareSpec) -> PackedLayer:
    """The hw PackedLayer of a (masked) matrix: gather each slot's weights through its index table.

    matrix_t is W.T (C x R); pass the masked matrix so that cells the mask drops inside a kept
    segment hold zero.
    """
    cols, rows = matrix_t.shape
    width = spec.weight_cols_per_ou
    groups = math.ceil(cols / width)
    padded = torch.zeros(groups * width, rows, dtype=torch.float32)
    padded[:cols] = matrix_t.detach().to(torch.float32)
    # Row (column group g, input r) of this table holds the `width` weights one wordline of a slot
    # of group g stores when its index table feeds it input r: one row gather per wordline.
    table = padded.reshape(groups, width, rows).transpose(1, 2).reshape(groups * rows, width)
    index = torch.from_numpy(slots.input_index.astype(np.int64))
    group = torch.from_numpy(slots.output_group.astype(np.int64))
    weights = table.index_select(0, (group[:, None] * rows + index.clamp(min=0)).reshape(-1))
    weights = weights.reshape(*index.shape, width)
    weights = torch.where(index[:, :, None] >= 0, weights, torch.zeros((), dtype=weights.dtype))
    return PackedLayer(rows, cols, width, weights, index, group)
