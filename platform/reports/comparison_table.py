"""The comparison table: every method's runs aggregated per constraint (mean ± std over seeds).

Plain Python on the launcher's summary rows, so tests can check the arithmetic without Ray.
Efficiencies are relative to the dense mapping (docs/hardware-model.md) and, in the "vs" columns, to a
reference method (PIM-Prune by default) at the same constraint and seed.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any

from platform.reports.summary import SummaryRow, fixed_width, markdown_table

GAINS = ("compression_rate", "area_efficiency_gain", "energy_efficiency_gain")
FEASIBLE = ("done", "searched")  # summary statuses of a run that found a policy within its constraint


@dataclass
class MethodRun:
    """One constraint's outcome of one method launched with one seed."""

    method: str
    granularity: str
    seed: int
    row: SummaryRow
    sweep_dir: str = ""  # the launch's sweep folder (its history gives the learning curve)

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "granularity": self.granularity, "seed": self.seed,
                "sweep_dir": self.sweep_dir, **self.row.as_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MethodRun:
        values = dict(values)
        head = {key: values.pop(key) for key in ("method", "granularity", "seed")}
        return cls(**head, sweep_dir=values.pop("sweep_dir", ""), row=SummaryRow(**values))


@dataclass
class Stat:
    mean: float
    std: float
    n: int

    def format(self, fmt: str) -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "-"
        text = fmt.format(self.mean)
        return text if self.n < 2 else f"{text} ± {fmt.replace('+', '').format(self.std)}"


def stat(values: list[float]) -> Stat:
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return Stat(math.nan, math.nan, 0)
    return Stat(statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0, len(finite))


@dataclass
class MethodSummary:
    """One line of the table: a method at a constraint, over its seeds."""

    method: str
    granularity: str
    constraint: float
    runs: int
    feasible_runs: int
    accuracy: Stat
    delta_acc: Stat
    search_delta_acc: Stat
    crossbars: Stat
    compression_rate: Stat
    packing_gain: Stat
    pruning_gain: Stat
    area_efficiency_gain: Stat
    energy_efficiency_gain: Stat
    vs_reference: dict[str, Stat]  # gain / the reference method's gain, same constraint and seed
    episodes: Stat
    wall_time_s: Stat
    finalized: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _reference_gain(runs: list[MethodRun], reference: str, constraint: float, seed: int, key: str) -> float:
    """The reference method's gain at this constraint and seed (or its only seed, if it ran once)."""
    matches = [r for r in runs if r.method == reference and r.row.constraint == constraint]
    same_seed = [r for r in matches if r.seed == seed] or matches[:1]
    return getattr(same_seed[0].row, key) if same_seed else math.nan


def summarize(runs: list[MethodRun], reference: str) -> list[MethodSummary]:
    """One MethodSummary per (method, constraint), in the order the methods first appear."""
    methods = list(dict.fromkeys(r.method for r in runs))
    constraints = sorted({r.row.constraint for r in runs})
    table = []
    for constraint in constraints:
        for method in methods:
            mine = [r for r in runs if r.method == method and r.row.constraint == constraint]
            if not mine:
                continue
            feasible = [r for r in mine if r.row.status in FEASIBLE]
            rows = [r.row for r in feasible]
            ratios = {key: stat([getattr(r.row, key) / _reference_gain(runs, reference, constraint, r.seed, key)
                                 for r in feasible]) for key in GAINS}
            table.append(MethodSummary(
                method=method, granularity=mine[0].granularity, constraint=constraint, runs=len(mine),
                feasible_runs=len(feasible),
                accuracy=stat([r.accuracy for r in rows]), delta_acc=stat([r.delta_acc for r in rows]),
                search_delta_acc=stat([r.search_delta_acc for r in rows]),
                crossbars=stat([r.crossbars for r in rows]),
                compression_rate=stat([r.compression_rate for r in rows]),
                packing_gain=stat([r.packing_gain for r in rows]),
                pruning_gain=stat([r.pruning_gain for r in rows]),
                area_efficiency_gain=stat([r.area_efficiency_gain for r in rows]),
                energy_efficiency_gain=stat([r.energy_efficiency_gain for r in rows]),
                vs_reference=ratios,
                episodes=stat([float(r.row.episodes) for r in mine]),
                wall_time_s=stat([r.row.wall_time_s for r in mine]),
                finalized=all(r.finalized for r in rows) and bool(rows),
            ))
    return table


def table_rows(summaries: list[MethodSummary], reference: str) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the comparison table (shared by the text and Markdown renderings)."""
    short = {"pim_prune": "PIM-Prune"}.get(reference, reference)
    header = ["ε", "method", "granularity", "runs", "accuracy", "Δacc", "crossbars", "CR", "packing × pruning",
              "area eff.",
              "energy eff.", f"CR vs {short}", f"area vs {short}", f"energy vs {short}", "episodes", "wall time"]
    body = []
    for s in summaries:
        split = "test" if s.finalized else "search"
        body.append([
            f"{s.constraint:g}", s.method, s.granularity, f"{s.feasible_runs}/{s.runs}",
            f"{s.accuracy.format('{:.4f}')} ({split})", s.delta_acc.format("{:+.4f}"),
            s.crossbars.format("{:.0f}"), s.compression_rate.format("{:.2f}"),
            f"{s.packing_gain.format('{:.3f}')} × {s.pruning_gain.format('{:.2f}')}",
            s.area_efficiency_gain.format("{:.2f}"), s.energy_efficiency_gain.format("{:.2f}"),
            s.vs_reference["compression_rate"].format("{:.2f}"),
            s.vs_reference["area_efficiency_gain"].format("{:.2f}"),
            s.vs_reference["energy_efficiency_gain"].format("{:.2f}"),
            s.episodes.format("{:.0f}"), s.wall_time_s.format("{:.0f}") + " s",
        ])
    return header, body


def format_text(summaries: list[MethodSummary], reference: str) -> str:
    return fixed_width(*table_rows(summaries, reference))


def format_markdown(summaries: list[MethodSummary], reference: str) -> str:
    return markdown_table(*table_rows(summaries, reference))
