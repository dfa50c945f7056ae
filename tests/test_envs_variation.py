"""Scoring under device variation (envs/variation.py): settings, paired seeded draws, purity, the final report."""

from __future__ import annotations

import pytest
import torch

from envs.episode import EpisodeEvaluator
from envs.finalize import finalize_policy
from envs.search_context import search_context
from envs.settings import EnvSettings
from envs.variation import REPORT_STREAM, SEARCH_STREAM, VariationScorer, VariationSettings, draw_seed
from mapping.matrices import prunable_layers
from tests.test_envs_pruning_env import env_config

STUCK = {"stuck_at_zero": 0.02, "stuck_at_one": 0.02, "draws": 3, "report_draws": 2}


@pytest.fixture(scope="module")
def cache_dir(baseline_cache):
    return baseline_cache


@pytest.mark.parametrize("values, named", [
    ({"sigma": -0.1}, "noise_sigma"),
    ({"stuck_at_zero": 1.5}, "stuck_at_zero"),
    ({"stuck_at_zero": 0.6, "stuck_at_one": 0.6}, "stuck_at_zero \\+ stuck_at_one"),
    ({"sigma": float("nan")}, "env.variation.sigma"),
    ({"draws": 0}, "env.variation.draws"),
    ({"report_draws": 2.5}, "env.variation.report_draws"),
    ({"in_search": "yes"}, "env.variation.in_search"),
    ({"sigmaa": 0.1}, "env.variation"),
])
def test_bad_variation_settings_name_the_setting(values, named):
    with pytest.raises(ValueError, match=named):
        VariationSettings.from_config(values)


def test_variation_in_search_refuses_the_simulator_and_bf16():
    with pytest.raises(ValueError, match="env.eval_on_hardware=false"):
        EnvSettings(eval_on_hardware=True, variation={"stuck_at_zero": 0.01})
    with pytest.raises(ValueError, match="env.precision"):
        EnvSettings(precision="bf16", variation={"stuck_at_zero": 0.01})
    EnvSettings(eval_on_hardware=True, variation={"stuck_at_zero": 0.01, "in_search": False})  # blind: allowed


def test_draw_seeds_are_fixed_and_distinct_across_streams_draws_and_layers():
    seeds = {draw_seed(0, stream, draw, layer) for stream in (SEARCH_STREAM, REPORT_STREAM)
             for draw in range(4) for layer in range(5)}
    assert len(seeds) == 40
    assert draw_seed(3, 0, 1, 2) == draw_seed(3, 0, 1, 2)
    assert draw_seed(3, 0, 1, 2) != draw_seed(4, 0, 1, 2)


def evaluator(cache_dir, **variation) -> EpisodeEvaluator:
    config = env_config(cache_dir, variation=variation)
    return EpisodeEvaluator(search_context(config), EnvSettings.from_config(config))


def test_an_episode_under_variation_is_a_pure_function_of_its_policy(cache_dir):
    scored = evaluator(cache_dir, **STUCK)
    assert not scored.on_hardware
    ratios = scored.space.expand([0.4] * scored.space.size)
    first = scored.evaluate(ratios)
    scored.forget_scores()
    again = scored.evaluate(ratios)
    assert first.accuracy == again.accuracy and first.worst_accuracy == again.worst_accuracy
    assert first.worst_accuracy <= first.accuracy
    pruned = scored.prune(dict(zip(scored.context.layer_names, ratios, strict=True)))
    masked = {name: module.weight.detach().clone() for name, module in prunable_layers(pruned.model)}
    scored.measure(pruned, None)
    for name, module in prunable_layers(pruned.model):  # the draws leave the working copy as they found it
        assert torch.equal(module.weight, masked[name])


def test_the_reference_and_episodes_are_scored_on_the_same_draws_and_faults_cost_accuracy(cache_dir):
    ideal = evaluator(cache_dir)
    faulty = evaluator(cache_dir, stuck_at_zero=0.1, stuck_at_one=0.1, draws=2)
    assert ideal.variation is None and faulty.variation is not None
    assert faulty.reference_accuracy < ideal.reference_accuracy
    # Paired: a second evaluator with the same settings meets the same devices.
    twin = evaluator(cache_dir, stuck_at_zero=0.1, stuck_at_one=0.1, draws=2)
    ratios = faulty.space.expand([0.3] * faulty.space.size)
    assert faulty.evaluate(ratios).accuracy == twin.evaluate(ratios).accuracy
    reseeded = evaluator(cache_dir, stuck_at_zero=0.1, stuck_at_one=0.1, draws=2, seed=1)
    assert reseeded.reference_accuracy != faulty.reference_accuracy


def test_without_faults_the_scorer_measures_the_quantized_model(cache_dir):
    scored = evaluator(cache_dir)
    pruned = scored.prune(dict.fromkeys(scored.context.layer_names, 0.0))
    scored.recalibrate(pruned.model)
    plain = scored.measure(pruned, None)[0]
    quantized = VariationScorer(scored.context.spec, VariationSettings(draws=2)).search_accuracies(
        pruned.model, pruned.layout, scored.search_images, scored.search_labels, 100)
    assert quantized[0] == quantized[1]  # no draw: both read the same 8-bit weights and inputs
    assert abs(quantized[0] - plain) <= 0.02  # 8 bits cost next to nothing on the test model


def test_the_final_report_gives_mean_and_worst_under_fresh_draws_beside_the_dense_model(cache_dir, tmp_path):
    config = env_config(cache_dir, variation={**STUCK, "in_search": False})
    space = EpisodeEvaluator(search_context(config), EnvSettings.from_config(config)).space
    final = finalize_policy({**config, "final": {"onnx": False}}, space.expand([0.4] * space.size), 0.05,
                            tmp_path, log=print)
    report = final.variation
    assert report["draws"] == 2 and len(report["test_accuracies"]) == 2
    assert report["test_accuracy_worst"] == min(report["test_accuracies"]) <= report["test_accuracy_mean"]
    assert report["dense_test_accuracy_worst"] <= report["dense_test_accuracy_mean"]
    assert report["in_search"] is False
    plain = finalize_policy({**config, "env": {**config["env"], "variation": {}}, "final": {"onnx": False}},
                            space.expand([0.4] * space.size), 0.05, tmp_path / "plain", log=print)
    assert plain.variation is None and plain.test_accuracy == final.test_accuracy


def test_the_rl_env_scores_its_episodes_under_variation(cache_dir):
    from envs.pruning_env import PruningEnv
    from tests.test_envs_pruning_env import run_episode

    env = PruningEnv(env_config(cache_dir, variation=STUCK))
    _, info = run_episode(env, 0.3)
    assert info["worst_accuracy"] is not None and info["worst_accuracy"] <= info["accuracy"]
    assert info["on_hardware"] is False
