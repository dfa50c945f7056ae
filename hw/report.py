"""`python -m hw.report`: what one layer costs on a crossbar preset, dense or with ou_row rows kept.

Prints crossbars, OU counts, index bits per OU slot beside the information floor, energy,
area, latency, throughput and efficiencies (with the energy and area breakdowns), so a reader
can check the cost model against docs/hardware-model.md by hand. `--keep r` prices the layer
under ou_row with r rows kept in every OU group. --json prints exactly one JSON object instead.
The default is a dense 3x3 conv 256->256 at 14x14 output positions on the ISAAC preset.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from hw.cost_model import price_layers
from hw.cost_report import CostReport
from hw.layout_types import LayerOccupancy
from hw.spec import HardwareSpec, HardwareSpecError, available_presets, load_hw_spec

DEFAULT_CONV = (256, 256, 3)
DEFAULT_CONV_POSITIONS = 14 * 14


@dataclass(frozen=True)
class LayerShape:
    """The dense layer to price: an R x C matrix used at `positions` output positions."""

    description: str
    rows: int
    cols: int
    positions: int
    keep: int | None = None  # rows kept per OU group under ou_row; None: the dense mapping


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hw.report", description=__doc__.splitlines()[0])
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--conv", metavar="CIN,COUT,K",
                       help="a KxK conv layer, R = CIN*K*K, C = COUT (default 256,256,3)")
    shape.add_argument("--rows", type=int, help="rows R of the weight matrix (inputs); needs --cols")
    parser.add_argument("--cols", type=int, help="columns C of the weight matrix (outputs)")
    parser.add_argument("--positions", type=int,
                        help=f"output positions per inference (default {DEFAULT_CONV_POSITIONS} for a conv, "
                             f"1 for --rows/--cols)")
    parser.add_argument("--keep", type=int, help="rows kept in every OU group under ou_row (default: dense)")
    parser.add_argument("--preset", default="isaac", help=f"hardware preset, one of {available_presets()}")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return parser


def parse_shape(args: argparse.Namespace, parser: argparse.ArgumentParser) -> LayerShape:
    if args.rows is not None or args.cols is not None:
        if args.rows is None or args.cols is None:
            parser.error("--rows and --cols go together")
        positions = 1 if args.positions is None else args.positions
        shape = LayerShape(f"dense {args.rows}x{args.cols} matrix", args.rows, args.cols, positions)
    else:
        cin, cout, kernel = DEFAULT_CONV if args.conv is None else _parse_conv(args.conv, parser)
        positions = DEFAULT_CONV_POSITIONS if args.positions is None else args.positions
        description = f"dense {kernel}x{kernel} conv {cin}->{cout}"
        shape = LayerShape(description, cin * kernel * kernel, cout, positions)
    for name in ("rows", "cols", "positions"):
        if getattr(shape, name) < 1:
            parser.error(f"{name} must be a positive integer, got {getattr(shape, name)}")
    if args.keep is not None:
        if not 1 <= args.keep <= shape.rows:
            parser.error(f"--keep must lie in [1, R={shape.rows}], got {args.keep}")
        shape = LayerShape(f"{shape.description} keeping {args.keep} rows per OU group (ou_row)".replace("dense ", ""),
                           shape.rows, shape.cols, shape.positions, args.keep)
    return shape


def _parse_conv(text: str, parser: argparse.ArgumentParser) -> tuple[int, int, int]:
    try:
        cin, cout, kernel = (int(part) for part in text.split(","))
    except ValueError:
        parser.error(f"--conv expects CIN,COUT,K (three integers), got {text!r}")
    if min(cin, cout, kernel) < 1:
        parser.error(f"--conv values must be positive, got {text!r}")
    return cin, cout, kernel


def report_for(shape: LayerShape, spec: HardwareSpec) -> CostReport:
    layer = LayerOccupancy.dense(shape.description, shape.rows, shape.cols, shape.positions, spec)
    if shape.keep is not None:
        layer = LayerOccupancy.uniform(shape.description, shape.rows, shape.cols, shape.positions, "ou_row",
                                       shape.keep, spec)
    return price_layers(spec, [layer])


def format_table(shape: LayerShape, spec: HardwareSpec, report: CostReport) -> str:
    energy = report.energy.summed()
    area = report.area_total
    lines = [
        f"{shape.description}: R={shape.rows}, C={shape.cols}, {shape.positions} positions, "
        f"preset {spec.name}",
        f"  crossbars {spec.xbar_rows}x{spec.xbar_cols}, {spec.cell_bits}-bit cells, "
        f"{spec.weight_bits}-bit weights ({spec.signed}), OU {spec.ou_rows}x{spec.ou_cols}, "
        f"{spec.adc_bits}-bit ADC ({'lossless' if spec.adc_lossless else 'can saturate'})",
        "",
    ]
    rows = [
        ("crossbars", f"{report.total_crossbars}"),
        ("OU slots", f"{int(report.ou_slots.sum())}"),
        ("OU activations", f"{int(report.ou_activations.sum())}"),
        ("ADC conversions", f"{int(report.adc_conversions.sum())}"),
        ("DAC drives", f"{int(report.dac_drives.sum())}"),
        ("shift-and-add ops", f"{int(report.shift_add_ops.sum())}"),
        (f"index bits ({spec.index.encoding})", f"{int(report.index_bits.sum())}"),
        ("  per OU slot", f"{report.index_bits.sum() / max(int(report.ou_slots.sum()), 1):.2f}"),
        ("  floor log2 C(R, r) per slot", f"{report.index_floor_bits.sum() / max(int(report.ou_slots.sum()), 1):.2f}"),
        ("energy (nJ)", f"{report.total_energy_nj:.4g}"),
        *[(f"  {name}", f"{value / 1e3:.4g}") for name, value in asdict(energy).items()],
        (f"area (mm^2, {spec.area_scope} scope)", f"{report.total_area_mm2:.4g}"),
        *[(f"  {name}", f"{value:.4g}") for name, value in asdict(area).items()],
        ("latency (us, one input)", f"{report.total_latency_ns / 1e3:.4g}"),
        ("throughput (inferences/s, pipelined)", f"{report.throughput_per_s:.4g}"),
        ("dense ops (2*MACs)", f"{report.total_dense_ops}"),
        ("area efficiency (GOPS/mm^2)", f"{report.area_efficiency_gops_per_mm2:.4g}"),
        ("energy efficiency (TOPS/W)", f"{report.energy_efficiency_tops_per_w:.4g}"),
    ]
    width = max(len(name) for name, _ in rows)
    lines += [f"{name:<{width}}  {value:>14}" for name, value in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    shape = parse_shape(args, parser)
    try:
        spec = load_hw_spec(args.preset)
    except HardwareSpecError as error:
        parser.error(str(error))
    report = report_for(shape, spec)
    if args.json:
        payload = {"layer": asdict(shape), "preset": spec.name, "adc_lossless": spec.adc_lossless,
                   **report.to_dict()}
        print(json.dumps(payload))
    else:
        print(format_table(shape, spec, report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
