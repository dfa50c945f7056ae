"""The budget formulation: AMC's action wall over crossbar breakpoints, and the staircase that sets the budget."""

from __future__ import annotations

import numpy as np
import pytest

from envs.formulation import BudgetEpisodes, BudgetStaircase, ConstraintEpisodes, CrossbarBudget, episode_formulation
from envs.pruning_env import PruningEnv
from envs.search_space import SearchSpace
from envs.settings import EnvSettings
from mapping.breakpoints import LayerBreakpoints
from tests.test_envs_pruning_env import env_config


def hand_space() -> SearchSpace:
    """Three layers of 8 rows: A (4 crossbars dense, 3 after 2 rows, 2 after 4), B (2, then 1 after 3 rows),
    C (1 crossbar, cannot gain: not searched). Dense 7, least 2 + 1 + 1 = 4, so the largest CR is 7/4."""
    a = LayerBreakpoints("A", 8, np.array([4, 4, 3, 3, 2]), np.array([0, 2, 4]))
    b = LayerBreakpoints("B", 8, np.array([2, 2, 2, 1, 1]), np.array([0, 3]))
    c = LayerBreakpoints("C", 8, np.array([1, 1, 1, 1, 1]), np.array([0]))
    return SearchSpace(("A", "B", "C"), (0, 1), (a, b, c), pmax=0.5, snapping=True)


def test_the_budget_counts_dense_least_and_a_target_by_hand():
    wall = CrossbarBudget(hand_space())
    assert (wall.dense, wall.least, wall.start()) == (7, 4, 1)
    assert wall.max_cr == pytest.approx(1.75)
    assert wall.crossbars_for(1.4) == 5  # floor(7 / 1.4)
    assert wall.crossbars_for(1.75) == 4  # the largest CR's budget is the least count itself


def test_the_wall_raises_each_ratio_just_enough_for_the_layers_to_come():
    walk = BudgetEpisodes(hand_space(), start_cr=1.4, round_episodes=1, step=0.2)
    # A may keep 5 - 1 (C) - 1 (B at its least) = 3: ratio 0 (4 crossbars) rises to 2/8 rows (3 crossbars);
    # then B may keep 5 - 1 - 3 = 1: ratio 0 rises to 3/8 (1 crossbar). 1 + 3 + 1 = 5 = the budget.
    assert walk.apply([0.0, 0.0]) == [0.25, 0.375]
    # A at pmax keeps 2, which leaves B its 2: nothing is raised beyond what the budget needs.
    assert walk.apply([0.5, 0.0]) == [0.5, 0.0]


@pytest.mark.parametrize("target", [1.0, 1.2, 1.4, 1.6, 1.75])
def test_every_policy_meets_its_budget_and_lands_on_a_breakpoint(target):
    space = hand_space()
    walk = BudgetEpisodes(space, start_cr=1.5, round_episodes=1000, step=0.2)
    walk.staircase.target_cr = target
    rng = np.random.default_rng(0)
    vectors = [[0.0, 0.0], [0.5, 0.5], [0.9, -1.0], *rng.uniform(-0.2, 1.0, (50, 2)).tolist()]
    for vector in vectors:
        walled = walk.apply(vector)
        full = [*walled, 0.0]
        assert walk.wall.kept(full) <= walk.wall.crossbars_for(target)
        for layer, ratio in zip(space.searchable, walled, strict=True):
            points = space.breakpoints[layer]
            assert 0.0 <= ratio <= space.pmax and ratio in points.ratios  # never past its breakpoints


def test_a_budget_no_policy_can_meet_gets_a_clear_error():
    with pytest.raises(ValueError, match=r"target CR of 1.800 keeps at most 3 of 7 crossbars.*fewer than 4"):
        CrossbarBudget(hand_space()).crossbars_for(1.8)
    with pytest.raises(ValueError, match=r"env.budget_start_cr=2.0 is out of reach.*1.750"):
        BudgetEpisodes(hand_space(), start_cr=2.0, round_episodes=4, step=0.2)


def test_the_budget_needs_breakpoints():
    space = hand_space()
    unsnapped = SearchSpace(space.layer_names, (0, 1, 2), space.breakpoints, space.pmax, snapping=False)
    with pytest.raises(ValueError, match="env.snap=true"):
        CrossbarBudget(unsnapped)


def test_the_staircase_rises_on_success_falls_on_failure_and_halves_its_step_at_reversals():
    stairs = BudgetStaircase(target_cr=1.5, max_cr=3.0, round_episodes=2, step=0.2)
    stairs.record(False)
    assert stairs.target_cr == 1.5  # the round is not over
    stairs.record(True)
    assert stairs.target_cr == pytest.approx(1.8)  # a feasible episode in the round: x 1.2
    stairs.record(False), stairs.record(False)
    assert stairs.target_cr == pytest.approx(1.8 / 1.1)  # a reversal: the step halves, then / 1.1
    stairs.record(False), stairs.record(False)
    assert stairs.target_cr == pytest.approx(1.8 / 1.1 / 1.1)
    for _ in range(40):
        stairs.record(True)
    assert stairs.target_cr == 3.0  # never past the largest CR


def test_the_constraint_formulation_only_snaps():
    space = hand_space()
    walk = ConstraintEpisodes(space)
    assert walk.apply([0.3, 0.2]) == [0.25, 0.0] and walk.target_cr == 0.0


@pytest.mark.parametrize(("key", "value", "named"), [
    ("formulation", "budgeted", "env.formulation"), ("budget_start_cr", 1.0, "env.budget_start_cr"),
    ("budget_round_episodes", 0, "env.budget_round_episodes"), ("budget_step", 1.5, "env.budget_step"),
])
def test_bad_formulation_settings_name_the_setting(key, value, named):
    with pytest.raises(ValueError, match=named):
        EnvSettings(**{key: value})


def test_a_budget_needs_a_crossbar_reward_and_per_layer_packing():
    with pytest.raises(ValueError, match="env.reward='amc_flops'"):
        EnvSettings(formulation="budget", reward="amc_flops")
    with pytest.raises(ValueError, match="mapping.packing=per_layer"):
        EnvSettings(formulation="budget", packing="shared")
    with pytest.raises(ValueError, match="env.reward=accuracy ignores compression"):
        EnvSettings(reward="accuracy")
    assert EnvSettings(formulation="budget").scoring_reward == "accuracy"
    assert EnvSettings().scoring_reward == "crossbar_constrained"


def test_episode_formulation_picks_by_name():
    assert type(episode_formulation("constraint", hand_space(), 1.5, 8, 0.2)) is ConstraintEpisodes
    assert type(episode_formulation("budget", hand_space(), 1.5, 8, 0.2)) is BudgetEpisodes


def test_every_env_episode_meets_its_budget_as_the_mapping_counts_it(baseline_cache):
    """On a real model: random, all-0 and all-pmax actions, the target moving after every episode."""
    env = PruningEnv(env_config(baseline_cache, formulation="budget", budget_start_cr=1.05,
                                budget_round_episodes=1, budget_step=0.5))
    wall = env.formulation.wall
    rng = np.random.default_rng(1)
    plans = [np.zeros(env.num_layers), np.full(env.num_layers, env.settings.pmax),
             *rng.uniform(0.0, env.settings.pmax, (4, env.num_layers))]
    targets = []
    for actions in plans:
        env.reset(seed=0)
        for action in actions:
            _, reward, terminated, _, info = env.step(np.array([action], dtype=np.float32))
        assert terminated
        targets.append(info["budget_cr"])
        assert info["crossbars"] == wall.kept(info["ratios"]) <= wall.crossbars_for(info["budget_cr"])
        assert reward == pytest.approx(-np.arcsinh(info["delta_acc"] / env.settings.epsilon))
    assert len(set(targets)) > 1  # the staircase moved the budget between episodes


def test_a_proposer_and_the_env_wall_a_vector_alike(baseline_cache):
    config = env_config(baseline_cache, formulation="budget", budget_start_cr=1.1)
    env = PruningEnv(config)
    vector = np.random.default_rng(2).uniform(0.0, env.settings.pmax, env.num_layers).astype(np.float32)
    env.reset(seed=0)
    for action in vector:
        *_, info = env.step(np.array([action], dtype=np.float32))
    proposer = episode_formulation("budget", env.space, 1.1, 8, 0.2)
    assert env.space.expand(proposer.apply(vector.tolist())) == info["ratios"]
