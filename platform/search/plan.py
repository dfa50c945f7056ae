"""What Tune runs for each constraint: an RLlib algorithm, or a proposer method's function trial.

Both kinds report the same result layout (platform.search.rllib_callbacks.RESULT_KEY), so the sweep,
its callbacks, finalization and the summary do not care which one ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from platform.config import RL_METHODS, search_seed
from platform.search.agents import EpisodeShape, action_prior, build_algo_config, trial_resources


@dataclass(frozen=True)
class SearchPlan:
    trainable: Any  # the algorithm class, or the wrapped function trainable
    space: dict[str, Any]  # Tune's param space, without the grid over the constraint
    request: dict[str, float]  # what one trial asks the cluster for
    checkpoints_itself: bool = False  # a function trial checkpoints with every report; Tune must not ask


def rl_plan(cfg: DictConfig, env_class: type, env_config: dict, shape: EpisodeShape) -> SearchPlan:
    env_config = {**env_config, "action_prior": action_prior(cfg)}
    config = build_algo_config(cfg, env_class, env_config, shape)
    return SearchPlan(config.algo_class, config.to_dict(), trial_resources(config))


def proposer_plan(cfg: DictConfig, env_config: dict) -> SearchPlan:
    """One process per constraint evaluating with env.torch_threads threads, like one env runner."""
    from ray import tune

    from platform.search.methods.trial import proposer_trial

    search = cfg.search
    cpus = float(cfg.env.torch_threads)
    gpus = float(cfg.ray.num_gpus_per_env_runner)  # a proposer trial evaluates like one env runner
    options = {
        "method": search.method, "episodes": int(search.episodes), "seed": search_seed(cfg),
        "report_every": int(cfg.agent.episodes_per_batch), "probe_ratio": float(search.probe_ratio),
        "bisection_tolerance": float(search.bisection_tolerance),
        "tpe_startup_episodes": int(search.tpe_startup_episodes),
    }
    return SearchPlan(tune.with_resources(proposer_trial, {"cpu": cpus, "gpu": gpus}),
                      {"env_config": env_config, "options": options}, {"CPU": cpus, "GPU": gpus},
                      checkpoints_itself=True)


def search_plan(cfg: DictConfig, env_class: type, env_config: dict, shape: EpisodeShape) -> SearchPlan:
    if cfg.search.method in RL_METHODS:
        return rl_plan(cfg, env_class, env_config, shape)
    return proposer_plan(cfg, env_config)
