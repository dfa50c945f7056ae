"""Tune callbacks of the driver: per-iteration history, MLflow metrics and progress lines.

Tune pickles its callbacks into the sweep's ``tuner.pkl`` and brings them back on
``Tuner.restore``, so these hold only plain settings and open their MLflow client
lazily; the run ids come from the sweep folder's ``mlflow.json``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from envs.workload.training import eta
from platform.reports.tracking import Tracker, TrackingSettings
from platform.search.rllib_callbacks import RESULT_KEY
from platform.search.sweep_folders import append_history, trial_key

# result["auto_prune"] keys logged to MLflow each iteration (x-axis: training iteration).
METRIC_KEYS = ("reward_mean", "reward_max", "best_cr", "best_accuracy", "best_delta_acc", "feasible_fraction",
               "feasible_fraction_this_iter", "episodes", "eval_seconds_mean", "episode_seconds_mean")


def trial_epsilon(trial) -> float:
    return float(trial.config["env_config"]["epsilon"])


def iteration_line(result: dict[str, Any]) -> dict[str, Any]:
    """What one iteration leaves in history.jsonl: RLlib's counters and our episode records."""
    ours = dict(result.get(RESULT_KEY, {}))
    return {
        "iteration": int(result["training_iteration"]),
        "time_total_s": float(result.get("time_total_s", 0.0)),
        **ours,
    }


class HistoryAndTrackingCallback(Callback):
    """Appends each result to the trial's history and logs its metrics to the child run."""

    def __init__(self, sweep_dir: str, settings: TrackingSettings, params: dict[str, str],
                 tags: dict[str, str]) -> None:
        self.sweep_dir, self.settings, self.params, self.tags = sweep_dir, settings, params, tags
        self._tracker: Tracker | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tracker": None}

    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:
            self._tracker = Tracker(self.settings, Path(self.sweep_dir)).load()
        return self._tracker

    def _child(self, trial) -> str | None:
        epsilon = trial_epsilon(trial)
        return self.tracker.child(trial_key(epsilon), {**self.params, "epsilon": str(epsilon)},
                                  {**self.tags, "epsilon": str(epsilon), "trial_id": trial.trial_id})

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self._child(trial)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        line = iteration_line(result)
        append_history(Path(self.sweep_dir), trial_key(trial_epsilon(trial)), line)
        metrics = {k: line[k] for k in METRIC_KEYS if k in line}
        metrics["wall_time_s"] = line["time_total_s"]
        self.tracker.log_metrics(self._child(trial), metrics, step=line["iteration"])

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self.tracker.end(self._child(trial), status="FAILED")


class ProgressCallback(Callback):
    """One line per iteration and per finished trial, instead of Tune's wide status tables."""

    def __init__(self, episodes: int, stream=None) -> None:
        self.episodes = episodes
        self.stream = stream
        self._start = time.time()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._start = time.time()

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self._print(f"[{trial_key(trial_epsilon(trial))}] started ({trial.trial_id})")

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        ours = result.get(RESULT_KEY, {})
        best = ours.get("best_cr", 0.0)
        acc = ours.get("best_accuracy", math.nan)
        episodes = ours.get("episodes", 0)
        progress = eta(episodes, self.episodes, result.get("time_total_s", 0.0))
        self._print(
            f"[{trial_key(trial_epsilon(trial))}] iter {result['training_iteration']:>3}  "
            f"episodes {episodes:>4}/{self.episodes}  "
            f"reward mean {ours.get('reward_mean', math.nan):+.3f} "
            f"max {ours.get('reward_max', math.nan):+.3f}  "
            f"feasible {100 * ours.get('feasible_fraction', 0.0):5.1f}%  "
            f"best CR {best:.3f} (acc {acc:.4f})  trial {progress} "
            f"[{time.time() - self._start:.0f}s since launch]")

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._print(f"[{trial_key(trial_epsilon(trial))}] search finished")

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._print(f"[{trial_key(trial_epsilon(trial))}] FAILED: see {trial.local_path}")
