"""The RL environment: gym conformance, hand-checkable extremes, determinism and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from envs.embedding import STATIC_FEATURES
from envs.finalize import recheck_policies
from envs.pruning_env import PruningEnv
from envs.result import FIELD_NAMES
from hw.spec import load_hw_spec

N_STATIC = len(STATIC_FEATURES)


@pytest.fixture
def cache_dir(baseline_cache):
    return baseline_cache


def env_config(cache_dir, epsilon=0.05, **env) -> dict:
    from dataclasses import asdict
    return {
        "model": {"name": "small_cnn", "small_input": True, "weights": None, "stem": None,
                  "recipe": {"epochs": 8, "batch_size": 64, "lr": 0.05, "threads": 1, "log_every": 1000}},
        "data": {"name": "digits", "search_size": 300, "seed": 0},
        "hw": asdict(load_hw_spec("isaac")),
        "mapping": {"granularity": "ou_row", "packing": "per_layer"},
        "env": {"eval_on_hardware": False, "torch_threads": torch.get_num_threads(), **env},
        "paths": {"cache_dir": str(cache_dir)},
        "seed": 0,
        "epsilon": epsilon,
    }


def run_episode(env: PruningEnv, ratio: float, seed: int = 0) -> tuple[float, dict]:
    env.reset(seed=seed)
    for _ in range(env.num_layers):
        _, reward, terminated, truncated, info = env.step(np.array([ratio], dtype=np.float32))
    assert terminated and not truncated
    return reward, info


def test_gymnasium_env_checker_passes(cache_dir):
    check_env(PruningEnv(env_config(cache_dir)), skip_render_check=True)


def test_ratio_zero_policy_keeps_every_crossbar_and_the_baseline_accuracy(cache_dir):
    env = PruningEnv(env_config(cache_dir))
    reward, info = run_episode(env, 0.0)
    assert info["compression_rate"] == 1.0
    assert info["crossbars"] == info["dense_crossbars"]
    assert info["accuracy"] == info["baseline_accuracy"]
    assert info["delta_acc"] == 0.0 and info["feasible"]
    assert reward == 0.0  # log(CR = 1)


def test_a_more_aggressive_policy_compresses_more_and_is_not_more_accurate(cache_dir):
    env = PruningEnv(env_config(cache_dir, early_stop=False))
    _, mild = run_episode(env, 0.3)
    _, harsh = run_episode(env, 0.8)
    assert harsh["compression_rate"] > mild["compression_rate"] > 1.0
    assert harsh["accuracy"] <= mild["accuracy"]


def test_terminal_info_carries_every_key_and_the_full_snapped_policy(cache_dir):
    env = PruningEnv(env_config(cache_dir))
    _, info = run_episode(env, 0.5)
    assert set(FIELD_NAMES) == set(info)
    space = env.space
    assert len(info["layer_names"]) == len(info["ratios"]) == len(space.layer_names) >= env.num_layers
    for layer, ratio in enumerate(info["ratios"]):
        if layer in space.searchable:
            assert 0.0 < ratio <= 0.5 and ratio == space.snap(layer, 0.5)
        else:
            assert ratio == 0.0  # a layer that can free no crossbar is never pruned


def test_without_snapping_every_layer_is_searched_at_the_ratio_asked(cache_dir):
    env = PruningEnv(env_config(cache_dir, snap=False))
    _, info = run_episode(env, 0.5)
    assert env.num_layers == len(info["layer_names"])
    assert info["ratios"] == pytest.approx([0.5] * env.num_layers)


def test_the_saved_fraction_is_zero_for_the_all_zero_policy(cache_dir):
    env = PruningEnv(env_config(cache_dir))
    obs, _ = env.reset(seed=0)
    saved = N_STATIC  # the first dynamic feature
    assert obs[saved] == 0.0
    for _ in range(env.num_layers - 1):
        obs, *_ = env.step(np.array([0.0], dtype=np.float32))
        assert obs[saved] == 0.0


def test_the_saved_fraction_counts_the_crossbars_pruning_frees(cache_dir):
    env = PruningEnv(env_config(cache_dir))
    env.reset(seed=0)
    obs, *_ = env.step(np.array([0.8], dtype=np.float32))
    first = env.space.searchable[0]
    expected = env.space.saved_crossbars(first, 0.8) / env.context.layer_dense_crossbars.sum()
    assert expected > 0 and obs[N_STATIC] == pytest.approx(expected)


@pytest.mark.parametrize("recovery", [
    {"recovery": "none"}, {"recovery": "bn"}, {"recovery": "finetune", "finetune_steps": 3},
    {"recovery": "finetune", "finetune_steps": 3, "finetune_loss": "distill", "finetune_images": 64,
     "finetune_batch_size": 16, "finetune_params": "pruned"},
])
def test_the_same_policy_evaluated_twice_gives_the_same_result(cache_dir, recovery):
    env = PruningEnv(env_config(cache_dir, early_stop=False, **recovery))
    strip = {"eval_seconds", "episode_seconds"}
    first = run_episode(env, 0.5)
    run_episode(env, 0.7)  # another policy in between must leave nothing behind
    env.evaluator.forget_scores()  # evaluate again in full rather than answer from memory
    second = run_episode(env, 0.5)
    assert first[0] == second[0]
    assert {k: v for k, v in first[1].items() if k not in strip} == {k: v for k, v in second[1].items()
                                                                     if k not in strip}


def test_a_policy_scored_before_is_answered_from_memory_without_evaluating(cache_dir, monkeypatch):
    env = PruningEnv(env_config(cache_dir))
    first = run_episode(env, 0.5)[1]
    calls = []
    monkeypatch.setattr(env.evaluator, "_evaluate", lambda ratios: calls.append(ratios))
    again = run_episode(env, 0.5)[1]
    assert calls == [] and again["eval_seconds"] == again["episode_seconds"] == 0.0
    strip = {"eval_seconds", "episode_seconds"}
    assert {k: v for k, v in again.items() if k not in strip} == {k: v for k, v in first.items() if k not in strip}
    again["ratios"][0] = 9.0  # a caller's copy: changing it leaves the remembered record alone
    assert run_episode(env, 0.5)[1]["ratios"] == first["ratios"]


def test_the_reference_is_measured_with_the_same_recovery(cache_dir):
    stale = PruningEnv(env_config(cache_dir, recovery="none"))
    recalibrated = PruningEnv(env_config(cache_dir, recovery="bn"))
    _, info = run_episode(recalibrated, 0.0)
    assert info["delta_acc"] == 0.0  # recalibrating the dense model is not counted as pruning loss
    assert info["baseline_accuracy"] == recalibrated.reference_accuracy
    assert 0.0 < stale.reference_accuracy <= 1.0


def test_intermediate_steps_give_zero_reward_and_observations_in_the_box(cache_dir):
    env = PruningEnv(env_config(cache_dir))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    for _ in range(env.num_layers - 1):
        obs, reward, terminated, _, info = env.step(np.array([0.4], dtype=np.float32))
        assert reward == 0.0 and not terminated and info == {}
        assert env.observation_space.contains(obs)


def test_same_seed_gives_the_same_episode(cache_dir):
    first = run_episode(PruningEnv(env_config(cache_dir)), 0.6, seed=3)
    second = run_episode(PruningEnv(env_config(cache_dir)), 0.6, seed=3)
    strip = {"eval_seconds", "episode_seconds"}
    assert first[0] == second[0]
    assert {k: v for k, v in first[1].items() if k not in strip} == {k: v for k, v in second[1].items()
                                                                     if k not in strip}


def test_the_env_sets_the_torch_threads_it_is_given(cache_dir):
    before = torch.get_num_threads()
    try:
        PruningEnv(env_config(cache_dir, torch_threads=1))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_hardware_evaluation_reports_crossbar_accuracy(cache_dir):
    env = PruningEnv(env_config(cache_dir, eval_on_hardware=True))
    _, info = run_episode(env, 0.0)
    assert info["on_hardware"] is True
    assert info["delta_acc"] == 0.0 and info["compression_rate"] == 1.0


def test_nan_loss_in_fine_tuning_ends_the_episode_with_a_penalty_and_a_reason(cache_dir):
    config = env_config(cache_dir, recovery="finetune", finetune_steps=5, finetune_lr=1e30)
    env = PruningEnv({**config, "reference_accuracy": 0.9})
    reward, info = run_episode(env, 0.5)
    assert info["reason"].startswith("nan_loss")
    assert not info["feasible"]
    assert reward < 0


def test_a_reference_that_diverges_under_fine_tuning_is_a_clear_error(cache_dir):
    with pytest.raises(ValueError, match="unpruned reference diverged.*lower env.finetune_lr"):
        PruningEnv(env_config(cache_dir, recovery="finetune", finetune_steps=5, finetune_lr=1e30))


@pytest.mark.parametrize(("override", "message"), [
    ({"epsilon": 1.5}, "epsilon holds 1.5: every constraint must lie in"),
    ({"epsilon": 0.0}, "epsilon holds 0.0: every constraint must lie in"),
    ({"env": {"reward": "accuracy_only"}}, "unknown reward 'accuracy_only'"),
    ({"mapping": {"granularity": "diagonal"}}, "diagonal"),
    ({"env": {"pmax": 1.2}}, "env.pmax"),
    ({"env": {"typo_key": 1}}, "unknown env config keys ['typo_key']"),
    ({"env": {"recovery": "magic"}}, "env.recovery must be one of"),
    ({"env": {"recovery_images": 0}}, "env.recovery_images"),
    ({"env": {"recovery": "finetune", "finetune_steps": -1}}, "env.finetune_steps must be >= 0, got -1"),
    ({"env": {"recovery": "finetune"}}, "env.recovery=finetune needs env.finetune_steps >= 1"),
    ({"env": {"finetune_steps": 5}}, "takes effect only with env.recovery=finetune"),
    ({"env": {"device": "tpu"}}, "env.device must be one of"),
    ({"env": {"finetune_loss": "mse"}}, "env.finetune_loss must be one of"),
    ({"env": {"finetune_params": "some"}}, "env.finetune_params must be one of"),
    ({"env": {"finetune_images": 0}}, "env.finetune_images must be >= 1 or null"),
    ({"env": {"finetune_loss": "distill"}}, "set env.finetune_images"),
    ({"env": {"precision": "fp16"}}, "env.precision must be one of"),
    ({"env": {"precision": "bf16", "eval_on_hardware": True}}, "env.precision=bf16 would round"),
])
def test_invalid_env_config_fails_at_construction_naming_the_problem(cache_dir, override, message):
    config = {**env_config(cache_dir), **override}
    with pytest.raises(ValueError) as error:
        PruningEnv(config)
    assert message in str(error.value)


def test_a_given_reference_accuracy_is_used_instead_of_measuring_it(cache_dir):
    measured = PruningEnv(env_config(cache_dir)).reference_accuracy
    given = PruningEnv({**env_config(cache_dir), "reference_accuracy": 0.5})
    assert given.reference_accuracy == 0.5 != measured
    _, info = run_episode(given, 0.0)
    assert info["baseline_accuracy"] == 0.5
    assert info["delta_acc"] == pytest.approx(0.5 - info["accuracy"])


def test_the_recheck_scores_a_policy_on_the_whole_search_split(cache_dir):
    prefix = PruningEnv(env_config(cache_dir, search_images=60))
    _, info = run_episode(prefix, 0.5)
    (again,) = recheck_policies(env_config(cache_dir, search_images=60), [info["ratios"]], 0.05)
    whole = PruningEnv(env_config(cache_dir, early_stop=False))
    _, expected = run_episode(whole, 0.5)
    assert again["ratios"] == info["ratios"] == expected["ratios"]
    assert (again["accuracy"], again["baseline_accuracy"]) == (expected["accuracy"], expected["baseline_accuracy"])
    assert len(whole.context.search_tensors[1]) > 60


def test_the_episode_reports_cr_as_packing_gain_times_pruning_gain(cache_dir):
    env = PruningEnv(env_config(cache_dir))
    _, info = run_episode(env, 0.5)
    assert info["packing_gain"] * info["pruning_gain"] == pytest.approx(info["compression_rate"])
    _, unpruned = run_episode(env, 0.0)
    assert unpruned["compression_rate"] == 1.0
    assert unpruned["packing_gain"] * unpruned["pruning_gain"] == pytest.approx(1.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a CPU-only machine gives")
def test_asking_for_cuda_without_a_gpu_fails_naming_the_settings(cache_dir):
    with pytest.raises(ValueError, match="env.device=cuda but torch sees no CUDA device.*ray.num_gpus_per_env_runner"):
        PruningEnv(env_config(cache_dir, device="cuda"))


def test_auto_runs_on_the_cpu_where_there_is_no_gpu(cache_dir):
    env = PruningEnv(env_config(cache_dir, device="auto"))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert env.evaluator.device.type == expected
    assert next(env.evaluator.work_model.parameters()).device.type == expected


def test_shared_packing_runs_with_unpruned_layers(cache_dir):
    shared = {**env_config(cache_dir), "mapping": {"granularity": "ou_row", "packing": "shared"}}
    env = PruningEnv(shared)
    _, unpruned = run_episode(env, 0.0)
    assert unpruned["compression_rate"] == 1.0  # every layer dense: on crossbars of its own
    _, pruned = run_episode(env, 0.5)
    _, per_layer = run_episode(PruningEnv(env_config(cache_dir)), 0.5)
    assert per_layer["crossbars"] >= pruned["crossbars"]


def test_the_envs_crossbar_estimate_equals_the_layouts_count(cache_dir):
    env = PruningEnv(env_config(cache_dir))
    for ratio in (0.0, 0.2, 0.5, 0.8):
        _, info = run_episode(env, ratio)
        estimate = sum(layer.dense_crossbars - env.evaluator.saved_crossbars(i, r)
                       for i, (layer, r) in enumerate(zip(env.context.layers, info["ratios"], strict=True)))
        assert estimate == info["crossbars"]


def test_to_device_leaves_cpu_tensors_alone_and_checks_before_pinning():
    import torch

    from envs.workload.device import to_device

    tensor = torch.arange(6.0)
    assert to_device(tensor, "cpu") is tensor
    if not torch.cuda.is_available():  # pinning needs a CUDA driver: nothing more to check on a CPU machine
        return
    moved = to_device(tensor, "cuda")
    assert moved.device.type == "cuda" and torch.equal(moved.cpu(), tensor)
