"""Relabelling: one evaluated policy, scored again under other constraints without evaluating it."""

from __future__ import annotations

import math

import pytest

from envs.pruning_env import PruningEnv
from envs.relabel import relabelled
from tests.test_envs_pruning_env import env_config, run_episode
from tests.test_platform_parts import record


def loss_record(delta_acc: float, cr: float = 2.0, **fields) -> dict:
    return {**record(cr, 0.9 - delta_acc, True), "delta_acc": delta_acc, **fields}


@pytest.mark.parametrize(("epsilon", "feasible", "reward"), [
    (0.02, True, math.log(2.0)),                      # within: log CR
    (0.015, True, math.log(2.0)),                     # exactly at the constraint
    (0.01, False, -1.0 * math.tanh(0.005 / 0.01)),    # over by 0.5 epsilon: the bounded penalty
    (0.001, False, -1.0 * math.tanh(0.014 / 0.001)),
])
def test_one_policy_gets_the_crossbar_reward_of_each_constraint(epsilon, feasible, reward):
    scored = relabelled(loss_record(0.015), epsilon, "crossbar_constrained", penalty=1.0)
    assert scored["feasible"] is feasible and scored["reward"] == pytest.approx(reward)


@pytest.mark.parametrize("epsilon", [0.005, 0.01, 0.05])
def test_one_policy_gets_the_budget_formulations_accuracy_reward_of_each_constraint(epsilon):
    scored = relabelled(loss_record(0.008), epsilon, "accuracy", penalty=1.0)
    assert scored["reward"] == pytest.approx(-math.asinh(0.008 / epsilon))
    assert scored["feasible"] is (0.008 <= epsilon)


def test_a_diverged_policy_is_infeasible_with_the_worst_reward_under_every_constraint():
    for epsilon in (0.01, 0.5):
        scored = relabelled(loss_record(0.0, reason="nan loss"), epsilon, "crossbar_constrained", penalty=2.0)
        assert scored["feasible"] is False and scored["reward"] == -2.0


def test_an_early_stopped_policy_fails_stricter_constraints_and_is_unknown_under_looser_ones():
    stopped = loss_record(0.03, stopped_early=True)  # a lower bound on its loss
    assert relabelled(stopped, 0.05, "crossbar_constrained", 1.0) is None
    stricter = relabelled(stopped, 0.01, "crossbar_constrained", 1.0)
    assert stricter["feasible"] is False and stricter["reward"] == pytest.approx(-math.tanh(2.0))


@pytest.mark.parametrize("formulation", ["constraint", "budget"])
def test_relabelling_an_episode_equals_evaluating_it_under_the_other_constraint(baseline_cache, formulation):
    """The env's own episode at epsilon 0.05, relabelled to 0.002 (where it fails) and 0.2, matches the env
    run at each (ratio 0.8 loses 0.35 points of this small CNN's accuracy)."""
    env = {"formulation": formulation, "early_stop": False}
    if formulation == "budget":
        env.update(reward="crossbar_constrained", budget_start_cr=1.5, budget_step=0.0)
    evaluated = {}
    for epsilon in (0.05, 0.002, 0.2):
        reward, info = run_episode(PruningEnv(env_config(baseline_cache, epsilon=epsilon, **env)), 0.8)
        evaluated[epsilon] = (reward, info)
    _, own = evaluated[0.05]
    scoring = "accuracy" if formulation == "budget" else "crossbar_constrained"
    for epsilon, (reward, info) in evaluated.items():
        scored = relabelled(own, epsilon, scoring, penalty=1.0)
        assert scored["reward"] == pytest.approx(reward) and scored["feasible"] == info["feasible"]
        assert scored["ratios"] == info["ratios"]
    assert not evaluated[0.002][1]["feasible"] and evaluated[0.2][1]["feasible"]
