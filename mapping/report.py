"""The engine of the inspect command: map a model under a policy and report crossbars and costs.

`map_report` returns one JSON-ready dict (the keys below, plus efficiencies and
breakdowns); `format_report` renders it as a per-layer and total table. The command itself
only builds the model, spec and ratios from config and prints one of the two.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from hw.cost_model import compression_split, price_layers
from hw.cost_report import CostReport
from hw.spec import HardwareSpec
from mapping.layout import ModelLayout
from mapping.mapper import DEFAULT_INPUT_SHAPE, map_model


def price_layout(layout: ModelLayout, spec: HardwareSpec) -> CostReport:
    """The hw cost model's report of a layout (its crossbar total equals layout.crossbars)."""
    layout.check_spec(spec)
    return price_layers(spec, layout.occupancies(), layout.packing)


def layout_report(layout: ModelLayout, cost: CostReport, spec: HardwareSpec) -> dict:
    """Totals and per-layer rows of a priced layout, as plain JSON types.

    A layer's `crossbars` is its own count with per_layer packing and its (fractional) share
    of the shared crossbars with shared packing, as the cost model reports it.
    """
    shared = layout.packing == "shared"
    split = compression_split(spec, layout.occupancies(), layout.granularity, layout.packing, cost.total_crossbars)
    layers = []
    for i, layer in enumerate(layout.layers):
        layers.append({
            "name": layer.name,
            "kind": layer.matrix.kind,
            "rows": layer.matrix.rows,
            "cols": layer.matrix.cols,
            "positions": layer.matrix.positions,
            "ratio": layer.ratio,
            "sparsity": layer.sparsity,
            "granularity": layer.granularity,
            "dense_crossbars": spec.dense_crossbars(layer.dense_rows, layer.dense_cols),
            "crossbars": float(cost.crossbars[i]) if shared else int(cost.crossbars[i]),
            "ou_slots": int(cost.ou_slots[i]),
            "index_bits_per_slot": float(cost.index_bits[i] / cost.ou_slots[i]) if cost.ou_slots[i] else 0.0,
            "index_floor_bits_per_slot": (float(cost.index_floor_bits[i] / cost.ou_slots[i])
                                          if cost.ou_slots[i] else 0.0),
            "energy_nj": float(cost.energy_pj[i]) / 1e3,
        })
    return {
        "model": layout.model_name,
        "hw": spec.name,
        "granularity": layout.granularity,
        "packing": layout.packing,
        "dense_crossbars": layout.dense_crossbars,
        "crossbars": cost.total_crossbars,
        "compression_rate": split.compression_rate if cost.total_crossbars else None,
        "packing_gain": split.packing_gain,
        "pruning_gain": split.pruning_gain if cost.total_crossbars else None,
        "utilization": layout.utilization(spec),
        "sparsity": layout.sparsity,
        "energy_nj": cost.total_energy_nj,
        "area_mm2": cost.total_area_mm2,
        "latency_ns": cost.total_latency_ns,
        "throughput_per_s": cost.throughput_per_s,
        "area_scope": spec.area_scope,
        "index_encoding": spec.index.encoding,
        "index_bits": int(cost.index_bits.sum()),
        "index_floor_bits": float(cost.index_floor_bits.sum()),
        "area_efficiency_gops_per_mm2": cost.area_efficiency_gops_per_mm2,
        "energy_efficiency_tops_per_w": cost.energy_efficiency_tops_per_w,
        "energy_pj_by_component": cost.energy.summed().as_dict(),
        "area_mm2_by_component": cost.area_total.as_dict(),
        "layers": layers,
    }


def map_report(model: nn.Module, ratios: Mapping[str, float] | float, spec: HardwareSpec,
               granularity: str = "ou_row", input_shape: tuple[int, ...] = DEFAULT_INPUT_SHAPE,
               packing: str = "per_layer", model_name: str | None = None) -> dict:
    """Map `model` at `ratios` and price it: the inspect command's JSON object.

    Keys: model, hw, granularity, packing, dense_crossbars, crossbars, compression_rate,
    utilization, sparsity, energy_nj, area_mm2, latency_ns, area/energy efficiency, energy
    and area breakdowns, and layers (name, kind, rows, cols, positions, ratio, sparsity,
    granularity, dense_crossbars, crossbars, ou_slots, index bits per slot and its floor, energy_nj);
    plus packing_gain x pruning_gain = compression_rate, throughput, area scope and index encoding.
    """
    layout = map_model(model, ratios, spec, granularity, input_shape, packing, model_name)
    return layout_report(layout, price_layout(layout, spec), spec)


def format_report(report: dict) -> str:
    """A per-layer table followed by the totals, for a terminal."""
    header = (f"{'layer':<28} {'R':>6} {'C':>5} {'ratio':>6} {'dense':>6} {'xbars':>8} {'OU slots':>9} "
              f"{'idx b/slot':>10} {'floor':>6}")
    lines = [f"model {report['model']} on {report['hw']}: granularity {report['granularity']}, "
             f"packing {report['packing']}", "", header, "-" * len(header)]
    for layer in report["layers"]:
        crossbars = layer["crossbars"]
        shown = f"{crossbars:.2f}" if isinstance(crossbars, float) else str(crossbars)
        lines.append(f"{layer['name'][:28]:<28} {layer['rows']:>6} {layer['cols']:>5} {layer['ratio']:>6.2f} "
                     f"{layer['dense_crossbars']:>6} {shown:>8} {layer['ou_slots']:>9} "
                     f"{layer['index_bits_per_slot']:>10.1f} {layer['index_floor_bits_per_slot']:>6.1f}")
    rate = report["compression_rate"]
    rate_text = f"{rate:.3f}" if rate is not None else "n/a"
    pruning = report["pruning_gain"]
    lines += ["", f"crossbars {report['crossbars']} (dense {report['dense_crossbars']}), "
                  f"compression rate {rate_text} = packing gain {report['packing_gain']:.3f} x pruning gain "
                  f"{pruning:.3f}" if pruning is not None else f"compression rate {rate_text}",
              f"index ({report['index_encoding']}): {report['index_bits']} bits, information floor "
              f"{report['index_floor_bits']:.0f} bits",
              f"utilization {report['utilization']:.1%}, weight sparsity {report['sparsity']:.1%}",
              f"energy {report['energy_nj']:.4g} nJ, area {report['area_mm2']:.4g} mm^2, "
              f"latency {report['latency_ns'] / 1e3:.4g} us (one input), pipelined throughput "
              f"{report['throughput_per_s']:.4g} inferences/s",
              f"area efficiency {report['area_efficiency_gops_per_mm2']:.4g} GOPS/mm^2 "
              f"({report['area_scope']} area, throughput), "
              f"energy efficiency {report['energy_efficiency_tops_per_w']:.4g} TOPS/W"]
    return "\n".join(lines)
