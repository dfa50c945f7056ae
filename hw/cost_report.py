"""What pricing a mapping produces: per-layer energy and area breakdowns, the model's totals and
efficiencies (`CostReport`), and how two reports compare (`compare_reports`).

hw/cost_model.py computes these numbers from layer occupancies (docs/hardware-model.md); this
module only holds and derives them, so that readers of a report need not import the pricing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True)
class EnergyBreakdown:
    """Energy per component in pJ; arrays hold one value per layer (or floats for totals)."""

    adc: np.ndarray
    dac: np.ndarray
    crossbar: np.ndarray
    shift_add: np.ndarray
    index: np.ndarray
    buffer: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return sum(getattr(self, f.name) for f in fields(self))

    def summed(self) -> EnergyBreakdown:
        return EnergyBreakdown(**{f.name: float(np.sum(getattr(self, f.name))) for f in fields(self)})

    def as_dict(self) -> dict[str, float | list[float]]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class AreaBreakdown:
    """Area per component in mm^2; arrays hold one value per layer (or floats for totals)."""

    crossbar: np.ndarray
    adc: np.ndarray
    dac: np.ndarray
    sample_hold: np.ndarray
    shift_add: np.ndarray
    registers: np.ndarray  # IMA input/output registers (scope ima and tile)
    tile_other: np.ndarray  # the rest of a tile's share: eDRAM, router, activation units (scope tile)
    index: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return sum(getattr(self, f.name) for f in fields(self))

    def as_dict(self) -> dict[str, float | list[float]]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class CostReport:
    """Per-layer counts and costs of one inference, with model totals.

    `crossbars` is per layer (fractional shares of shared crossbars under "shared" packing);
    `total_crossbars` is the model's occupied crossbars. Areas follow the same rule:
    `area` per layer, `area_total` for the model. Efficiencies use dense-equivalent ops
    (2 * MACs of the unpruned layers), so pruning shows up as a gain.
    """

    spec_name: str
    packing: str
    area_scope: str
    index_encoding: str
    names: tuple[str, ...]
    granularity: tuple[str, ...]
    positions: np.ndarray
    ou_slots: np.ndarray
    crossbars: np.ndarray
    dense_crossbars: np.ndarray
    ou_activations: np.ndarray
    adc_conversions: np.ndarray
    dac_drives: np.ndarray
    shift_add_ops: np.ndarray
    index_lookups: np.ndarray
    index_bits: np.ndarray
    index_floor_bits: np.ndarray  # log2 C(R, r) summed over column groups: the information a layout needs
    latency_ns: np.ndarray
    dense_ops: np.ndarray
    energy: EnergyBreakdown
    area: AreaBreakdown
    total_crossbars: int
    area_total: AreaBreakdown

    @property
    def energy_pj(self) -> np.ndarray:
        return self.energy.total

    @property
    def total_energy_pj(self) -> float:
        return float(np.sum(self.energy.total))

    @property
    def total_energy_nj(self) -> float:
        return self.total_energy_pj / 1e3

    @property
    def total_area_mm2(self) -> float:
        return float(self.area_total.total)

    @property
    def total_latency_ns(self) -> float:
        """One input through the layers in turn."""
        return float(np.sum(self.latency_ns))

    @property
    def stage_ns(self) -> float:
        """The slowest pipeline stage: the time between two outputs of a stream of inputs."""
        return float(np.max(self.latency_ns)) if self.latency_ns.size else 0.0

    @property
    def throughput_per_s(self) -> float:
        """Inferences per second with the layers pipelined (ISAAC-style); no stage replicated."""
        return 1e9 / self.stage_ns if self.stage_ns > 0 else math.inf

    @property
    def total_dense_ops(self) -> int:
        return int(np.sum(self.dense_ops))

    @property
    def compression_rate(self) -> float:
        """Dense crossbars of these layers / occupied crossbars (docs/hardware-model.md)."""
        dense = int(np.sum(self.dense_crossbars))
        return dense / self.total_crossbars if self.total_crossbars else math.inf

    @property
    def area_efficiency_gops_per_mm2(self) -> float:
        """Dense-equivalent GOP per second per mm^2 at the pipelined throughput."""
        seconds, area = self.stage_ns * 1e-9, self.total_area_mm2
        return self.total_dense_ops / 1e9 / seconds / area if seconds > 0 and area > 0 else math.inf

    @property
    def energy_efficiency_tops_per_w(self) -> float:
        """Dense-equivalent TOP per joule (= TOPS/W); GOPS/J is 1000 times this."""
        joules = self.total_energy_pj * 1e-12
        return self.total_dense_ops / 1e12 / joules if joules > 0 else math.inf

    def to_dict(self) -> dict:
        """A JSON-ready summary: totals first, then per-layer lists."""
        per_layer = {name: _jsonable(getattr(self, name)) for name in (
            "positions", "ou_slots", "crossbars", "dense_crossbars", "ou_activations", "adc_conversions",
            "dac_drives", "shift_add_ops", "index_lookups", "index_bits", "index_floor_bits", "latency_ns",
            "dense_ops")}
        return {
            "spec": self.spec_name,
            "packing": self.packing,
            "total_crossbars": self.total_crossbars,
            "dense_crossbars": int(np.sum(self.dense_crossbars)),
            "compression_rate": self.compression_rate,
            "energy_nj": self.total_energy_nj,
            "energy_pj_by_component": self.energy.summed().as_dict(),
            "area_mm2": self.total_area_mm2,
            "area_mm2_by_component": self.area_total.as_dict(),
            "latency_ns": self.total_latency_ns,
            "throughput_per_s": self.throughput_per_s,
            "area_scope": self.area_scope,
            "index_encoding": self.index_encoding,
            "dense_ops": self.total_dense_ops,
            "area_efficiency_gops_per_mm2": self.area_efficiency_gops_per_mm2,
            "energy_efficiency_tops_per_w": self.energy_efficiency_tops_per_w,
            "layers": {"name": list(self.names), "granularity": list(self.granularity), **per_layer,
                       "energy_pj": _jsonable(self.energy_pj)},
        }


@dataclass(frozen=True)
class ReportComparison:
    """How a candidate mapping compares to a baseline (ratios > 1 favour the candidate)."""

    compression_rate: float  # baseline crossbars / candidate crossbars
    area_efficiency_gain: float
    energy_efficiency_gain: float
    energy_ratio: float  # baseline energy / candidate energy
    speedup: float  # baseline latency / candidate latency (one input)
    throughput_gain: float  # candidate / baseline pipelined throughput


def compare_reports(baseline: CostReport, candidate: CostReport) -> ReportComparison:
    """Ratios of two reports of the same model, e.g. dense vs pruned or PIM-Prune vs ou_row."""
    return ReportComparison(
        compression_rate=ratio(baseline.total_crossbars, candidate.total_crossbars),
        area_efficiency_gain=ratio(candidate.area_efficiency_gops_per_mm2,
                                    baseline.area_efficiency_gops_per_mm2),
        energy_efficiency_gain=ratio(candidate.energy_efficiency_tops_per_w,
                                      baseline.energy_efficiency_tops_per_w),
        energy_ratio=ratio(baseline.total_energy_pj, candidate.total_energy_pj),
        speedup=ratio(baseline.total_latency_ns, candidate.total_latency_ns),
        throughput_gain=ratio(candidate.throughput_per_s, baseline.throughput_per_s),
    )


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.inf


def _jsonable(value) -> float | int | list:
    array = np.asarray(value)
    if array.ndim == 0:
        return array.item()
    return array.tolist()
