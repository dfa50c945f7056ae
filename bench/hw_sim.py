"""Benchmark of the crossbar simulator against a plain float32 matmul.

    python -m bench.hw_sim [--repeats 7] [--threads 1,2]

For a 2304x256 layer (a 3x3 conv 256->256 unrolled) on 256 input vectors, and for that conv
on a 16x16 feature map, prints median times and their ratios to torch's float32 matmul /
conv2d of the same shape, single- and multi-threaded. Cases:
- fast: the exact fast path (lossless ADC, ideal devices).
- ou: the OU/ADC model on the ISAAC preset; every OU's ADC provably cannot saturate there,
  so it costs one exact integer matmul plus the saturation analysis.
- ou adc4: the OU/ADC model with a 4-bit ADC: the cell columns that can saturate (about a
  tenth here) are simulated partial sum by partial sum.
- ou every partial sum: the OU/ADC model with nothing elided (every OU, cell column and
  input bit through the ADC), the cost of a conductance-variation run.
Weights are programmed once per layer (as crossbars are) before timing. Each ratio is the
median over rounds of (case time / an adjacent baseline time), robust to a shared machine.
Ratios only, no assertions: these numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from hw.layout_types import PackedLayer
from hw.simulator import CrossbarSimulator
from hw.spec import load_hw_spec

ROWS, COLS, VECTORS = 2304, 256, 256
CONV_CHANNELS, CONV_KERNEL, FEATURE_MAP = 256, 3, 16


def timed_ms(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1e3


def paired(baseline: Callable[[], object], case: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median time of `case` and the median of its per-round ratio to an adjacent baseline run.

    Each round times the baseline right before the case, so a machine shared with other
    jobs slows both alike and the ratio stays meaningful even when absolute times wander.
    """
    baseline()
    case()  # warm-up: programs the layer, grows the workspaces
    times, ratios = [], []
    for _ in range(repeats):
        base = min(timed_ms(baseline) for _ in range(3))
        elapsed = timed_ms(case)
        times.append(elapsed)
        ratios.append(elapsed / base)
    return statistics.median(times), statistics.median(ratios)


def bench_matmul(repeats: int, slow_repeats: int) -> list[tuple[str, float, float]]:
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(ROWS, COLS, generator=generator) / ROWS**0.5
    x = torch.relu(torch.randn(VECTORS, ROWS, generator=generator))
    isaac, lossy = load_hw_spec("isaac"), load_hw_spec("isaac", adc_bits=4)
    layer, lossy_layer = PackedLayer.dense(weights, isaac), PackedLayer.dense(weights, lossy)
    simulator, lossy_simulator = CrossbarSimulator(isaac), CrossbarSimulator(lossy)
    reference = CrossbarSimulator(isaac, elide_unsaturable=False)

    def baseline():
        return x @ weights

    rows = [("float32 matmul", statistics.median(timed_ms(baseline) for _ in range(3 * repeats)), 1.0)]
    for name, run, count in (
        ("fast", lambda: simulator.matmul(x, layer, "fast"), repeats),
        ("ou (isaac, lossless ADC)", lambda: simulator.matmul(x, layer, "ou"), repeats),
        ("ou adc4 (saturating ADC)", lambda: lossy_simulator.matmul(x, lossy_layer, "ou"), slow_repeats),
        ("ou every partial sum", lambda: reference.matmul(x, layer, "ou"), slow_repeats),
    ):
        rows.append((name, *paired(baseline, run, count)))
    columns = lossy_simulator.cell_arrays(lossy_layer)
    rows.append((f"  (adc4: {columns.analog_columns}/{columns.total_columns} cell columns can saturate)",
                 float("nan"), float("nan")))
    return rows


def bench_conv(repeats: int) -> list[tuple[str, float, float]]:
    generator = torch.Generator().manual_seed(1)
    shape = (CONV_CHANNELS, CONV_CHANNELS, CONV_KERNEL, CONV_KERNEL)
    weight = torch.randn(shape, generator=generator) / (CONV_CHANNELS * CONV_KERNEL**2) ** 0.5
    x = torch.relu(torch.randn(1, CONV_CHANNELS, FEATURE_MAP, FEATURE_MAP, generator=generator))
    spec = load_hw_spec("isaac")
    layer = PackedLayer.dense(weight.reshape(CONV_CHANNELS, -1).T, spec)
    simulator = CrossbarSimulator(spec)

    def baseline():
        return F.conv2d(x, weight, padding=1)

    rows = [("float32 conv2d", statistics.median(timed_ms(baseline) for _ in range(3 * repeats)), 1.0)]
    for path in ("fast", "ou"):
        def run(path=path):
            return simulator.conv2d(x, layer, CONV_KERNEL, padding=1, path=path)
        rows.append((path, *paired(baseline, run, repeats)))
    return rows


def print_rows(title: str, rows: list[tuple[str, float, float]]) -> None:
    print(title)
    for name, elapsed, ratio in rows:
        if elapsed != elapsed:  # a note, not a timing
            print(f"  {name}")
        else:
            print(f"  {name:<28} {elapsed:9.2f} ms   {ratio:7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--slow-repeats", type=int, default=3, help="repeats of the slow OU cases")
    parser.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    args = parser.parse_args()
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        print(f"== torch.set_num_threads({threads}) ==")
        print_rows(f"{ROWS}x{COLS} layer, {VECTORS} input vectors (ReLU activations), preset isaac:",
                   bench_matmul(args.repeats, args.slow_repeats))
        print_rows(f"conv {CONV_CHANNELS}->{CONV_CHANNELS} {CONV_KERNEL}x{CONV_KERNEL}, "
                   f"{FEATURE_MAP}x{FEATURE_MAP} feature map, padding 1, batch 1:", bench_conv(args.repeats))


if __name__ == "__main__":
    main()
