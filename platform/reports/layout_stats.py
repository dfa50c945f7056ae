"""Read a saved layout back and price it: the per-layer crossbars the reports and plots show.

Loading the layout the finalizer saved (rather than trusting its numbers) is also the
check that the exported directory is complete and reproduces the reported crossbar count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hw.spec import hw_spec_from_dict


def layout_summary(layout_dir: str | Path, hw: dict[str, Any]) -> dict[str, Any]:
    """mapping.report's JSON report of the saved layout (totals and a row per layer)."""
    from mapping.layout import load_layout
    from mapping.report import layout_report, price_layout

    spec = hw_spec_from_dict(dict(hw))
    layout = load_layout(layout_dir)
    return layout_report(layout, price_layout(layout, spec), spec)


def per_layer_crossbars(report: dict[str, Any]) -> tuple[list[str], list[float], list[float]]:
    """Layer names, dense crossbars and pruned crossbars, in layer order."""
    layers = report["layers"]
    return ([layer["name"] for layer in layers], [layer["dense_crossbars"] for layer in layers],
            [layer["crossbars"] for layer in layers])
