"""Running bests of a search: the best feasible policy seen so far and the episode counts.

RLlib clears per-iteration metrics after every ``train()``, so the best feasible
compression rate, its accuracy and its per-layer ratios are kept here across
iterations (and through checkpoints, via ``to_dict``/``from_dict``). Plain Python, no
Ray: the driver, the tests and the RLlib callback share it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from envs.result import EpisodeResult


def episode_record(info: dict[str, Any], episode_return: float) -> dict[str, Any]:
    """One episode's record (envs/result.py) as a plain dict, with the episode's return as its reward."""
    return {**EpisodeResult.from_info(info).info(), "reward": float(episode_return)}


def _better(candidate: dict[str, Any], best: dict[str, Any] | None) -> bool:
    """Higher CR wins; at equal CR, higher accuracy."""
    if best is None:
        return True
    key = (candidate["compression_rate"], candidate.get("accuracy", -math.inf))
    return key > (best["compression_rate"], best.get("accuracy", -math.inf))


FINALISTS_KEPT = 8  # feasible policies kept for the re-check on the whole search split


def rank(record: dict[str, Any]) -> tuple[float, float]:
    """How finalists are ordered: higher CR first, then higher accuracy."""
    return (record["compression_rate"], record.get("accuracy", -math.inf))


@dataclass
class RunningBests:
    """Counts, the best feasible episode and the best few distinct feasible policies so far.

    The best of many noisy evaluations is biased upwards (the winner's curse), so the
    finalists, not only the best, go to the re-check on the whole search split before one is
    fine-tuned (platform/search/finalists.py).
    """

    episodes: int = 0
    feasible_episodes: int = 0
    best: dict[str, Any] | None = None  # the best feasible episode record
    best_episode: int = 0  # its 1-based index in the search
    reward_max: float = -math.inf
    history_best_cr: list[float] = field(default_factory=list)  # best feasible CR after each iteration
    finalists: list[dict[str, Any]] = field(default_factory=list)  # distinct feasible records, best first

    def update(self, records: list[dict[str, Any]]) -> None:
        for record in records:
            self.episodes += 1
            self.reward_max = max(self.reward_max, record["reward"])
            if record["feasible"] and not record.get("reason"):
                self.feasible_episodes += 1
                if _better(record, self.best):
                    self.best, self.best_episode = record, self.episodes
                self._consider(record)
        self.history_best_cr.append(self.best_cr)

    def _consider(self, record: dict[str, Any]) -> None:
        """Keep the record among the finalists if its policy is new and ranks in the top few."""
        if any(f.get("ratios") == record.get("ratios") for f in self.finalists):
            return
        self.finalists = sorted([*self.finalists, record], key=rank, reverse=True)[:FINALISTS_KEPT]

    @property
    def best_cr(self) -> float:
        return float(self.best["compression_rate"]) if self.best else 0.0

    @property
    def feasible_fraction(self) -> float:
        return self.feasible_episodes / self.episodes if self.episodes else 0.0

    def metrics(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """What goes into the training result under ``auto_prune``: this iteration and the bests."""
        rewards = [r["reward"] for r in records]
        this_feasible = [r["feasible"] for r in records]
        return {
            "episodes": self.episodes,
            "episodes_this_iter": len(records),
            "reward_mean": sum(rewards) / len(rewards) if rewards else math.nan,
            "reward_max": max(rewards) if rewards else math.nan,
            "reward_max_so_far": self.reward_max,
            "feasible_fraction": self.feasible_fraction,
            "feasible_fraction_this_iter": sum(this_feasible) / len(records) if records else math.nan,
            "best_cr": self.best_cr,
            "best_accuracy": float(self.best["accuracy"]) if self.best else math.nan,
            "best_delta_acc": float(self.best["delta_acc"]) if self.best else math.nan,
            "best_reward": float(self.best["reward"]) if self.best else math.nan,
            "best_episode": self.best_episode,
            "best": dict(self.best, episode=self.best_episode) if self.best else None,
            "finalists": [{k: f[k] for k in ("ratios", "compression_rate", "accuracy", "delta_acc") if k in f}
                          for f in self.finalists],
            "eval_seconds_mean": _mean(records, "eval_seconds"),
            "episode_seconds_mean": _mean(records, "episode_seconds"),
            "records": records,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunningBests:
        return cls(**values)


def _mean(records: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in records if key in r]
    return sum(values) / len(values) if values else math.nan
