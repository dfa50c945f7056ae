"""Learning curves of a comparison read at a few budgets: the numbers a reader quotes from the figure.

A curve is a seed's best feasible CR after n evaluated episodes (a step function, `platform.compare.
best_cr_curve`). The figure (`platform.reports.plots.learning_curves`) draws the mean over seeds; the
table here reads that same mean at 64 episodes (the budget of the earlier, shorter comparisons), at
half the search's budget and at the whole budget, with each seed's value, so "who leads when" is
written down instead of read off a plot.
"""

from __future__ import annotations

from platform.reports.summary import fixed_width, markdown_table

Curve = list[tuple[int, float]]


def value_at(curve: Curve, episodes: int) -> float:
    """The curve's value after `episodes` episodes; 1.0 (the dense model, always feasible) before its first point."""
    seen = [y for x, y in curve if x <= episodes]
    return seen[-1] if seen else 1.0


def mean_step_curve(curves: list[Curve]) -> tuple[list[int], list[float]]:
    """The mean over seeds of step curves, on the union of their x values."""
    xs = sorted({x for curve in curves for x, _ in curve})
    return xs, [sum(value_at(c, x) for c in curves) / len(curves) for x in xs]


def checkpoints(episodes: int) -> list[int]:
    """64, half the budget and the budget (those within it, each once); never empty, as a budget is > 0."""
    return sorted({n for n in (64, episodes // 2, episodes) if 0 < n <= episodes})


def checkpoint_rows(curves: dict[str, dict[float, list[Curve]]], episodes: int) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per method and constraint, the mean over seeds at each checkpoint, then each seed's."""
    marks = checkpoints(episodes)
    header = ["ε", "method", "seeds", *(f"@{n}" for n in marks), f"per seed @{episodes}"]
    body = []
    for method, per_constraint in curves.items():
        for epsilon in sorted(per_constraint):
            runs = [c for c in per_constraint[epsilon] if c]
            if not runs:
                continue
            means = [sum(value_at(c, n) for c in runs) / len(runs) for n in marks]
            last = ", ".join(f"{value_at(c, episodes):.2f}" for c in runs)
            body.append([f"{epsilon:g}", method, str(len(runs)), *(f"{m:.2f}" for m in means), last])
    return header, body


def format_text(curves: dict[str, dict[float, list[Curve]]], episodes: int) -> str:
    return fixed_width(*checkpoint_rows(curves, episodes))


def format_markdown(curves: dict[str, dict[float, list[Curve]]], episodes: int) -> str:
    return markdown_table(*checkpoint_rows(curves, episodes))
