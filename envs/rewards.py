"""Reward functions of the pruning search, selectable by name.

All three share one shape so that the evaluation can compare what they optimise, not how
they are scaled: a feasible policy (accuracy loss within the user's constraint) earns the
log of its compression, an infeasible one a penalty that grows with the excess loss and is
never better than the worst feasible reward (log 1 = 0). Only the compression they
measure differs: occupied crossbars (AUTO-PRUNE, the hardware's direct feedback), the
area or energy efficiency gain over the dense mapping (for a budget of area or energy rather
than crossbars), or FLOPs / parameters (AMC's hardware-blind objectives).

`accuracy` is the budget formulation's reward (envs/formulation.py): every episode already meets
its crossbar budget, so only the recovered accuracy is scored, as AMC scores `-error`:
`-asinh(delta_acc / epsilon)`, linear in the loss near the constraint (slope 1/epsilon), then
logarithmic, so a collapsed network (about -5 at epsilon = 1%) does not swamp the differences
that matter; a gain over the reference earns a positive reward.

The penalty is bounded: `-penalty * tanh(excess / epsilon)` lies in (-penalty, 0], as do a
diverged fine-tune and a NaN accuracy (exactly -penalty). An unbounded penalty (about -150 for
a collapsed network at epsilon = 1%) swamps the feasible scale (log CR, 0 to ~1.5), teaches
an agent only to prune less, and lies outside the range where RLlib's PPO critic, whose
squared error is clamped at vf_clip_param, gets any gradient. The tanh keeps a slope of
penalty / epsilon near the constraint, so "less infeasible" still pays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REWARDS = ("crossbar_constrained", "amc_flops", "amc_params", "area_efficiency", "energy_efficiency", "accuracy")


@dataclass(frozen=True)
class EpisodeOutcome:
    """What an evaluated policy achieved; each *_compression is dense / pruned (>= 1)."""

    delta_acc: float
    epsilon: float
    crossbar_compression: float
    flops_compression: float
    params_compression: float
    area_efficiency_gain: float = 1.0  # over the dense mapping (hw.cost_model.compare_reports)
    energy_efficiency_gain: float = 1.0

    @property
    def feasible(self) -> bool:
        return self.delta_acc <= self.epsilon  # False for a NaN loss


def validate_reward_name(name: str) -> str:
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}: expected one of {REWARDS}")
    return name


def infeasible_reward(excess: float, epsilon: float, penalty: float) -> float:
    """-penalty * tanh(excess / epsilon): in (-penalty, 0]; a NaN or infinite excess gets -penalty."""
    if not math.isfinite(excess):
        return -penalty
    return -penalty * math.tanh(max(excess, 0.0) / epsilon)


def accuracy_reward(delta_acc: float, epsilon: float) -> float:
    """-asinh(delta_acc / epsilon), the loss clipped to [-1, 1] (an accuracy difference); a NaN loss
    scores as a total loss (1)."""
    loss = 1.0 if math.isnan(delta_acc) else min(max(delta_acc, -1.0), 1.0)
    return -math.asinh(loss / epsilon)


def worst_reward(name: str, epsilon: float, penalty: float) -> float:
    """What a diverged episode (NaN loss) earns: the lowest reward `name` can give."""
    validate_reward_name(name)
    return accuracy_reward(1.0, epsilon) if name == "accuracy" else infeasible_reward(math.inf, epsilon, penalty)


def compute_reward(name: str, outcome: EpisodeOutcome, penalty: float) -> float:
    """log(compression) when feasible, else the bounded penalty of the excess loss (at most 0);
    for `accuracy`, the accuracy reward whatever the compression."""
    validate_reward_name(name)
    if name == "accuracy":
        return accuracy_reward(outcome.delta_acc, outcome.epsilon)
    if not outcome.feasible:
        return infeasible_reward(outcome.delta_acc - outcome.epsilon, outcome.epsilon, penalty)
    compression = {
        "crossbar_constrained": outcome.crossbar_compression,
        "amc_flops": outcome.flops_compression,
        "amc_params": outcome.params_compression,
        "area_efficiency": outcome.area_efficiency_gain,
        "energy_efficiency": outcome.energy_efficiency_gain,
    }[name]
    # A NaN or infinite compression (no crossbar left: a bug upstream) earns nothing, never an unbounded reward.
    return math.log(compression) if math.isfinite(compression) and compression > 1.0 else 0.0
