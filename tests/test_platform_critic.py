"""RLlib's PPO critic learns from the rewards the env pays: its loss keeps a gradient at the worst return.

RLlib clamps the critic's *squared* error at vf_clip_param, so returns far below the critic's
initial estimate (about 0) give it no gradient at all. envs/rewards.py bounds every reward to
[-penalty, log CR], which keeps the worst return inside the clip range.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.columns import Columns
from ray.rllib.evaluation.postprocessing import Postprocessing

from envs.embedding import N_FEATURES
from envs.rewards import EpisodeOutcome, compute_reward
from envs.settings import EnvSection

MODULE = "default_policy"


def critic_gradient(value_target: float, vf_clip_param: float) -> float:
    """Sum of |gradient| over the critic's parameters for a batch whose returns are all value_target."""
    obs_space = gym.spaces.Box(0.0, 1.0, (N_FEATURES,), np.float32)
    act_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    config = (PPOConfig().environment(observation_space=obs_space, action_space=act_space)
              .rl_module(model_config={"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh"})
              .training(vf_clip_param=vf_clip_param))
    torch.manual_seed(0)
    learner = config.build_learner(env=None, spaces={MODULE: (obs_space, act_space)})
    learner.build()
    module = learner.module[MODULE]
    n = 64
    obs = torch.rand(n, N_FEATURES)
    batch = {Columns.OBS: obs, Columns.ACTIONS: torch.zeros(n, 1), Columns.ACTION_LOGP: torch.zeros(n),
             Columns.ACTION_DIST_INPUTS: torch.zeros(n, 2), Postprocessing.ADVANTAGES: torch.zeros(n),
             Postprocessing.VALUE_TARGETS: torch.full((n,), value_target)}
    loss = learner.compute_loss_for_module(module_id=MODULE, config=learner.config.get_config_for_module(MODULE),
                                           batch=batch, fwd_out=module.forward_train({Columns.OBS: obs}))
    loss.backward()
    return sum(float(p.grad.abs().sum()) for name, p in module.named_parameters() if "vf" in name
               and p.grad is not None)


def test_the_critic_gets_a_gradient_at_the_worst_return_the_env_can_pay():
    penalty = EnvSection().penalty
    collapse = EpisodeOutcome(delta_acc=0.9, epsilon=0.01, crossbar_compression=3.0, flops_compression=3.0,
                              params_compression=3.0)
    worst = compute_reward("crossbar_constrained", collapse, penalty)
    assert worst == pytest.approx(-penalty)
    assert critic_gradient(worst, vf_clip_param=10.0) > 0.0


def test_an_unbounded_penalty_would_leave_the_critic_without_gradient():
    # The old penalty, -2 * (0.9 - 0.01) / 0.01 = -178 for a collapse: squared error >> 10, clamped.
    assert critic_gradient(-178.0, vf_clip_param=10.0) == 0.0
