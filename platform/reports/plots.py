"""PNG figures of a sweep: per-layer policy, search curves and the Pareto front.

Headless (Agg) so they render on a cluster node without a display; each function
writes one file and returns its path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from platform.reports.curves import mean_step_curve  # noqa: E402


def per_layer(path: Path, layer_names: Sequence[str], ratios: Sequence[float],
              dense_crossbars: Sequence[int] | None, crossbars: Sequence[int] | None, title: str) -> Path:
    """Pruning ratio per layer, and crossbars per layer before (dense) and after pruning."""
    panels = 2 if dense_crossbars is not None and crossbars is not None else 1
    width = max(6.0, 0.22 * len(ratios) + 2)
    fig, axes = plt.subplots(panels, 1, figsize=(width, 3.2 * panels), sharex=True, squeeze=False)
    x = range(len(ratios))
    axes[0][0].bar(x, ratios, color="tab:blue")
    axes[0][0].set_ylabel("pruning ratio")
    axes[0][0].set_ylim(0, 1)
    axes[0][0].set_title(title)
    if panels == 2:
        offset = 0.2
        axes[1][0].bar([i - offset for i in x], dense_crossbars, width=0.4, label="dense", color="tab:gray")
        axes[1][0].bar([i + offset for i in x], crossbars, width=0.4, label="pruned", color="tab:green")
        axes[1][0].set_ylabel("crossbars")
        axes[1][0].set_yscale("log")
        axes[1][0].legend()
    axes[-1][0].set_xticks(list(x))
    axes[-1][0].set_xticklabels(layer_names, rotation=90, fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def search_curves(path: Path, history: Sequence[dict[str, Any]], title: str) -> Path:
    """Reward of every episode of the search and the best feasible CR so far, against episodes.

    A sensitivity probe's line (envs/sensitivity.py) opens a history but is not the search's own:
    its episodes have no reward under the search's formulation, and RLlib's episode counts start
    after them, so it is left out here (learning curves in platform/compare.py count it).
    """
    rewards, best_cr, episode = [], [], 0
    for line in history:
        if line.get("probe"):
            continue
        for record in line.get("records", []):
            episode += 1
            rewards.append((episode, record["reward"]))
        best_cr.append((line.get("episodes", episode), line.get("best_cr", 0.0)))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    if rewards:
        top.plot(*zip(*rewards, strict=True), ".", markersize=3, alpha=0.6, label="episode reward")
    iter_mean = [(line.get("episodes", 0), line["reward_mean"]) for line in history
                 if isinstance(line.get("reward_mean"), float) and math.isfinite(line["reward_mean"])]
    if iter_mean:
        top.plot(*zip(*iter_mean, strict=True), "-", color="tab:red", label="iteration mean")
    top.set_ylabel("reward")
    top.set_title(title)
    top.legend()
    if best_cr:
        bottom.step(*zip(*best_cr, strict=True), where="post", color="tab:green")
    bottom.set_ylabel("best feasible CR")
    bottom.set_xlabel("episodes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pareto(path: Path, points: Sequence[tuple[float, float, float]], title: str) -> Path:
    """Compression rate against accuracy loss, one point per constraint (constraint, delta_acc, CR)."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ordered = sorted(points, key=lambda p: p[1])
    if ordered:
        ax.plot([p[1] * 100 for p in ordered], [p[2] for p in ordered], "o-", color="tab:blue")
        for epsilon, delta, cr in ordered:
            ax.annotate(f"ε={epsilon:g}", (delta * 100, cr), textcoords="offset points", xytext=(5, 5),
                        fontsize=8)
            ax.axvline(epsilon * 100, color="tab:gray", linewidth=0.5, linestyle=":")
    ax.set_xlabel("accuracy loss (percentage points)")
    ax.set_ylabel("compression rate (crossbars)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def methods_scatter(path: Path, points: dict[str, list[tuple[float, float]]], title: str,
                    constraints: Sequence[float] = ()) -> Path:
    """Compression rate against accuracy loss for every method: one point per (constraint, seed) run."""
    fig, ax = plt.subplots(figsize=(7, 5))
    markers = "osD^v<>PX*"
    for index, (method, values) in enumerate(points.items()):
        if values:
            xs, ys = zip(*values, strict=True)
            ax.plot([x * 100 for x in xs], ys, markers[index % len(markers)], label=method, alpha=0.8)
    for epsilon in constraints:
        ax.axvline(epsilon * 100, color="tab:gray", linewidth=0.6, linestyle=":")
    ax.set_xlabel("accuracy loss on the search split (percentage points)")
    ax.set_ylabel("compression rate (occupied crossbars)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves(path: Path, curves: dict[str, dict[float, list[list[tuple[int, float]]]]], title: str) -> Path:
    """Best feasible CR against evaluated episodes, one panel per constraint, mean over seeds per method."""
    constraints = sorted({c for per_method in curves.values() for c in per_method})
    fig, axes = plt.subplots(1, max(1, len(constraints)), figsize=(4.5 * max(1, len(constraints)), 4),
                             squeeze=False, sharey=True)
    for ax, epsilon in zip(axes[0], constraints, strict=False):
        for method, per_constraint in curves.items():
            runs = [c for c in per_constraint.get(epsilon, []) if c]
            if runs:
                xs, ys = mean_step_curve(runs)
                ax.step(xs, ys, where="post", label=f"{method} (n={len(runs)})")
        ax.set_title(f"ε = {epsilon:g}")
        ax.set_xlabel("evaluated episodes")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("best feasible CR so far (mean over seeds)")
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
