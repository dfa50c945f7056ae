"""Rewards: log CR when feasible, a bounded penalty when not, whatever the outcome."""

import math

import pytest

from envs.rewards import REWARDS, EpisodeOutcome, accuracy_reward, compute_reward, worst_reward

NAN, INF = math.nan, math.inf


def outcome(delta: float, cr: float = 2.0, epsilon: float = 0.01) -> EpisodeOutcome:
    return EpisodeOutcome(delta, epsilon, cr, cr, cr, cr, cr)


@pytest.mark.parametrize(("name", "gain"), [("area_efficiency", 1.6), ("energy_efficiency", 1.9)])
def test_the_hardware_efficiency_rewards_pay_the_log_of_their_gain(name, gain):
    feasible = EpisodeOutcome(0.0, 0.01, 2.0, 3.0, 3.0, area_efficiency_gain=1.6, energy_efficiency_gain=1.9)
    assert compute_reward(name, feasible, 1.0) == pytest.approx(math.log(gain))


def test_a_feasible_policy_earns_the_log_of_its_compression():
    assert compute_reward("crossbar_constrained", outcome(0.005, cr=2.0), 1.0) == pytest.approx(math.log(2.0))


def test_the_penalty_is_tanh_of_the_excess_in_epsilons():
    # excess 0.01 at epsilon 0.01: -1 * tanh(1) = -0.7616
    assert compute_reward("crossbar_constrained", outcome(0.02), 1.0) == pytest.approx(-math.tanh(1.0))


def test_a_less_infeasible_policy_earns_more():
    rewards = [compute_reward("crossbar_constrained", outcome(d), 1.0) for d in (0.011, 0.015, 0.03, 0.1)]
    assert rewards == sorted(rewards, reverse=True) and all(r < 0 for r in rewards)


@pytest.mark.parametrize("name", [name for name in REWARDS if name != "accuracy"])
@pytest.mark.parametrize("delta", [-0.5, 0.0, 0.01, 0.0101, 0.5, 0.9, 1.0, NAN, INF, -INF])
@pytest.mark.parametrize("cr", [1.0, 3.0, 1e6, NAN, INF])
@pytest.mark.parametrize("epsilon", [0.005, 0.01, 0.05])
def test_the_reward_is_bounded_for_every_outcome_including_nan_and_collapse(name, delta, cr, epsilon):
    penalty = 1.0
    reward = compute_reward(name, outcome(delta, cr, epsilon), penalty)
    feasible = delta <= epsilon
    if feasible and math.isfinite(cr):
        assert 0.0 <= reward == pytest.approx(math.log(max(cr, 1.0)))
    elif feasible:  # a NaN or infinite compression earns nothing rather than an unbounded reward
        assert reward == 0.0
    else:
        assert -penalty <= reward <= 0.0


def test_a_collapsed_network_costs_at_most_the_penalty():
    # A collapse from 90% to 10% at epsilon 1% used to cost -2 * 79 = -158.
    assert compute_reward("crossbar_constrained", outcome(0.8), 1.0) == pytest.approx(-1.0, abs=1e-9)


def test_the_budget_reward_is_minus_asinh_of_the_loss_in_epsilons_whatever_the_compression():
    # delta 0.01 at epsilon 0.01: -asinh(1) = -0.8814; CR plays no part
    for cr in (1.0, 3.0, NAN):
        assert compute_reward("accuracy", outcome(0.01, cr), 1.0) == pytest.approx(-0.881373587)
    assert compute_reward("accuracy", outcome(0.0), 1.0) == 0.0
    assert compute_reward("accuracy", outcome(-0.005), 1.0) == pytest.approx(math.asinh(0.5))  # a gain pays


def test_the_budget_reward_ranks_every_loss_and_stays_bounded():
    losses = [-INF, -0.02, 0.0, 0.004, 0.01, 0.03, 0.2, 0.9, INF]
    rewards = [accuracy_reward(d, 0.01) for d in losses]
    assert rewards == sorted(rewards, reverse=True)
    assert rewards[0] == pytest.approx(math.asinh(100)) and rewards[-1] == pytest.approx(-math.asinh(100))
    assert accuracy_reward(NAN, 0.01) == worst_reward("accuracy", 0.01, 1.0) == pytest.approx(-math.asinh(100))


def test_a_diverged_episode_earns_each_rewards_lowest_value():
    assert worst_reward("crossbar_constrained", 0.01, 1.0) == -1.0
    assert worst_reward("accuracy", 0.02, 1.0) == pytest.approx(-math.asinh(50))
