"""The Tune sweep: one trial per accuracy-loss constraint, started or resumed.

The trainable comes from a SearchPlan: the RLlib algorithm class itself
(``tune.Tuner("SAC")`` by name would import every RLlib algorithm) or a proposer method's
function trial. A trial stops after ``search.episodes`` episodes (a proposer may finish
sooner, once its search has converged); checkpoints every ``search.checkpoint_frequency``
iterations and at the end let ``Tuner.restore`` continue an interrupted sweep, where
finished trials stay finished.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from ray import tune

from platform.search.plan import SearchPlan
from platform.search.rllib_callbacks import RESULT_KEY
from platform.search.sweep_folders import trial_key

EPISODES_METRIC = "env_runners/num_episodes_lifetime"
# Tune's experiment folder inside the sweep folder. Tune stages its experiment files and syncs
# them back (a restore re-uploads what it downloaded), so our own files stay outside it.
TUNE_DIR = "tune"


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
    finalists: list[dict[str, Any]] = field(default_factory=list)  # best few distinct feasible policies, best first
    restarts: int = 0  # times Tune restarted the trial from its last checkpoint after it died
    fault: str | None = None  # the last failure it recovered from (first line)


def trial_name(trial) -> str:
    return trial_key(float(trial.config["env_config"]["epsilon"]))


def param_space(plan: SearchPlan, constraints: list[float]) -> dict[str, Any]:
    """The plan's param space with a grid over the constraint."""
    space = dict(plan.space)
    space["env_config"] = {**space["env_config"], "epsilon": tune.grid_search(list(constraints))}
    return space


def make_tuner(cfg: DictConfig, plan: SearchPlan, sweep_dir: Path, callbacks: list,
               max_concurrent: int, episodes: int | None = None) -> tune.Tuner:
    """episodes: where a trial stops (default search.episodes; fewer after a sensitivity probe)."""
    search = cfg.search
    run_config = tune.RunConfig(
        name=TUNE_DIR,
        storage_path=str(sweep_dir),
        stop={EPISODES_METRIC: search.episodes if episodes is None else episodes},
        checkpoint_config=tune.CheckpointConfig(
            checkpoint_frequency=0 if plan.checkpoints_itself else search.checkpoint_frequency,
            checkpoint_at_end=not plan.checkpoints_itself,
            num_to_keep=search.keep_checkpoints,
        ),
        failure_config=tune.FailureConfig(max_failures=search.max_trial_failures),
        callbacks=callbacks,
        verbose=0,
    )
    tune_config = tune.TuneConfig(
        max_concurrent_trials=search.max_concurrent_trials or max_concurrent,
        trial_name_creator=trial_name,
        trial_dirname_creator=trial_name,
        reuse_actors=False,
    )
    return tune.Tuner(plan.trainable, param_space=param_space(plan, search.constraints),
                      tune_config=tune_config, run_config=run_config)


class ResumeError(ValueError):
    """A sweep that cannot be continued as asked; the message says what to do instead."""


def restore_tuner(plan: SearchPlan, sweep_dir: Path, constraints: list[float]) -> tune.Tuner:
    """Continue an interrupted sweep: unfinished and errored trials resume from their checkpoints.

    The param space goes in again: Tune saved the env and callback classes in it as
    placeholders, and a trial that was not yet created when the sweep stopped needs them.
    """
    path = str(sweep_dir / TUNE_DIR)
    if not tune.Tuner.can_restore(path):
        raise FileNotFoundError(f"{path} holds no Tune experiment to resume")
    try:
        return tune.Tuner.restore(path, trainable=plan.trainable, resume_unfinished=True, resume_errored=True,
                                  param_space=param_space(plan, constraints))
    except ValueError as error:
        if "param_space" not in str(error):
            raise
        raise ResumeError(f"cannot resume {sweep_dir}: it was started with other config keys (a different version "
                         f"of the code, or other config groups), and Tune resumes only the same param space. "
                         f"Resume it with the version that started it, or launch without resume=true") from None


def outcomes(results: tune.ResultGrid, episodes: int, constraints: list[float],
             probe_episodes: int = 0) -> list[TrialOutcome]:
    """One TrialOutcome per constraint, in constraint order; unstarted trials count as unfinished.

    `episodes` is the whole budget; a trial's own episodes count with the `probe_episodes` that
    the sensitivity probe spent before it (platform/run.py).

    Read from Tune's Trial objects: a trial interrupted before its first result has no
    ``Result.config`` (None), but its Trial always has its config and status. A sweep
    interrupted before Tune created a constraint's trial has no Trial for it at all.
    """
    found = []
    trials = results._experiment_analysis.trials
    for trial, result in zip(trials, results, strict=True):
        metrics = trial.last_result or {}
        ours = metrics.get(RESULT_KEY, {})
        epsilon = float(trial.config["env_config"]["epsilon"])
        lifetime = int(metrics.get("env_runners", {}).get("num_episodes_lifetime", 0) or 0)
        done = max(int(ours.get("episodes", 0)), lifetime) + probe_episodes
        error = result.error
        found.append(TrialOutcome(
            epsilon=epsilon,
            key=trial_key(epsilon),
            finished=(error is None and trial.status == "TERMINATED"
                      and (done >= episodes or bool(ours.get("search_complete")))),
            error=None if error is None else f"{type(error).__name__}: {error}",
            episodes=done,
            wall_time_s=float(metrics.get("time_total_s", math.nan)),
            best=ours.get("best"),
            finalists=list(ours.get("finalists") or ([ours["best"]] if ours.get("best") else [])),
            feasible_fraction=float(ours.get("feasible_fraction", 0.0)),
            trial_path=str(trial.path),
            restarts=int(getattr(trial, "num_failures", 0) or 0),
            fault=last_failure(trial),
        ))
    seen = {o.epsilon for o in found}
    for epsilon in constraints:
        if float(epsilon) not in seen:
            found.append(TrialOutcome(epsilon=float(epsilon), key=trial_key(float(epsilon)), finished=False,
                                      error=None, episodes=0, wall_time_s=math.nan, best=None,
                                      feasible_fraction=0.0, trial_path=""))
    return sorted(found, key=lambda o: o.epsilon)


def last_failure(trial) -> str | None:
    """The first line of the last error a trial recorded (Tune keeps it in error.txt), or None."""
    path = getattr(trial, "error_file", None)
    if not path or not Path(path).is_file():
        return None
    lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def quiet_tune() -> None:
    """Tune's TensorBoard logger warns on every list in a result, and its snapshot warning fires on
    small sweeps: progress comes from platform.search.tune_callbacks instead (JSON results stay on)."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
