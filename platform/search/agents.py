"""RLlib algorithm configs (new API stack) for the pruning search: PPO by default, SAC on request.

One episode takes one step per prunable layer and pays its reward at the end, so both
agents use gamma = 1 (and PPO lambda = 1): every layer's ratio is credited with the
episode's outcome (docs/platform.md). Batches are counted in whole episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

from platform.config import search_seed
from platform.search.rllib_callbacks import PruningCallbacks


@dataclass(frozen=True)
class EpisodeShape:
    """What the agent needs to know about the environment before Ray starts."""

    layers: int  # steps per episode: one per prunable layer
    reference_accuracy: float | None = None  # the env's unpruned accuracy, measured once in the driver
    baseline_entry: str | None = None  # the baseline's cache folder, published to other nodes
    probe_records: list | None = None  # env.sensitivity_probe's episodes (envs/sensitivity.py), measured once

    @property
    def probe_episodes(self) -> int:
        return len(self.probe_records or ())


def action_prior(cfg: DictConfig) -> dict[str, float] | None:
    """The env's exploration prior in ratio units (envs/pruning_env.py ActionPrior), or None.

    PPO only: SAC squashes its Gaussian onto the action Box itself, so a shifted Box would not
    move where it explores; SAC explores uniformly during its warm-up instead.
    """
    if cfg.agent.prior_mean is None or cfg.agent.name != "ppo":
        return None
    return {"mean": float(cfg.agent.prior_mean), "std": float(cfg.agent.prior_std)}


def _common(config: AlgorithmConfig, cfg: DictConfig, env_class: type, env_config: dict) -> AlgorithmConfig:
    ray_cfg = cfg.ray
    # With a prior the env maps the policy's raw Gaussian sample to a ratio itself (mean + std * a),
    # so RLlib must pass actions through unchanged instead of unsquashing them onto the Box.
    prior = env_config.get("action_prior") is not None
    return (
        config.environment(env=env_class, env_config=env_config, normalize_actions=not prior, clip_actions=False)
        .env_runners(
            num_env_runners=ray_cfg.num_env_runners,
            num_cpus_per_env_runner=ray_cfg.num_cpus_per_env_runner,
            num_gpus_per_env_runner=ray_cfg.num_gpus_per_env_runner,
            batch_mode="complete_episodes",
            sample_timeout_s=ray_cfg.sample_timeout_s,
        )
        .resources(num_cpus_for_main_process=ray_cfg.num_cpus_for_main_process)
        .learners(num_learners=0)
        .fault_tolerance(
            restart_failed_env_runners=ray_cfg.restart_failed_env_runners,
            max_num_env_runner_restarts=ray_cfg.max_env_runner_restarts,
        )
        .callbacks(PruningCallbacks)
        .rl_module(model_config={"fcnet_hiddens": list(cfg.agent.hidden), "fcnet_activation": "tanh"})
        .debugging(seed=search_seed(cfg), log_level="WARN")
        .reporting(metrics_num_episodes_for_smoothing=max(1, cfg.agent.episodes_per_batch))
    )


def ppo_config(cfg: DictConfig, env_class: type, env_config: dict, shape: EpisodeShape) -> AlgorithmConfig:
    from ray.rllib.algorithms.ppo import PPOConfig

    agent, ppo = cfg.agent, cfg.agent.ppo
    batch = agent.episodes_per_batch * shape.layers
    config = _common(PPOConfig(), cfg, env_class, env_config)
    return config.training(
        gamma=agent.gamma,
        lambda_=agent.lambda_,
        lr=agent.lr,
        train_batch_size_per_learner=batch,
        minibatch_size=min(ppo.minibatch_size, batch),
        num_epochs=ppo.num_epochs,
        clip_param=ppo.clip_param,
        entropy_coeff=ppo.entropy_coeff,
        vf_loss_coeff=ppo.vf_loss_coeff,
        vf_clip_param=ppo.vf_clip_param,
        grad_clip=ppo.grad_clip,
    )


def sac_config(cfg: DictConfig, env_class: type, env_config: dict, shape: EpisodeShape) -> AlgorithmConfig:
    from ray.rllib.algorithms.sac import SACConfig

    agent, sac = cfg.agent, cfg.agent.sac
    config = _common(SACConfig(), cfg, env_class, env_config)
    # RLlib's default rollout_fragment_length="auto" samples 1 step per runner per
    # iteration (64-125 s per iteration here): each runner samples one whole episode.
    config = config.env_runners(rollout_fragment_length=shape.layers)
    # SAC's defaults repeat sampling within an iteration until 100 steps and 1 s have passed (3 rounds
    # of 2 episodes on ResNet-20), which overshoots the episode budget: one round per iteration instead.
    config = config.reporting(min_sample_timesteps_per_iteration=0, min_time_s_per_iteration=0)
    return config.training(
        gamma=agent.gamma,
        actor_lr=sac.actor_lr,
        critic_lr=sac.critic_lr,
        alpha_lr=sac.alpha_lr,
        tau=sac.tau,
        initial_alpha=sac.initial_alpha,
        n_step=sac.n_step,
        train_batch_size_per_learner=sac.train_batch_size,
        num_steps_sampled_before_learning_starts=sac.warmup_episodes * shape.layers,
        replay_buffer_config={"type": "PrioritizedEpisodeReplayBuffer", "capacity": sac.replay_capacity},
    )


BUILDERS = {"ppo": ppo_config, "sac": sac_config}


def build_algo_config(cfg: DictConfig, env_class: type, env_config: dict,
                      shape: EpisodeShape) -> AlgorithmConfig:
    """The AlgorithmConfig of ``agent.name`` for this environment; its ``algo_class`` goes to Tune."""
    return BUILDERS[cfg.agent.name](cfg, env_class, env_config, shape)


def trial_resources(config: AlgorithmConfig) -> dict[str, float]:
    """What one trial asks Ray for (algorithm + learner + env runners), as Tune will ask it."""
    return dict(config.algo_class.default_resource_request(config).required_resources)
