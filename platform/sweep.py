"""The Tune sweep: one RLlib trial per accuracy-loss constraint, started or resumed.

The trainable is the algorithm class itself (``config.algo_class``: ``tune.Tuner("SAC")``
by name would import every RLlib algorithm). A trial stops after ``search.episodes``
episodes; checkpoints every ``search.checkpoint_frequency`` iterations and at the end
let ``Tuner.restore`` continue an interrupted sweep, where finished trials stay finished.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from ray import tune
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

from platform.callbacks import RESULT_KEY
from platform.sweep_dirs import trial_key

EPISODES_METRIC = "env_runners/num_episodes_lifetime"


@dataclass
class TrialOutcome:
    """What the search of one constraint produced (the last result of its trial)."""

    epsilon: float
    key: str
    finished: bool  # reached search.episodes without error
    error: str | None
    episodes: int
    wall_time_s: float
    best: dict[str, Any] | None  # the best feasible episode's record, with its ratios
    feasible_fraction: float
    trial_path: str


def trial_name(trial) -> str:
    return trial_key(float(trial.config["env_config"]["epsilon"]))


def param_space(config: AlgorithmConfig, constraints: list[float]) -> dict[str, Any]:
    """The algorithm's config as Tune's param space, with a grid over the constraint."""
    space = config.to_dict()
    space["env_config"] = {**space["env_config"], "epsilon": tune.grid_search(list(constraints))}
    return space


def make_tuner(cfg: DictConfig, config: AlgorithmConfig, sweep_dir: Path, callbacks: list,
               max_concurrent: int) -> tune.Tuner:
    search = cfg.search
    run_config = tune.RunConfig(
        name=sweep_dir.name,
        storage_path=str(sweep_dir.parent),
        stop={EPISODES_METRIC: search.episodes},
        checkpoint_config=tune.CheckpointConfig(
            checkpoint_frequency=search.checkpoint_frequency,
            checkpoint_at_end=True,
            num_to_keep=search.keep_checkpoints,
        ),
        failure_config=tune.FailureConfig(max_failures=0),
        callbacks=callbacks,
        verbose=0,
    )
    tune_config = tune.TuneConfig(
        max_concurrent_trials=search.max_concurrent_trials or max_concurrent,
        trial_name_creator=trial_name,
        trial_dirname_creator=trial_name,
        reuse_actors=False,
    )
    return tune.Tuner(config.algo_class, param_space=param_space(config, search.constraints),
                      tune_config=tune_config, run_config=run_config)


def restore_tuner(config: AlgorithmConfig, sweep_dir: Path) -> tune.Tuner:
    """Continue an interrupted sweep: unfinished and errored trials resume from their checkpoints."""
    if not tune.Tuner.can_restore(str(sweep_dir)):
        raise FileNotFoundError(f"{sweep_dir} holds no Tune experiment to resume")
    return tune.Tuner.restore(str(sweep_dir), trainable=config.algo_class, resume_unfinished=True,
                              resume_errored=True)


def outcomes(results: tune.ResultGrid, episodes: int) -> list[TrialOutcome]:
    """One TrialOutcome per trial, in constraint order."""
    found = []
    for result in results:
        metrics = result.metrics or {}
        ours = metrics.get(RESULT_KEY, {})
        epsilon = float(result.config["env_config"]["epsilon"])
        done = int(ours.get("episodes", 0))
        lifetime = int(metrics.get("env_runners", {}).get("num_episodes_lifetime", done) or done)
        best = ours.get("best")
        found.append(TrialOutcome(
            epsilon=epsilon,
            key=trial_key(epsilon),
            finished=result.error is None and max(done, lifetime) >= episodes,
            error=None if result.error is None else f"{type(result.error).__name__}: {result.error}",
            episodes=max(done, lifetime),
            wall_time_s=float(metrics.get("time_total_s", math.nan)),
            best=best,
            feasible_fraction=float(ours.get("feasible_fraction", 0.0)),
            trial_path=str(result.path),
        ))
    return sorted(found, key=lambda o: o.epsilon)
