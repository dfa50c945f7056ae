"""RLlib configs of the two agents: what the search needs from them, checked without starting Ray."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from ray.rllib.core.columns import Columns

from envs.embedding import N_FEATURES
from envs.pruning_env import ActionPrior
from platform.cluster import ResourceError, check_resources
from platform.config import REPO_ROOT, ConfigError, env_config, to_plain, validate
from platform.search.agents import EpisodeShape, action_prior, build_algo_config, trial_resources
from platform.search.rllib_callbacks import PruningCallbacks
from tests.toy_env import ToyPruningEnv

LAYERS = 54  # ResNet-50's prunable layers


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=["+experiment=resnet50", *overrides])


def algo(*overrides: str):
    cfg = compose_cfg(*overrides)
    config = {**env_config(to_plain(cfg), 0.05), "action_prior": action_prior(cfg)}
    return build_algo_config(cfg, ToyPruningEnv, config, EpisodeShape(LAYERS))


def fresh_policy_ratios(config, prior: ActionPrior, pmax: float, samples: int = 4000) -> np.ndarray:
    """Ratios a freshly built policy proposes (before the env clips them), for random observations."""
    spec = config.get_default_rl_module_spec()
    spec.observation_space = gym.spaces.Box(0.0, 1.0, (N_FEATURES,), np.float32)
    spec.action_space = prior.space(pmax)
    spec.model_config = config.model_config
    module = spec.build()
    torch.manual_seed(0)
    logits = module.forward_exploration({Columns.OBS: torch.rand(samples, N_FEATURES)})[Columns.ACTION_DIST_INPUTS]
    actions = module.get_exploration_action_dist_cls().from_logits(logits).sample().numpy().ravel()
    return prior.ratio(actions, step=0)


def test_the_prior_sets_the_fresh_policys_ratio_mean_and_spread():
    config = algo("agent.prior_mean=0.3", "agent.prior_std=0.1")
    assert config.normalize_actions is False and config.clip_actions is False
    ratios = fresh_policy_ratios(config, ActionPrior(**config.env_config["action_prior"]), 0.8)
    assert abs(ratios.mean() - 0.3) < 0.05 and abs(ratios.std() - 0.1) < 0.02


def test_without_a_prior_rllib_normalises_actions_onto_the_box():
    config = algo("agent.prior_mean=null")
    assert config.env_config["action_prior"] is None and config.normalize_actions is True


def test_sac_explores_without_the_prior():
    assert algo("agent=sac", "search.episodes=300").env_config["action_prior"] is None


@pytest.mark.parametrize(("override", "message"), [
    ("agent.prior_mean=0.9", "agent.prior_mean must be a ratio in [0, env.pmax=0.8]"),
    ("agent.prior_std=0", "agent.prior_std must be > 0"),
    ("agent.sac.warmup_episodes=50", "agent.sac.warmup_episodes=50 leaves no episode"),
])
def test_bad_agent_settings_fail_naming_the_setting(override, message):
    overrides = [override, "search.episodes=32"] + (["agent=sac"] if "sac" in override else [])
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(compose_cfg(*overrides))


def test_ppo_credits_the_terminal_reward_to_every_layer_and_batches_whole_episodes():
    config = algo("agent.episodes_per_batch=8")
    assert config.algo_class.__name__ == "PPO"
    assert (config.gamma, config.lambda_) == (1.0, 1.0)
    assert config.train_batch_size_per_learner == 8 * LAYERS
    assert config.batch_mode == "complete_episodes"
    assert config.enable_rl_module_and_learner and config.enable_env_runner_and_connector_v2  # new API stack


def test_sac_samples_whole_episodes_and_warms_up_for_whole_episodes():
    config = algo("agent=sac", "agent.sac.warmup_episodes=100", "search.episodes=300")
    assert config.algo_class.__name__ == "SAC"
    assert config.rollout_fragment_length == LAYERS
    assert config.num_steps_sampled_before_learning_starts == 100 * LAYERS
    assert (config.min_sample_timesteps_per_iteration, config.min_time_s_per_iteration) == (0, 0)  # one round
    assert config.gamma == 1.0


def test_env_runners_are_fault_tolerant_and_report_through_the_callbacks():
    config = algo()
    assert config.restart_failed_env_runners is True
    assert config.callbacks_class is PruningCallbacks


def test_a_trial_asks_for_one_cpu_plus_its_env_runners_share():
    assert trial_resources(algo("ray.num_env_runners=2", "ray.num_cpus_per_env_runner=0.5")) == {"CPU": 2.0}
    assert trial_resources(algo("ray.num_env_runners=4", "ray.num_cpus_per_env_runner=1")) == {"CPU": 5.0}


def test_env_runners_ask_for_their_gpu_share():
    config = algo("ray.num_env_runners=2", "ray.num_gpus_per_env_runner=0.5")
    assert config.num_gpus_per_env_runner == 0.5
    assert trial_resources(config).get("GPU") == 1.0


def test_a_gpu_request_on_a_cluster_without_gpus_fails_naming_the_setting():
    with pytest.raises(ResourceError, match="ray.num_gpus_per_env_runner=0"):
        check_resources({"CPU": 2.0, "GPU": 1.0}, {"CPU": 2.0})
