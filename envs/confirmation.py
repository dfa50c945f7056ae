"""env.confirm_best: a search's new best counts only once the whole search split confirms it.

Episodes are scored on a prefix of the search split (env.search_images) because evaluation is
the search's cost. But the best of hundreds of noisy prefix scores is biased upwards: on
ResNet-50 at 320 episodes the best ten prefix-feasible policies of every method lost more than
ε on the whole split (README, "ResNet-50 at 320 episodes"), and a searcher that believes them
keeps pushing where nothing holds (the budget staircase raises its target, TPE models the lucky
region as good).

So each searcher (an RL env runner, a proposer) keeps the highest CR it has confirmed. An
episode that is feasible on the prefix and beats it is scored again on the whole split
(EpisodeEvaluator.confirm: only the images past the prefix, stopped early like any episode),
and that score becomes the episode's record: its reward, its feasibility for the staircase and
the finalists. Episodes at or below the confirmed CR keep their prefix score: they cannot
become the search's result, and confirming them would cost evaluation for nothing.

Each score is a pure function of the policy (its prefix score, its whole-split score); which
one a record holds depends on the searcher's history, as the budget staircase's target does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envs.episode import EpisodeEvaluator
from envs.result import EpisodeResult


class BestConfirmation:
    """One searcher's confirmed best CR, and the rule that sends a new prefix best to the whole split."""

    def __init__(self, evaluator: EpisodeEvaluator, enabled: bool) -> None:
        self.evaluator = evaluator
        self.enabled = enabled
        self.best_cr = 0.0  # the highest CR confirmed feasible on the whole split
        self.confirmations = 0

    def review(self, result: EpisodeResult) -> EpisodeResult:
        """The record the search keeps for `result`: confirmed on the whole split when it is a new best."""
        if not (self.enabled and result.feasible and result.compression_rate > self.best_cr):
            return result
        confirmed = self.evaluator.confirm(result)
        self.confirmations += 1
        self.replay(confirmed.info())
        return confirmed

    def replay(self, record: Mapping[str, Any]) -> None:
        """Rebuild the state from a record already reviewed (a resumed proposer's history)."""
        if record.get("confirmed") and record["feasible"]:
            self.best_cr = max(self.best_cr, float(record["compression_rate"]))
