"""The pruning search as a gymnasium environment (DESIGN §6), one env per RLlib env runner.

An episode walks the prunable layers in order; each step's action is that layer's pruning
ratio. The reward arrives at the last step, after the whole policy has been applied,
evaluated on the search split (in software or on the crossbar simulator) and priced by the
crossbar cost model: the agent learns from the hardware's direct feedback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.embedding import N_FEATURES, observation
from envs.episode import EpisodeEvaluator
from envs.search_context import SearchContext, search_context
from envs.settings import EnvSettings


class PruningEnv(gym.Env):
    """Continuous per-layer pruning ratios in [0, pmax]; terminal reward from accuracy and crossbars.

    env_config: the resolved experiment config as a dict (sections model, data, hw, mapping,
    env, paths, seed) plus `epsilon`, the accuracy-loss constraint. Expensive state (data,
    trained baseline, layer table, dense pricing) is built once per process and shared by
    every env built from the same config.
    """

    metadata = {"render_modes": []}

    def __init__(self, env_config: Mapping[str, Any]) -> None:
        super().__init__()
        self.settings = EnvSettings.from_config(env_config)
        self.worker_index = int(getattr(env_config, "worker_index", 0))
        # Each env runner evaluates with its own threads; runners x threads <= cores, or every
        # evaluation slows down (set deliberately: Ray's OMP_NUM_THREADS default is only a default).
        torch.set_num_threads(self.settings.torch_threads)
        self.context: SearchContext = search_context(env_config)
        self.evaluator = EpisodeEvaluator(self.context, self.settings, given_reference(env_config))
        self.observation_space = gym.spaces.Box(0.0, 1.0, (N_FEATURES,), np.float32)
        self.action_space = gym.spaces.Box(0.0, self.settings.pmax, (1,), np.float32)
        self._ratios: list[float] = []
        self._saved = 0.0
        self._reset_called = False

    @property
    def reference_accuracy(self) -> float:
        """The unpruned model's search accuracy as episodes measure it (pass it on as env_config's
        `reference_accuracy` so other envs of the same config skip measuring it)."""
        return self.evaluator.reference_accuracy

    @property
    def num_layers(self) -> int:
        return len(self.context.layers)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._maybe_fail_once()
        self._ratios = []
        self._saved = 0.0
        return self._observation(), {}

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        if len(self._ratios) >= self.num_layers:
            raise RuntimeError("step() called after the episode ended; call reset()")
        value = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        ratio = float(np.clip(value, 0.0, self.settings.pmax)) if np.isfinite(value) else 0.0
        layer = len(self._ratios)
        dense = self.context.layer_dense_crossbars[layer]
        self._saved += dense - self.evaluator.estimated_crossbars(layer, ratio)
        self._ratios.append(ratio)
        if len(self._ratios) < self.num_layers:
            return self._observation(), 0.0, False, False, {}
        result = self.evaluator.evaluate(self._ratios)
        return self._observation(), result.reward, True, False, result.info()

    def _observation(self) -> np.ndarray:
        step = min(len(self._ratios), self.num_layers - 1)
        dense = self.context.layer_dense_crossbars
        total = float(dense.sum())
        remaining = float(dense[step + 1:].sum()) / total if len(self._ratios) < self.num_layers else 0.0
        previous = self._ratios[-1] / self.settings.pmax if self._ratios else 0.0
        return observation(self.context.static_features, step, float(np.clip(self._saved / total, 0, 1)),
                           remaining, previous)

    def _maybe_fail_once(self) -> None:
        """Test-only fault injection: env runner 1 dies once, so fault tolerance can be proven."""
        marker = self.settings.fail_once_marker
        if self._reset_called or not marker or self.worker_index != 1:
            self._reset_called = True
            return
        self._reset_called = True
        path = Path(marker)
        if not path.exists():
            path.write_text(f"env runner {self.worker_index} (pid {os.getpid()}) exited on purpose\n")
            os._exit(1)


def given_reference(env_config: Mapping[str, Any]) -> float | None:
    value = env_config.get("reference_accuracy")
    if value is None:
        return None
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"env_config reference_accuracy must be an accuracy in [0, 1], got {value}")
    return float(value)
