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
    """Reward of every episode and the best feasible CR so far, against episodes."""
    rewards, best_cr, episode = [], [], 0
    for line in history:
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
