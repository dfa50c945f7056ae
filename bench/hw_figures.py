"""The hardware figures of one mapping under each index encoding, medium and area scope, as ratios.

    python -m bench.hw_figures [--ratio 0.5] [--model resnet50]

Maps the model (small_input, 28x28x1 input, random weights: ou_row crossbar counts and costs
depend only on how many rows each group keeps) uniformly at `--ratio` on isaac, prices it with
the dense mapping under every combination, and prints, per combination: CR, the share of the
area the index storage takes, the area- and energy-efficiency gains over the dense mapping and
each gain as a fraction of CR. It also prints the largest bitmap-bits / log2 C(R, r) ratio over
the layers with R >= 512. Goals (docs/hardware-model.md): index <= 20% of the area, area and
energy gains >= 0.8x CR, bitmap within 5% of the floor. Figures only, no assertions.
"""

from __future__ import annotations

import argparse
import itertools

from envs.workload.models import build_model
from hw.cost_model import price_layers
from hw.cost_report import compare_reports
from hw.layout_types import LayerOccupancy
from hw.spec import AREA_SCOPES, INDEX_ENCODINGS, load_hw_spec
from mapping.mapper import map_model

INPUT_SHAPE = (1, 1, 28, 28)


def run(model_name: str, ratio: float) -> None:
    model = build_model(model_name, 10, 1, True)
    layout = map_model(model, ratio, load_hw_spec("isaac"), "ou_row", INPUT_SHAPE)
    dense_layers = [LayerOccupancy.dense(layer.name, layer.matrix.rows, layer.matrix.cols, layer.matrix.positions,
                                         load_hw_spec("isaac")) for layer in layout.layers]
    print(f"{model_name}, isaac, ou_row uniform {ratio}: {layout.crossbars} of {layout.dense_crossbars} crossbars")
    print(f"{'encoding':>8} {'medium':>8} {'scope':>9} {'CR':>6} {'index area':>10} {'area gain':>9} "
          f"{'/CR':>5} {'energy gain':>11} {'/CR':>5} {'throughput':>10}")
    for encoding, medium, scope in itertools.product(INDEX_ENCODINGS, ("sram", "edram"), AREA_SCOPES):
        spec = load_hw_spec("isaac", area_scope=scope, index={"encoding": encoding, "medium": medium})
        pruned = price_layers(spec, layout.occupancies())
        gains = compare_reports(price_layers(spec, dense_layers), pruned)
        share = pruned.area_total.index / pruned.total_area_mm2
        cr = gains.compression_rate
        print(f"{encoding:>8} {medium:>8} {scope:>9} {cr:>6.3f} {share:>10.1%} {gains.area_efficiency_gain:>9.3f} "
              f"{gains.area_efficiency_gain / cr:>5.2f} {gains.energy_efficiency_gain:>11.3f} "
              f"{gains.energy_efficiency_gain / cr:>5.2f} {gains.throughput_gain:>9.3f}x")
    bitmap = price_layers(load_hw_spec("isaac"), layout.occupancies())
    ratios = [bits / floor for bits, floor, occupancy in zip(bitmap.index_bits, bitmap.index_floor_bits,
                                                               layout.occupancies(), strict=True)
              if occupancy.rows >= 512 and floor > 0]
    print(f"bitmap bits / log2 C(R, r), layers with R >= 512: max {max(ratios):.4f}, "
          f"mean {sum(ratios) / len(ratios):.4f} over {len(ratios)} layers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--ratio", type=float, default=0.5)
    args = parser.parse_args()
    run(args.model, args.ratio)


if __name__ == "__main__":
    main()
