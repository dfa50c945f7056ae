"""The terminal summary table of a sweep, one row per constraint."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from platform.search.sweep import TrialOutcome


@dataclass
class SummaryRow:
    constraint: float
    status: str  # done | no feasible policy | interrupted | failed
    accuracy: float  # final test accuracy (search accuracy when not finalized)
    delta_acc: float
    compression_rate: float
    crossbars: float
    area_efficiency_gain: float
    energy_efficiency_gain: float
    episodes: int
    wall_time_s: float
    packing_gain: float = math.nan  # CR = packing_gain x pruning_gain (hw.cost_model.CompressionSplit)
    pruning_gain: float = math.nan
    search_accuracy: float = math.nan  # the best feasible policy's accuracy on the search split
    search_delta_acc: float = math.nan  # ... and its loss there, which the constraint bounds
    finalized: bool = False  # accuracy and delta_acc come from the test split
    restarts: int = 0  # times the trial restarted from its last checkpoint after it died (a lost node)
    variation_mean: float = math.nan  # with env.variation: test accuracy over the report's device draws
    variation_worst: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _num(value: Any) -> float:
    return float(value) if value is not None else math.nan


def summary_row(outcome: TrialOutcome, final: dict[str, Any] | None,
                finalize_seconds: float = 0.0) -> SummaryRow:
    best = outcome.best or {}
    source = final if final is not None else best
    variation = (final or {}).get("variation") or {}
    if outcome.error:
        status = "failed"
    elif not outcome.finished:
        status = "interrupted"
    elif outcome.best is None:
        status = "no feasible policy"
    else:
        status = "done" if final is not None else "searched"
    return SummaryRow(
        constraint=outcome.epsilon,
        status=status,
        accuracy=_num(final["test_accuracy"] if final is not None else best.get("accuracy")),
        delta_acc=_num(source.get("delta_acc")),
        compression_rate=_num(source.get("compression_rate")),
        packing_gain=_num(source.get("packing_gain")),
        pruning_gain=_num(source.get("pruning_gain")),
        crossbars=_num(source.get("crossbars")),
        area_efficiency_gain=_num(source.get("area_efficiency_gain")),
        energy_efficiency_gain=_num(source.get("energy_efficiency_gain")),
        episodes=outcome.episodes,
        restarts=outcome.restarts,
        wall_time_s=outcome.wall_time_s + finalize_seconds,
        search_accuracy=_num(best.get("accuracy")),
        search_delta_acc=_num(best.get("delta_acc")),
        finalized=final is not None,
        variation_mean=_num(variation.get("test_accuracy_mean")),
        variation_worst=_num(variation.get("test_accuracy_worst")),
    )


COLUMNS = (("constraint", "ε", "{:g}"), ("accuracy", "accuracy", "{:.4f}"), ("delta_acc", "Δacc", "{:+.4f}"),
           ("compression_rate", "CR", "{:.3f}"), ("packing_gain", "packing", "{:.3f}"),
           ("pruning_gain", "pruning", "{:.3f}"), ("crossbars", "crossbars", "{:.0f}"),
           ("area_efficiency_gain", "area eff.", "{:.3f}"),
           ("energy_efficiency_gain", "energy eff.", "{:.3f}"), ("episodes", "episodes", "{:d}"),
           ("wall_time_s", "wall time", "{:.0f} s"), ("status", "status", "{}"))
VARIATION_COLUMNS = (("variation_mean", "acc. varied (mean)", "{:.4f}"), ("variation_worst", "(worst)", "{:.4f}"))


def _cell(value: Any, fmt: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return fmt.format(value)


def format_table(rows: list[SummaryRow]) -> str:
    """A fixed-width text table (also saved as an artifact on the parent run); with env.variation, the
    winners' test accuracy under device variation sits beside their ideal accuracy."""
    columns = COLUMNS
    if any(not math.isnan(row.variation_mean) for row in rows):
        columns = COLUMNS[:2] + VARIATION_COLUMNS + COLUMNS[2:]
    header = [title for _, title, _ in columns]
    body = [[_cell(getattr(row, key), fmt) for key, _, fmt in columns] for row in rows]
    return fixed_width(header, body)


def fixed_width(header: list[str], body: list[list[str]]) -> str:
    """Right-aligned columns under a dashed rule: the terminal tables of launch and compare."""
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)) for line in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    """The same rows as a Markdown table: the tables README and the tracked runs quote."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(line) + " |" for line in body])
