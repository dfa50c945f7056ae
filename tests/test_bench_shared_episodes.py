"""bench/shared_episodes.py picks, from re-checked policies, what a launch would fine-tune."""

from __future__ import annotations

from bench.shared_episodes import best_rechecked, describe


def test_the_best_rechecked_finalist_is_the_highest_cr_still_feasible_on_the_whole_split():
    candidates = [{"ratios": [0.5]}, {"ratios": [0.4]}, {"ratios": [0.3]}]
    rechecked = {(0.5,): {"compression_rate": 2.0, "accuracy": 0.8, "delta_acc": 0.02, "feasible": False},
                 (0.4,): {"compression_rate": 1.8, "accuracy": 0.89, "delta_acc": 0.009, "feasible": True},
                 (0.3,): {"compression_rate": 1.5, "accuracy": 0.9, "delta_acc": 0.0, "feasible": True}}
    assert describe(best_rechecked(candidates, rechecked)) == "CR 1.800 (Δacc +0.0090)"
    assert describe(best_rechecked(candidates[:1], rechecked)) == "none feasible"
