"""Benchmark of mapping: mask + compact + pack + price all 54 layers of ResNet-50.

    python -m bench.mapping [--repeats 9] [--ratio 0.5]

ResNet-50 (torchvision, random init, 1000 classes) at 224x224: its 53 convs and fc are masked
at one ratio by magnitude, compacted into OU slots with index tables, packed into crossbars
and priced by hw's cost model, on one thread. The layer list (shapes and output positions,
one forward pass) is built once beforehand, as a search does once per model. Prints the
median time per granularity beside one ResNet-50 forward pass on one 224x224 image, then
utilization and crossbars of ou_row vs crossbar_row. Figures only, no assertions: the
times depend on the machine (goals: <= 100 ms; ou_row utilization >= 90% at 0.5).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import torch
import torchvision

from hw.cost_model import price_layers
from hw.spec import HardwareSpec, load_hw_spec
from mapping.layout import ModelLayout
from mapping.mapper import map_matrices
from mapping.matrices import LayerMatrix, layer_matrices

INPUT_SHAPE = (1, 3, 224, 224)
CASES = (("ou_row", "per_layer"), ("ou_row", "shared"), ("crossbar_row", "per_layer"))


def median_ms(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def map_and_price(model: torch.nn.Module, matrices: list[LayerMatrix], ratio: float, spec: HardwareSpec,
                  granularity: str, packing: str) -> ModelLayout:
    """The timed work: masks, compaction, packing (inside map_matrices), then the cost model."""
    layout = map_matrices(model, matrices, ratio, spec, granularity, packing)
    price_layers(spec, layout.occupancies(), packing)
    return layout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mapping", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--ratio", type=float, default=0.5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = load_hw_spec("isaac")
    model = torchvision.models.resnet50(num_classes=1000).eval()
    matrices = layer_matrices(model, INPUT_SHAPE)
    image = torch.randn(INPUT_SHAPE)

    def forward() -> None:
        with torch.no_grad():
            model(image)

    forward_ms = median_ms(forward, max(3, args.repeats // 2))
    print(f"ResNet-50, {len(matrices)} prunable layers, ratio {args.ratio}, preset {spec.name}, 1 thread")
    print(f"{'one forward pass (1x3x224x224)':<44} {forward_ms:8.1f} ms")
    layouts = {}
    for granularity, packing in CASES:
        run = functools.partial(map_and_price, model, matrices, args.ratio, spec, granularity, packing)
        total = median_ms(run, args.repeats)
        layouts[granularity, packing] = layout = run()
        occupancies = layout.occupancies()
        pricing = median_ms(functools.partial(price_layers, spec, occupancies, packing), args.repeats)
        print(f"{'mask+compact+pack+price ' + granularity + ' ' + packing:<44} {total:8.1f} ms "
              f"({total / forward_ms:.2f}x a forward pass; pricing alone {pricing:.1f} ms)")
    print()
    for (granularity, packing), layout in layouts.items():
        print(f"{granularity + ' ' + packing:<24} utilization {layout.utilization(spec):6.1%}  "
              f"crossbars {layout.crossbars:5d} of {layout.dense_crossbars} dense  "
              f"CR {layout.compression_rate:.3f}  weight sparsity {layout.sparsity:.1%}")


if __name__ == "__main__":
    main()
