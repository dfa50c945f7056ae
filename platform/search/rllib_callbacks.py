"""The RLlib callback that carries episode outcomes out of the env runners.

Each env runner logs its finished episodes' terminal info as an ``item_series`` (one
record per episode, cleared every iteration). ``on_train_result`` runs on the algorithm
before Tune sees the result: it folds the iteration's records into running bests and
writes them under ``result["auto_prune"]``, so stoppers, progress output and MLflow all
read the same numbers. The bests also ride in the algorithm's metrics logger as an
``item``, which is part of every checkpoint, so a restored trial keeps them.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.callbacks.callbacks import RLlibCallback

from platform.search.bests import RunningBests, episode_record

RECORDS_KEY = "auto_prune_episode_records"
STATE_KEY = "auto_prune_state"
RESULT_KEY = "auto_prune"


class PruningCallbacks(RLlibCallback):
    """Episode records out of the env runners; running bests on the algorithm."""

    def __init__(self) -> None:
        super().__init__()
        self.bests = RunningBests()

    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:
        info = episode.get_infos(-1)
        if metrics_logger is None or not info:
            return
        record = episode_record(info, episode.get_return())
        metrics_logger.log_value(RECORDS_KEY, record, reduce="item_series")

    def on_train_result(self, *, algorithm, metrics_logger=None, result: dict, **kwargs) -> None:
        records = list(result.get("env_runners", {}).pop(RECORDS_KEY, None) or [])
        result.pop(STATE_KEY, None)
        self.bests.update(records)
        result[RESULT_KEY] = self.bests.metrics(records)
        if metrics_logger is not None:
            metrics_logger.log_value(STATE_KEY, self.bests.to_dict(), reduce="item")

    def on_checkpoint_loaded(self, *, algorithm, **kwargs) -> None:
        state = _peek(algorithm.metrics, STATE_KEY)
        if state:
            self.bests = RunningBests.from_dict(state)


def _peek(metrics: Any, key: str) -> dict | None:
    try:
        return metrics.peek(key, default=None)
    except (KeyError, ValueError):
        return None
