"""env.confirm_best: a prefix's new best is scored again on the whole search split, exactly."""

from __future__ import annotations

import dataclasses

import pytest

from envs.confirmation import BestConfirmation
from envs.pruning_env import PruningEnv
from envs.settings import EnvSettings
from tests.test_envs_pruning_env import env_config, run_episode


@pytest.fixture
def cache_dir(baseline_cache):
    return baseline_cache


def test_a_confirmed_record_is_the_policys_whole_split_score(cache_dir):
    prefix = PruningEnv(env_config(cache_dir, search_images=60, confirm_best=True))
    whole = PruningEnv(env_config(cache_dir, early_stop=False))
    for ratio in (0.0, 0.3):
        _, expected = run_episode(whole, ratio)
        scored = prefix.evaluator.evaluate_policy([ratio] * prefix.space.size)
        assert scored.feasible and not scored.confirmed
        confirmed = prefix.evaluator.confirm(scored)
        assert confirmed.confirmed and confirmed.ratios == expected["ratios"]
        assert (confirmed.accuracy, confirmed.baseline_accuracy) == (expected["accuracy"],
                                                                     expected["baseline_accuracy"])
        assert (confirmed.feasible, confirmed.reward) == (expected["feasible"], expected["reward"])
        assert confirmed.baseline_accuracy != scored.baseline_accuracy  # 300 images against 60


def test_only_a_new_best_is_confirmed_and_the_best_only_rises(cache_dir):
    env = PruningEnv(env_config(cache_dir, search_images=60, confirm_best=True))
    _, first = run_episode(env, 0.3)
    assert first["confirmed"] and first["feasible"]
    assert env.confirmation.best_cr == first["compression_rate"] > 1.0
    _, same = run_episode(env, 0.3)  # not above the confirmed best: its prefix score stands
    assert not same["confirmed"] and same["baseline_accuracy"] != first["baseline_accuracy"]
    _, milder = run_episode(env, 0.1)
    assert not milder["confirmed"]
    assert env.confirmation.confirmations == 1 and env.confirmation.best_cr == first["compression_rate"]


def test_confirming_is_pure_and_early_stop_does_not_change_a_feasible_verdict(cache_dir):
    stopping = PruningEnv(env_config(cache_dir, search_images=60, confirm_best=True)).evaluator
    exact = PruningEnv(env_config(cache_dir, search_images=60, confirm_best=True, early_stop=False)).evaluator
    policy = [0.3] * stopping.space.size
    once = stopping.confirm(stopping.evaluate_policy(policy))
    stopping.forget_scores()
    twice = stopping.confirm(stopping.evaluate_policy(policy))
    without = exact.confirm(exact.evaluate_policy(policy))
    strip = {"eval_seconds": 0.0, "episode_seconds": 0.0}
    assert dataclasses.replace(once, **strip) == dataclasses.replace(twice, **strip)
    assert once.feasible and (once.accuracy, once.stopped_early) == (without.accuracy, False)


def test_a_whole_split_search_confirms_at_no_cost(cache_dir):
    env = PruningEnv(env_config(cache_dir, confirm_best=True))
    scored = env.evaluator.evaluate_policy([0.3] * env.space.size)
    confirmed = env.evaluator.confirm(scored)
    assert confirmed.confirmed and (confirmed.accuracy, confirmed.delta_acc) == (scored.accuracy, scored.delta_acc)


def test_only_a_feasible_fully_evaluated_record_can_be_confirmed(cache_dir):
    env = PruningEnv(env_config(cache_dir, search_images=60, confirm_best=True))
    scored = env.evaluator.evaluate_policy([0.3] * env.space.size)
    with pytest.raises(ValueError, match="only a feasible"):
        env.evaluator.confirm(dataclasses.replace(scored, feasible=False))


class _Evaluator:
    """Returns a fixed whole-split verdict: the review rule alone is under test."""

    def __init__(self, feasible: bool) -> None:
        self.feasible, self.calls = feasible, 0

    def confirm(self, result):
        self.calls += 1
        return dataclasses.replace(result, feasible=self.feasible, confirmed=True, reward=-1.0)


def _record(cr: float, feasible: bool = True):
    from envs.result import EpisodeResult
    return EpisodeResult(compression_rate=cr, packing_gain=1.0, pruning_gain=cr, crossbars=1, dense_crossbars=2,
                         energy_nj=1.0, area_mm2=1.0, area_efficiency_gain=1.0, energy_efficiency_gain=1.0,
                         reward=0.5, accuracy=0.9, baseline_accuracy=0.9, delta_acc=0.0, feasible=feasible,
                         flops_compression=1.0, params_compression=1.0, weight_sparsity=0.5, ratios=[0.5],
                         layer_names=["a"], on_hardware=False, stopped_early=False, eval_seconds=0.0,
                         episode_seconds=0.0)


def test_a_failed_confirmation_replaces_the_record_and_leaves_the_best():
    evaluator = _Evaluator(feasible=False)
    review = BestConfirmation(evaluator, enabled=True)
    kept = review.review(_record(2.0))
    assert (kept.feasible, kept.confirmed, kept.reward) == (False, True, -1.0)
    assert review.best_cr == 0.0
    assert not review.review(_record(3.0, feasible=False)).confirmed  # infeasible on the prefix: not sent
    assert evaluator.calls == 1


def test_the_confirmed_best_comes_back_from_replayed_records():
    review = BestConfirmation(_Evaluator(feasible=True), enabled=True)
    for record in (_record(2.0), dataclasses.replace(_record(2.5), confirmed=True),
                   dataclasses.replace(_record(3.0, feasible=False), confirmed=True)):
        review.replay(record.info())
    assert review.best_cr == 2.5
    assert not review.review(_record(2.4)).confirmed and review.review(_record(2.6)).confirmed


def test_switched_off_nothing_is_confirmed():
    evaluator = _Evaluator(feasible=True)
    assert not BestConfirmation(evaluator, enabled=False).review(_record(5.0)).confirmed
    assert evaluator.calls == 0


@pytest.mark.parametrize(("env", "message"), [
    ({"confirm_best": "yes"}, "env.confirm_best must be true or false"),
    ({"confirm_best": True, "eval_on_hardware": False, "variation": {"stuck_at_zero": 0.001}},
     "env.confirm_best re-scores"),
])
def test_bad_confirmation_settings_name_the_setting(env, message):
    with pytest.raises(ValueError, match=message):
        EnvSettings.from_config({"epsilon": 0.01, "env": env})
