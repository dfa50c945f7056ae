"""Hand-designed pruning policies: uniform ratios and PIM-Prune-style sensitivity ratios.

Both find "the largest ratio that still meets the constraint" by bisection on a scale,
assuming accuracy falls as the scale grows (true for magnitude pruning on average; a
non-monotone point only makes the bisection settle on a smaller scale).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from envs.sensitivity import sensitivity_weights

Record = dict[str, Any]
Proposals = Generator[list[float], Record, None]


def bisect_scale(policy: Callable[[float], list[float]], high: float, tolerance: float) -> Proposals:
    """Yield policy(scale) for the largest feasible scale in [0, high]: first `high`, then halvings."""
    record = yield policy(high)
    if record["feasible"]:
        return
    low = 0.0
    while high - low > tolerance:
        middle = (low + high) / 2
        record = yield policy(middle)
        if record["feasible"]:
            low = middle
        else:
            high = middle


def uniform(layers: int, pmax: float, tolerance: float) -> Proposals:
    """One ratio for every layer: the largest feasible one."""
    yield from bisect_scale(lambda ratio: [ratio] * layers, pmax, tolerance)


def pim_prune(layers: int, pmax: float, epsilon: float, probe_ratio: float, tolerance: float) -> Proposals:
    """Probe each layer alone at `probe_ratio`, then scale sensitivity-weighted ratios by bisection."""
    losses = []
    for layer in range(layers):
        ratios = [0.0] * layers
        ratios[layer] = probe_ratio
        record = yield ratios
        losses.append(float(record["delta_acc"]))
    weights = sensitivity_weights(losses, epsilon)
    yield from bisect_scale(lambda alpha: [min(pmax, alpha * w) for w in weights], pmax, tolerance)


def pim_prune_budget(layers: int) -> int:
    """The fewest episodes pim_prune needs: one probe per layer plus two bisection steps."""
    return layers + 2


def budget_problem(method: str, episodes: int, layers: int) -> str | None:
    """Why `episodes` cannot run `method` on a model of `layers` prunable layers (None: it can)."""
    if method == "pim_prune" and episodes < pim_prune_budget(layers):
        return (f"pim_prune probes each of the {layers} layers once: it needs search.episodes >= "
                f"{pim_prune_budget(layers)}, got {episodes}")
    return None
