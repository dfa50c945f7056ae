"""RLlib configs of the two agents: what the search needs from them, checked without starting Ray."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from platform.agents import EpisodeShape, build_algo_config, trial_resources
from platform.callbacks import PruningCallbacks
from platform.config import REPO_ROOT, env_config, to_plain
from tests.test_platform_toy_env import ToyPruningEnv

LAYERS = 54  # ResNet-50's prunable layers


def algo(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["+experiment=resnet50", *overrides])
    return build_algo_config(cfg, ToyPruningEnv, env_config(to_plain(cfg), 0.05), EpisodeShape(LAYERS))


def test_ppo_credits_the_terminal_reward_to_every_layer_and_batches_whole_episodes():
    config = algo("agent.episodes_per_batch=8")
    assert config.algo_class.__name__ == "PPO"
    assert (config.gamma, config.lambda_) == (1.0, 1.0)
    assert config.train_batch_size_per_learner == 8 * LAYERS
    assert config.batch_mode == "complete_episodes"
    assert config.enable_rl_module_and_learner and config.enable_env_runner_and_connector_v2  # new API stack


def test_sac_samples_whole_episodes_and_warms_up_for_whole_episodes():
    config = algo("agent=sac", "agent.sac.warmup_episodes=100")
    assert config.algo_class.__name__ == "SAC"
    assert config.rollout_fragment_length == LAYERS
    assert config.num_steps_sampled_before_learning_starts == 100 * LAYERS
    assert config.gamma == 1.0


def test_env_runners_are_fault_tolerant_and_report_through_the_callbacks():
    config = algo()
    assert config.restart_failed_env_runners is True
    assert config.callbacks_class is PruningCallbacks


def test_a_trial_asks_for_one_cpu_plus_its_env_runners_share():
    assert trial_resources(algo("ray.num_env_runners=2", "ray.num_cpus_per_env_runner=0.5")) == {"CPU": 2.0}
    assert trial_resources(algo("ray.num_env_runners=4", "ray.num_cpus_per_env_runner=1")) == {"CPU": 5.0}
