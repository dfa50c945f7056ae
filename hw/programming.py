"""Writing a packed layer into crossbar cells: done once per layer, as the hardware does.

Two products come out. `QuantizedLayer` is the ideal integer weight matrix the slot tables
describe (the exact fast path multiplies by it). `CellArrays` is the OU-level picture: every
slot's cell levels after bit slicing and device non-idealities, and a static saturation
analysis that decides which cell columns must be simulated partial sum by partial sum.

Why the analysis is exact: with integer cell levels an ADC reading v outputs
min(v, adc_max) = v - max(v - adc_max, 0). The first term is linear in the inputs, so all
cells are folded into one integer matrix (`linear_matrix`) multiplied exactly; the second
is zero for every cell column whose worst-case partial sum, (2^dac - 1) * (sum of its
levels on fed wordlines), is within the ADC's range. Only the other columns are simulated,
and only to subtract what their ADC clips. Conductance variation makes levels real and
the ADC's rounding matters everywhere, so then every column is simulated in full.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from hw.layout_types import PackedLayer
from hw.quantization import QuantizedWeights, quantize_weights, shift_matrix, slice_weights, weight_offset
from hw.spec import HardwareSpec

MAX_BUNDLE_WIDTH = 256  # cell columns sharing one gathered input block


@dataclass(frozen=True)
class NonIdealities:
    """Device non-idealities, applied per cell when a layer is programmed.

    sigma: multiplicative conductance variation, each cell's level times N(1, sigma).
    stuck_at_zero / stuck_at_one: probability that a cell is stuck at level 0 / at the
    maximum level 2^cell_bits - 1 (applied after the variation, so a stuck cell is exact).
    """

    sigma: float = 0.0
    stuck_at_zero: float = 0.0
    stuck_at_one: float = 0.0

    def __post_init__(self) -> None:
        if self.sigma < 0:
            raise ValueError(f"noise_sigma must be >= 0, got {self.sigma}")
        for name in ("stuck_at_zero", "stuck_at_one"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {rate}")
        if self.stuck_at_zero + self.stuck_at_one > 1.0:
            raise ValueError(f"stuck_at_zero + stuck_at_one must be <= 1, got "
                             f"{self.stuck_at_zero} + {self.stuck_at_one}")

    @property
    def any(self) -> bool:
        return self.sigma > 0 or self.stuck_at_zero > 0 or self.stuck_at_one > 0


@dataclass(frozen=True)
class QuantizedLayer:
    """The layer's weights quantized as programmed: matrix is rows x cols integer levels."""

    weights: QuantizedWeights
    matrix: torch.Tensor
    matrix_max: float
    column_sums: torch.Tensor

    def to(self, device: torch.device) -> QuantizedLayer:
        """The same layer on `device` (programming runs on the CPU, so every device gets the same draws)."""
        return QuantizedLayer(QuantizedWeights(self.weights.levels.to(device), self.weights.scale),
                              self.matrix.to(device), self.matrix_max, self.column_sums.to(device))


@dataclass(frozen=True)
class AnalogBundle:
    """Cell columns simulated through the ADC, grouped by the input index table they read.

    U index tables (rows[u] lists the input feeding each of the O wordlines; `rows` of the
    layer means an always-zero input), each read by `width` cell columns (padded with zero
    columns). cells[u, c, o] is the level of cell column c at wordline o; the digitized
    result of column c lands in output column target[u * width + c] of the layer, scaled by
    coefficient[u * width + c] (its slice's shift, its array's sign; 0 for padding).
    """

    rows: torch.Tensor
    cells: torch.Tensor
    target: torch.Tensor
    coefficient: torch.Tensor

    @property
    def width(self) -> int:
        return int(self.cells.shape[1])

    def to(self, device: torch.device) -> AnalogBundle:
        return AnalogBundle(self.rows.to(device), self.cells.to(device), self.target.to(device),
                            self.coefficient.to(device))


@dataclass(frozen=True)
class CellArrays:
    """OU-level state of a programmed layer.

    linear_matrix holds, as an integer matrix multiplied exactly, every contribution that
    is linear in the inputs: the offset encoding's digital correction (-2^(bw-1) per fed
    wordline) and, when `analog_is_correction`, every cell (integer levels). The bundles
    hold the cell columns that go through the ADC model: with `analog_is_correction` they
    add ADC(v) - v (zero unless the ADC saturates), otherwise ADC(v).
    """

    bundles: tuple[AnalogBundle, ...]
    linear_matrix: torch.Tensor
    linear_max: float
    analog_is_correction: bool
    integer_cells: bool
    analog_columns: int
    total_columns: int

    def to(self, device: torch.device) -> CellArrays:
        return dataclasses.replace(self, bundles=tuple(bundle.to(device) for bundle in self.bundles),
                                   linear_matrix=self.linear_matrix.to(device))


def quantize_layer(layer: PackedLayer, spec: HardwareSpec) -> QuantizedLayer:
    """Quantize all slots on one scale and scatter them back to the layer's R x C matrix."""
    weights = quantize_weights(layer.weights, spec.weight_bits)
    matrix = scatter_slots(layer, weights.levels)
    matrix_max = float(matrix.abs().max()) if matrix.numel() else 0.0
    return QuantizedLayer(weights, matrix, matrix_max, matrix.sum(dim=0, dtype=torch.float64))


def program_cells(layer: PackedLayer, quantized: QuantizedLayer, spec: HardwareSpec,
                  nonideal: NonIdealities, seed: int, elide_unsaturable: bool = True) -> CellArrays:
    """Bit-slice the quantized slots into cells, apply non-idealities, pick the ADC-bound columns.

    With integer cell levels (no conductance variation) the ADC only matters for cell
    columns whose worst-case partial sum exceeds its range; only those are simulated, as a
    correction on top of the exact linear product. With variation every partial sum is
    rounded by the ADC, so every column is simulated in full. elide_unsaturable=False
    also simulates every column in full (a reference: results are identical).
    """
    cells = slice_weights(quantized.weights.levels, spec)  # [S, O, Q]
    if nonideal.any:
        cells = apply_device_draw(cells, layer, spec, nonideal, seed)
    fed = layer.input_index >= 0
    cells = cells * fed[..., None]  # an empty wordline is never driven
    shift = shift_matrix(spec, layer.group_width)
    integer_cells = nonideal.sigma == 0
    correction = integer_cells and elide_unsaturable
    if correction:
        worst = (2**spec.dac_bits - 1) * cells.sum(dim=1)  # [S, Q] largest partial sum per column
        analog = worst > spec.adc_max
        linear_cells = cells @ shift
    else:
        analog = torch.ones(cells.shape[0], cells.shape[2], dtype=torch.bool)
        linear_cells = torch.zeros(*cells.shape[:2], layer.group_width)
    linear_cells = linear_cells - weight_offset(spec) * fed[..., None].to(torch.float32)
    linear_matrix = scatter_slots(layer, linear_cells)
    rows = torch.where(fed, layer.input_index, torch.full_like(layer.input_index, layer.rows))
    return CellArrays(
        bundles=_bundle_columns(analog, cells, rows, layer, shift, spec.cells_per_weight),
        linear_matrix=linear_matrix,
        linear_max=float(linear_matrix.abs().max()) if linear_matrix.numel() else 0.0,
        analog_is_correction=correction,
        integer_cells=integer_cells,
        analog_columns=int(analog.sum()),
        total_columns=analog.numel(),
    )


def _bundle_columns(analog: torch.Tensor, cells: torch.Tensor, rows: torch.Tensor, layer: PackedLayer,
                    shift: torch.Tensor, cells_per_weight: int) -> tuple[AnalogBundle, ...]:
    """Group the analog cell columns by the index table they read, so that one gathered input
    block serves all of them (a dense layer's slots in one row block share one table).

    A table read by more than MAX_BUNDLE_WIDTH columns is split into segments (its inputs
    are gathered once per segment) so that one block of partial sums stays small. Segments
    are bucketed by how many columns they hold, rounded up to a multiple of a granule that
    keeps the buckets at most 16, so each bucket is a few batched matmuls and padding wastes
    under 1/16 of the widest segment.
    """
    slot, column = analog.nonzero(as_tuple=True)
    if slot.numel() == 0:
        return ()
    tables, table_of_slot = torch.unique(rows, dim=0, return_inverse=True)
    table = table_of_slot[slot]
    order = torch.argsort(table, stable=True)
    sorted_table = table[order]
    per_table = torch.bincount(table, minlength=tables.shape[0])
    rank = torch.arange(slot.numel()) - (torch.cumsum(per_table, 0) - per_table)[sorted_table]
    segments = -(-int(per_table.max()) // MAX_BUNDLE_WIDTH)
    segment_ids, segment_of_pair = torch.unique_consecutive(
        sorted_table * segments + rank // MAX_BUNDLE_WIDTH, return_inverse=True)
    segment_table = segment_ids // segments
    counts = torch.bincount(segment_of_pair)
    starts = torch.cumsum(counts, 0) - counts
    granule = 1
    while granule * 16 < int(counts.max()):
        granule *= 2
    widths = (counts + granule - 1) // granule * granule
    bundles = []
    for width in torch.unique(widths).tolist():
        members = (widths == width).nonzero().flatten()  # [U] segments
        offset = torch.arange(width)
        valid = offset[None, :] < counts[members, None]  # [U, width]
        position = (starts[members, None] + offset).clamp(max=slot.numel() - 1)
        pair = order[position]
        pair_slot, pair_column = slot[pair], column[pair]
        weight_column = pair_column // cells_per_weight
        bundle_cells = cells[pair_slot, :, pair_column] * valid[..., None]  # [U, width, O]
        target = layer.output_group[pair_slot] * layer.group_width + weight_column
        coefficient = shift[pair_column, weight_column] * valid
        bundles.append(AnalogBundle(tables[segment_table[members]], bundle_cells.contiguous(),
                                    target.flatten(), coefficient.flatten()))
    return tuple(bundles)


def scatter_slots(layer: PackedLayer, slot_values: torch.Tensor) -> torch.Tensor:
    """Per-slot values [S, O, width] -> the R x C matrix the index tables say they belong to."""
    placed = PackedLayer(layer.rows, layer.cols, layer.group_width, slot_values, layer.input_index,
                         layer.output_group)
    return placed.to_dense()


def apply_device_draw(cells: torch.Tensor, layer: PackedLayer, spec: HardwareSpec, nonideal: NonIdealities,
                      seed: int) -> torch.Tensor:
    """The layer's slot cells [S, O, Q] as one seeded device draw leaves them.

    The draw is made over the layer's weight positions, [R, C, cells per weight] in slice_weights'
    (array, slice) order, and each slot cell takes the value drawn for the weight it holds. Cells
    are i.i.d., so this is a draw from the same distribution as one over physical cells; indexing
    it by weight position makes draws *paired*: for a given seed the weight at (r, c) sees the same
    variation under every policy and packing, so two policies' accuracies differ by what they
    prune, not by which cells they happened to land on (envs/variation.py relies on this).
    """
    generator = torch.Generator().manual_seed(seed)
    shape = (layer.rows, layer.cols, spec.cells_per_weight)
    width = layer.group_width
    rows = layer.input_index.clamp(min=0)[:, :, None]  # an unfed wordline's cells are never driven
    cols = (layer.output_group[:, None] * width + torch.arange(width)).clamp(max=max(layer.cols - 1, 0))[:, None, :]

    def at_slots(field: torch.Tensor) -> torch.Tensor:
        return field[rows, cols].reshape(cells.shape)

    if nonideal.sigma > 0:
        cells = cells * (1.0 + nonideal.sigma * at_slots(torch.randn(shape, generator=generator)))
    if nonideal.stuck_at_zero > 0 or nonideal.stuck_at_one > 0:
        draw = at_slots(torch.rand(shape, generator=generator))
        cells = torch.where(draw < nonideal.stuck_at_zero, torch.zeros_like(cells), cells)
        high = nonideal.stuck_at_zero + nonideal.stuck_at_one
        stuck_high = (draw >= nonideal.stuck_at_zero) & (draw < high)
        cells = torch.where(stuck_high, torch.full_like(cells, 2**spec.cell_bits - 1), cells)
    return cells
