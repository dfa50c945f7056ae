"""Reward functions of the pruning search, selectable by name.

All three share one shape so that the evaluation can compare what they optimise, not how
they are scaled: a feasible policy (accuracy loss within the user's constraint) earns the
log of its compression, an infeasible one a penalty that grows with the excess loss and is
never better than the worst feasible reward (log 1 = 0). Only the compression they
measure differs: occupied crossbars (AUTO-PRUNE, the hardware's direct feedback), or
FLOPs / parameters (AMC's hardware-blind objectives).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REWARDS = ("crossbar_constrained", "amc_flops", "amc_params")


@dataclass(frozen=True)
class EpisodeOutcome:
    """What an evaluated policy achieved; each *_compression is dense / pruned (>= 1)."""

    delta_acc: float
    epsilon: float
    crossbar_compression: float
    flops_compression: float
    params_compression: float

    @property
    def feasible(self) -> bool:
        return self.delta_acc <= self.epsilon


def validate_reward_name(name: str) -> str:
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}: expected one of {REWARDS}")
    return name


def compute_reward(name: str, outcome: EpisodeOutcome, penalty: float) -> float:
    """log(compression) when feasible, else -penalty * (excess loss / epsilon), at most 0."""
    validate_reward_name(name)
    if not outcome.feasible:
        return -penalty * (outcome.delta_acc - outcome.epsilon) / outcome.epsilon
    compression = {
        "crossbar_constrained": outcome.crossbar_compression,
        "amc_flops": outcome.flops_compression,
        "amc_params": outcome.params_compression,
    }[name]
    return math.log(max(compression, 1.0))
