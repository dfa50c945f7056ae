"""The toy environment of tests/toy_env.py keeps gymnasium's contract and prices policies as documented."""

from __future__ import annotations

from gymnasium.utils.env_checker import check_env

from tests.toy_env import BASELINE, DENSE, ToyPruningEnv, toy_config, toy_price


def test_toy_env_passes_gymnasium_check_env():
    check_env(ToyPruningEnv(toy_config()), skip_render_check=True)


def test_toy_zero_policy_keeps_every_crossbar_and_the_baseline_accuracy():
    kept, cr, accuracy = toy_price([0.0, 0.0, 0.0, 0.0])
    assert (kept, cr, accuracy) == (list(DENSE), 1.0, BASELINE)


def test_toy_half_policy_halves_the_crossbars():
    kept, cr, _ = toy_price([0.5, 0.5, 0.5, 0.5])
    assert kept == [2, 4, 4, 1] and cr == 22 / 11
