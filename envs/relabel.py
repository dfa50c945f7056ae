"""An evaluated policy scored again under another accuracy-loss constraint, without evaluating it again.

A record (envs/result.py) carries everything its reward was computed from: the accuracy loss and
every compression. So one evaluation implies a reward, and a verdict, under every epsilon of a
sweep, and the trials of a sweep can share their episodes (platform/search/shared_episodes.py).
Two kinds of record need care. A diverged one (`reason`) is infeasible under every epsilon, with
the worst reward. One stopped early was only measured far enough to fail its own epsilon: its
accuracy is the best the whole set could still have reached, so its loss is a lower bound. Under
an epsilon that bound fails too, it is scored as the env scores it under its own; under an
epsilon the bound would pass, its verdict is unknown and it is not relabelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envs.rewards import EpisodeOutcome, compute_reward, worst_reward


def relabelled(record: Mapping[str, Any], epsilon: float, scoring_reward: str,
               penalty: float) -> dict[str, Any] | None:
    """The record as an episode scored under `epsilon` would have reported it, its `feasible` and
    `reward` recomputed by envs/rewards.py (`scoring_reward`: EnvSettings.scoring_reward); None for
    an early-stopped record whose verdict under `epsilon` its partial measurement cannot tell."""
    outcome = EpisodeOutcome(record["delta_acc"], epsilon, record["compression_rate"], record["flops_compression"],
                             record["params_compression"], record["area_efficiency_gain"],
                             record["energy_efficiency_gain"])
    if record.get("reason"):
        return {**record, "feasible": False, "reward": float(worst_reward(scoring_reward, epsilon, penalty))}
    if record.get("stopped_early") and outcome.feasible:
        return None
    return {**record, "feasible": outcome.feasible, "reward": float(compute_reward(scoring_reward, outcome, penalty))}
