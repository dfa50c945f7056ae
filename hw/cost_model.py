"""Per-inference cost of mapped layers on crossbars: counts, index storage, energy, area, latency, throughput.

The formulas, their sources and the defaults are written out in docs/hardware-model.md.

Input: one `LayerOccupancy` per layer (how many rows each column group keeps). Output: a
`CostReport` with per-layer numpy arrays and model totals. All arithmetic is vectorized over
the concatenated column groups of every layer; Python only loops over layers to collect
their arrays.

Counting rules (one inference, P output positions per layer, 1 for a linear layer):
- OU slots of a group: ceil(kept / ou_rows) * ceil(group width / weight columns per OU).
- Crossbars: dense and crossbar_row sum ceil(kept / xbar_rows) over crossbar-wide blocks;
  ou_row needs ceil(slots / slots per crossbar) per layer ("per_layer" packing), or, with
  "shared" packing, all ou_row layers' slots share crossbars: ceil(sum of slots / slots per
  crossbar) for the model, each layer reported with its fractional share.
- OU activations A = slots * input passes * P; ADC conversions and shift-and-add ops
  A * ou_cols; DAC drives A * ou_rows.
- Index storage (hw.index): `table`, ou_rows addresses of ceil(log2 R) bits plus an output group
  per ou_row slot, one table per crossbar for crossbar_row; `bitmap`, one R-bit occupancy bitmap
  per column group plus one start record per crossbar; `delta`, each kept row as its gap to the
  previous one in ceil(log2(R - r + 2)) bits (the largest gap fits) plus the start records.
  Every stored bit is read once per output position (latched across the input-bit passes) or,
  with read=per_pass, once per pass.
- Latency (one input): inside a layer OUs of different crossbars fire in parallel, one OU per
  crossbar per cycle, so a layer takes ceil(slots / its crossbars) * passes * P cycles, and the
  layers run one after another. Throughput (a stream of inputs): layers are pipeline stages, so
  the slowest stage sets the rate; area efficiency uses throughput.
- Area: crossbars * the per-crossbar area of hw.area_scope (periphery, IMA or tile) + index storage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from hw.cost_report import AreaBreakdown, CostReport, EnergyBreakdown, ratio
from hw.layout_types import LayerOccupancy
from hw.spec import HardwareSpec

PACKINGS = ("per_layer", "shared")
UM2_PER_MM2 = 1e6


@dataclass(frozen=True)
class CompressionSplit:
    """CR = packing gain x pruning gain (docs/hardware-model.md).

    packing_gain: dense crossbars / crossbars of the unpruned model compacted in the layout's
    granularity (OU by OU for ou_row: what indexing alone saves); pruning_gain: those / the
    layout's crossbars (what removing weights saved on top).
    """

    compression_rate: float
    packing_gain: float
    pruning_gain: float


def compacted_crossbars(spec: HardwareSpec, layers: Sequence[LayerOccupancy], granularity: str, packing: str) -> int:
    """Crossbars of these layers unpruned but compacted in `granularity` (see LayerOccupancy.compacted)."""
    return price_layers(spec, [layer.compacted(granularity, spec) for layer in layers], packing).total_crossbars


def compression_split(spec: HardwareSpec, layers: Sequence[LayerOccupancy], granularity: str, packing: str,
                      crossbars: int, compacted: int | None = None) -> CompressionSplit:
    """Split the CR of a layout of `crossbars` occupied crossbars whose layers are `layers`
    (`compacted`: their compacted_crossbars, when the caller has it already)."""
    dense = sum(spec.dense_crossbars(layer.dense_rows, layer.dense_cols) for layer in layers)
    if compacted is None:
        compacted = compacted_crossbars(spec, layers, granularity, packing)
    return CompressionSplit(ratio(dense, crossbars), ratio(dense, compacted), ratio(compacted, crossbars))


def layer_crossbars(spec: HardwareSpec, granularity: str, kept_rows: np.ndarray) -> int:
    """Crossbars one layer occupies on crossbars of its own, from the rows each column group keeps.

    ou_row: its OU slots (ceil(kept / ou_rows) per OU-wide group) fill crossbars one after
    another; crossbar_row and dense: each crossbar-wide block takes ceil(kept / xbar_rows)
    crossbars of its own. The one count that packing (mapping/packing.py) and pricing share.
    """
    if granularity == "ou_row":
        return pooled_crossbars(spec, ou_row_slots(spec, kept_rows))
    return int(_ceil_div(np.asarray(kept_rows, dtype=np.int64), spec.xbar_rows).sum())


def ou_row_slots(spec: HardwareSpec, kept_rows: np.ndarray) -> int:
    """OU slots of an ou_row layer: ceil(kept / ou_rows) per OU-wide column group."""
    return int(_ceil_div(np.asarray(kept_rows, dtype=np.int64), spec.ou_rows).sum())


def pooled_crossbars(spec: HardwareSpec, ou_slots: int) -> int:
    """Crossbars that `ou_slots` indexed OU slots fill when placed one after another (shared packing)."""
    return int(_ceil_div(ou_slots, spec.ou_slots_per_crossbar))


def price_layers(spec: HardwareSpec, layers: Sequence[LayerOccupancy],
                 packing: str = "per_layer") -> CostReport:
    """Price one inference of `layers` on `spec` (see the module docstring for the rules)."""
    if packing not in PACKINGS:
        raise ValueError(f"packing must be one of {PACKINGS}, got {packing!r}")
    layers = list(layers)
    count = len(layers)
    for layer in layers:
        if layer.kept_rows.size != layer.expected_groups(spec):
            raise ValueError(f"layer {layer.name}: {layer.kept_rows.size} column groups given, "
                             f"{layer.expected_groups(spec)} expected for {layer.cols} columns in "
                             f"groups of {layer.group_width(spec)} ({layer.granularity})")

    def per_layer(attribute) -> np.ndarray:
        return np.array([attribute(layer) for layer in layers], dtype=np.int64).reshape(count)

    rows, cols = per_layer(lambda l: l.rows), per_layer(lambda l: l.cols)
    positions = per_layer(lambda l: l.positions)
    ou_row = per_layer(lambda l: l.granularity == "ou_row").astype(bool)
    crossbar_row = per_layer(lambda l: l.granularity == "crossbar_row").astype(bool)
    indexed = ou_row | crossbar_row
    groups = per_layer(lambda l: l.kept_rows.size)
    address_bits = per_layer(lambda l: max(l.rows - 1, 0).bit_length())  # ceil(log2 R)
    group_bits = per_layer(lambda l: max(l.kept_rows.size - 1, 0).bit_length())  # ceil(log2 groups)

    # Column groups of every layer, concatenated.
    kept = np.concatenate([layer.kept_rows for layer in layers]) if count else np.zeros(0, np.int64)
    owner = np.repeat(np.arange(count), groups)
    first = np.cumsum(groups) - groups
    local = np.arange(kept.size) - first[owner]
    width = np.where(ou_row, spec.group_width("ou_row"), spec.group_width("crossbar_row"))[owner]
    actual_width = np.minimum(width, cols[owner] - local * width)
    group_slots = _ceil_div(kept, spec.ou_rows) * _ceil_div(actual_width, spec.weight_cols_per_ou)
    slots = np.bincount(owner, weights=group_slots, minlength=count).astype(np.int64)

    per_crossbar = spec.ou_slots_per_crossbar
    own_crossbars = per_layer(lambda l: layer_crossbars(spec, l.granularity, l.kept_rows))
    if packing == "shared":
        crossbars = np.where(ou_row, slots / per_crossbar, own_crossbars).astype(np.float64)
        total_crossbars = pooled_crossbars(spec, int(slots[ou_row].sum())) + int(own_crossbars[~ou_row].sum())
    else:
        crossbars = own_crossbars.astype(np.float64)
        total_crossbars = int(own_crossbars.sum())

    passes = spec.input_passes
    activations = slots * passes * positions
    reads = np.where(indexed, positions * (passes if spec.index.read == "per_pass" else 1), 0)
    lookups = slots * spec.ou_rows * reads
    if spec.index.encoding == "table":
        index_bits = np.where(ou_row, slots * (spec.ou_rows * address_bits + group_bits),
                              np.where(crossbar_row, own_crossbars * spec.xbar_rows * address_bits, 0))
    else:  # per column group a bitmap (R bits) or fixed-width gaps, plus one start record per crossbar
        start_bits = np.where(ou_row, _bit_length(np.maximum(slots - 1, 0)), address_bits)
        if spec.index.encoding == "bitmap":
            group_bits_stored = rows[owner]
        else:  # delta: every kept row as its gap to the previous one, wide enough for the largest gap R - r + 1
            group_bits_stored = kept * _bit_length(rows[owner] - kept + 1)
        stored = np.bincount(owner, weights=group_bits_stored, minlength=count).astype(np.int64)
        index_bits = np.where(indexed, stored + own_crossbars * start_bits, 0)
    floor_bits = _choose_bits(rows[owner], kept)
    index_floor_bits = np.where(indexed, np.bincount(owner, weights=floor_bits, minlength=count), 0.0)
    # Latency uses each layer's own crossbars (its slots packed densely) under both packings.
    busiest = np.where(own_crossbars > 0, _ceil_div(slots, np.maximum(own_crossbars, 1)), 0)
    cycles = busiest * passes * positions
    costs = spec.costs

    ou_fraction = (spec.ou_rows * spec.ou_cols) / (spec.xbar_rows * spec.xbar_cols)
    index_reads = index_bits * reads
    buffer_bits = rows * positions * spec.input_bits + cols * positions * costs.output_bits
    energy = EnergyBreakdown(
        adc=activations * spec.ou_cols * costs.adc_energy_pj,
        dac=activations * spec.ou_rows * costs.dac_energy_pj,
        crossbar=activations * costs.crossbar_power_mw * costs.cycle_ns * ou_fraction,
        shift_add=activations * spec.ou_cols * costs.shift_add_energy_pj,
        index=index_reads * spec.index.bit_read_energy_pj,
        buffer=buffer_bits / costs.edram_access_bits * costs.edram_energy_pj,
    )
    area = _area(spec, crossbars, index_bits)
    return CostReport(
        spec_name=spec.name,
        packing=packing,
        area_scope=spec.area_scope,
        index_encoding=spec.index.encoding,
        names=tuple(layer.name for layer in layers),
        granularity=tuple(layer.granularity for layer in layers),
        positions=positions,
        ou_slots=slots,
        crossbars=crossbars,
        dense_crossbars=per_layer(lambda l: spec.dense_crossbars(l.dense_rows, l.dense_cols)),
        ou_activations=activations,
        adc_conversions=activations * spec.ou_cols,
        dac_drives=activations * spec.ou_rows,
        shift_add_ops=activations * spec.ou_cols,
        index_lookups=lookups,
        index_bits=index_bits,
        index_floor_bits=index_floor_bits,
        latency_ns=cycles * costs.cycle_ns,
        dense_ops=2 * per_layer(lambda l: l.dense_rows * l.dense_cols) * positions,
        energy=energy,
        area=area,
        total_crossbars=total_crossbars,
        area_total=_area(spec, np.float64(total_crossbars), np.sum(index_bits), as_float=True),
    )


def periphery_area_um2(spec: HardwareSpec) -> float:
    """One crossbar with its share of ADC, DAC, sample-and-hold and shift-and-add units."""
    costs = spec.costs
    return (costs.crossbar_area_um2 + costs.adcs_per_crossbar * costs.adc_area_um2
            + costs.dacs_per_crossbar * costs.dac_area_um2 + costs.sample_hold_area_um2
            + costs.shift_adds_per_crossbar * costs.shift_add_area_um2)


def _area(spec: HardwareSpec, crossbars, index_bits, as_float: bool = False) -> AreaBreakdown:
    """crossbars * (the per-crossbar area of hw.area_scope) + index storage, in mm^2."""
    costs = spec.costs
    registers = costs.ima_registers_area_um2 if spec.area_scope in ("ima", "tile") else 0.0
    tile_other = (max(costs.tile_area_um2 / costs.crossbars_per_tile - periphery_area_um2(spec) - registers, 0.0)
                  if spec.area_scope == "tile" else 0.0)
    values = {
        "crossbar": crossbars * costs.crossbar_area_um2,
        "adc": crossbars * costs.adcs_per_crossbar * costs.adc_area_um2,
        "dac": crossbars * costs.dacs_per_crossbar * costs.dac_area_um2,
        "sample_hold": crossbars * costs.sample_hold_area_um2,
        "shift_add": crossbars * costs.shift_adds_per_crossbar * costs.shift_add_area_um2,
        "registers": crossbars * registers,
        "tile_other": crossbars * tile_other,
        "index": index_bits * spec.index.bit_area_um2,
    }
    convert = float if as_float else np.asarray
    return AreaBreakdown(**{name: convert(value / UM2_PER_MM2) for name, value in values.items()})


def _bit_length(values: np.ndarray) -> np.ndarray:
    """ceil(log2(v + 1)) elementwise: the bits that address v + 1 items."""
    values = np.asarray(values, dtype=np.int64)
    return np.where(values > 0, np.floor(np.log2(np.maximum(values, 1))).astype(np.int64) + 1, 0)


def _choose_bits(rows: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """log2 C(R, r) per column group: the bits needed to name which r of R rows it keeps."""
    rows, kept = np.asarray(rows, dtype=np.float64), np.asarray(kept, dtype=np.float64)
    ln_choose = gammaln(rows + 1) - gammaln(kept + 1) - gammaln(rows - kept + 1)
    return np.maximum(ln_choose / math.log(2), 0.0)


def _ceil_div(numerator, denominator):
    return -(-np.asarray(numerator) // denominator)
