"""A toy environment and finalizer that honour envs/' contracts, for fast platform tests.

The platform's Ray/Tune/MLflow wiring is tested against these (``search.env_class=`` and
``final.function_path=`` point here) so that its tests take seconds per episode, not a
model evaluation each. The toy prices a 4-layer model: layer l has ``DENSE[l]`` dense
crossbars and keeps ``ceil(DENSE[l] * (1 - ratio))`` of them; accuracy loss grows with
the squared ratios. Env runners import this module, which is why tests/ is a package.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

DENSE = (4, 8, 8, 2)
NAMES = ("conv1", "conv2", "conv3", "fc")
BASELINE = 0.9


def toy_price(ratios: list[float]) -> tuple[list[int], float, float]:
    """Per-layer crossbars, compression rate and accuracy of a policy."""
    kept = [math.ceil(d * (1.0 - r)) for d, r in zip(DENSE, ratios, strict=True)]
    loss = sum(r * r for r in ratios) / 20.0
    return kept, sum(DENSE) / max(1, sum(kept)), BASELINE - loss


class ToyPruningEnv(gym.Env):
    """Four layers, terminal reward log(CR) when the accuracy loss is within epsilon."""

    def __init__(self, env_config: dict) -> None:
        env = env_config["env"]
        self.epsilon = float(env_config["epsilon"])
        if not 0.0 < self.epsilon < 1.0:
            raise ValueError(f"epsilon must lie in (0, 1), got {self.epsilon}")
        self.pmax = float(env["pmax"])
        self.penalty = float(env["penalty"])
        self.marker = env.get("fail_once_marker")
        self.worker_index = int(getattr(env_config, "worker_index", 0))
        self.observation_space = gym.spaces.Box(0.0, 1.0, (3,), np.float32)
        self.action_space = gym.spaces.Box(0.0, self.pmax, (1,), np.float32)
        self.ratios: list[float] = []

    @property
    def num_layers(self) -> int:
        return len(DENSE)

    def _obs(self) -> np.ndarray:
        t = min(len(self.ratios), self.num_layers - 1)
        previous = self.ratios[-1] / self.pmax if self.ratios else 0.0
        return np.array([t / (self.num_layers - 1), DENSE[t] / max(DENSE), previous], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self.marker and self.worker_index == 1 and not Path(self.marker).exists():
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        self.ratios = []
        return self._obs(), {}

    def step(self, action):
        value = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        self.ratios.append(float(np.clip(value, 0.0, self.pmax)))
        if len(self.ratios) < self.num_layers:
            return self._obs(), 0.0, False, False, {}
        kept, cr, accuracy = toy_price(self.ratios)
        delta = BASELINE - accuracy
        feasible = delta <= self.epsilon
        reward = math.log(cr) if feasible else -self.penalty * (delta - self.epsilon)
        info = dict(accuracy=accuracy, baseline_accuracy=BASELINE, delta_acc=delta, feasible=feasible,
                    compression_rate=cr, crossbars=sum(kept), dense_crossbars=sum(DENSE),
                    energy_nj=float(sum(kept)),
                    area_mm2=0.01 * sum(kept), area_efficiency_gain=cr, energy_efficiency_gain=cr,
                    ratios=list(self.ratios), layer_names=list(NAMES), eval_seconds=0.0, episode_seconds=0.0,
                    reason="")
        return self._obs(), reward, True, False, info


@dataclass
class ToyFinalResult:
    accuracy: float
    test_accuracy: float
    delta_acc: float
    compression_rate: float
    crossbars: int
    dense_crossbars: int
    area_efficiency_gain: float
    energy_efficiency_gain: float
    energy_nj: float
    area_mm2: float
    layout_dir: Path
    ratios: list[float]
    layer_names: list[str]
    layer_crossbars: list[int]
    layer_dense_crossbars: list[int]
    finetune_seconds: float


def toy_finalize(config: dict, ratios: list[float], epsilon: float, out_dir: Path) -> ToyFinalResult:
    """Prices the policy and saves a one-file 'layout' whose manifest lists the crossbars."""
    kept, cr, accuracy = toy_price(ratios)
    layout = Path(out_dir) / "layout"
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "manifest.json").write_text(json.dumps({"layers": dict(zip(NAMES, kept, strict=True))}))
    return ToyFinalResult(accuracy=accuracy, test_accuracy=accuracy, delta_acc=BASELINE - accuracy,
                          compression_rate=cr, crossbars=sum(kept), dense_crossbars=sum(DENSE),
                          area_efficiency_gain=cr, energy_efficiency_gain=cr, energy_nj=float(sum(kept)),
                          area_mm2=0.01 * sum(kept), layout_dir=layout, ratios=list(ratios),
                          layer_names=list(NAMES), layer_crossbars=kept, layer_dense_crossbars=list(DENSE),
                          finetune_seconds=0.0)


def toy_config(epsilon: float = 0.05, marker: str | None = None) -> dict[str, Any]:
    return {"env": {"pmax": 0.8, "penalty": 2.0, "fail_once_marker": marker}, "epsilon": epsilon}


def test_toy_env_passes_gymnasium_check_env():
    check_env(ToyPruningEnv(toy_config()), skip_render_check=True)


def test_toy_zero_policy_keeps_every_crossbar_and_the_baseline_accuracy():
    kept, cr, accuracy = toy_price([0.0, 0.0, 0.0, 0.0])
    assert (kept, cr, accuracy) == (list(DENSE), 1.0, BASELINE)


def test_toy_half_policy_halves_the_crossbars():
    kept, cr, _ = toy_price([0.5, 0.5, 0.5, 0.5])
    assert kept == [2, 4, 4, 1] and cr == 22 / 11
