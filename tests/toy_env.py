"""Test doubles that Ray workers import: a toy environment and finalizer, and a pruning env that fails once.

The platform's Ray/Tune/MLflow wiring is tested against the toy (``search.env.path=`` and
``final.finalize.path=`` point here) so that its tests take seconds per episode, not a
model evaluation each. The toy prices a 4-layer model: layer l has ``DENSE[l]`` dense
crossbars and keeps ``ceil(DENSE[l] * (1 - ratio))`` of them; accuracy loss grows with
the squared ratios. `FailingOncePruningEnv` is the real env whose env runner 1 dies at its
first reset, for the fault-tolerance test; the production env carries no test hook. Env
runners import this module, which is why tests/ is a package; it is not a test module, so
pytest does not collect it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from envs.finalize import FinalResult
from envs.pruning_env import PruningEnv
from envs.result import EpisodeResult

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
        info = EpisodeResult(
            reward=reward, accuracy=accuracy, baseline_accuracy=BASELINE, delta_acc=delta, feasible=feasible,
            compression_rate=cr, packing_gain=1.0, pruning_gain=cr, crossbars=sum(kept), dense_crossbars=sum(DENSE),
            energy_nj=float(sum(kept)), area_mm2=0.01 * sum(kept), area_efficiency_gain=cr, energy_efficiency_gain=cr,
            flops_compression=cr, params_compression=cr, weight_sparsity=sum(self.ratios) / len(self.ratios),
            ratios=list(self.ratios), layer_names=list(NAMES), on_hardware=False, stopped_early=False,
            eval_seconds=0.0, episode_seconds=0.0).info()
        return self._obs(), reward, True, False, info


def toy_finalize(config: dict, ratios: list[float], epsilon: float, out_dir: Path) -> FinalResult:
    """Prices the policy and saves a one-file 'layout' whose manifest lists the crossbars."""
    kept, cr, accuracy = toy_price(ratios)
    layout = Path(out_dir) / "layout"
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "manifest.json").write_text(json.dumps({"layers": dict(zip(NAMES, kept, strict=True))}))
    return FinalResult(
        epsilon=epsilon, ratios=list(ratios), layer_names=list(NAMES), search_accuracy=accuracy,
        test_accuracy=accuracy, test_accuracy_hardware=None, baseline_test_accuracy=BASELINE,
        delta_acc=BASELINE - accuracy, compression_rate=cr, packing_gain=1.0, pruning_gain=cr, crossbars=sum(kept),
        dense_crossbars=sum(DENSE), energy_nj=float(sum(kept)), area_mm2=0.01 * sum(kept), area_efficiency_gain=cr,
        energy_efficiency_gain=cr, utilization=1.0, finetune_seconds=0.0, layout_dir=str(layout))


def toy_config(epsilon: float = 0.05) -> dict[str, Any]:
    return {"env": {"pmax": 0.8, "penalty": 2.0}, "epsilon": epsilon}


FAIL_ONCE_MARKER = "AUTO_PRUNE_TEST_FAIL_ONCE"  # environment variable: the marker file's path


class FailingOncePruningEnv(PruningEnv):
    """The pruning env, except that env runner 1 exits at its first reset while the marker file
    named by $AUTO_PRUNE_TEST_FAIL_ONCE is absent (Ray workers inherit the driver's environment)."""

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        marker = os.environ.get(FAIL_ONCE_MARKER)
        if marker and self.worker_index == 1 and not Path(marker).exists():
            Path(marker).write_text(f"env runner {self.worker_index} (pid {os.getpid()}) exited on purpose\n")
            os._exit(1)
        return super().reset(seed=seed, options=options)
