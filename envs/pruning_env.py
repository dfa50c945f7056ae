"""The pruning search as a gymnasium environment (docs/platform.md), one env per RLlib env runner.

An episode walks the layers that can free a crossbar (envs/search_space.py), in model order;
each step's action is that layer's pruning ratio, snapped down to its crossbar breakpoint (and, under
env.formulation=budget, raised by the crossbar budget's action wall: envs/formulation.py). The
reward arrives at the last step, after the whole policy has been applied, the pruned model
recovered (envs/recovery.py), evaluated on the search split (in software or on the crossbar
simulator) and priced by the crossbar cost model: the agent learns from the hardware's direct
feedback.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.confirmation import BestConfirmation
from envs.embedding import N_FEATURES, observation, static_features
from envs.episode import EpisodeEvaluator
from envs.formulation import episode_formulation
from envs.search_context import SearchContext, search_context
from envs.sensitivity import (
    cached_probe,
    measure_probe,
    prior_ratios,
    probe_losses,
    sensitivity_feature,
)
from envs.settings import EnvSettings


@dataclass(frozen=True)
class ActionPrior:
    """Where a fresh policy explores, in ratio units: an action a means ratio mean + std * a.

    RLlib's Gaussian policy starts at mean 0 and sigma 1 in its own units; on a Box(0, pmax) it
    would propose ratios with mean pmax/2 and a fifth of them clipped at each bound, far past
    what a network tolerates without fine-tuning. With a prior it starts at N(mean, std) in
    ratio units, around a safe ratio, and learns from there.
    """

    mean: float
    std: float
    centres: tuple[float, ...] | None = None  # per step, from the sensitivity probe (envs/sensitivity.py)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and self.mean >= 0.0) or not (math.isfinite(self.std) and self.std > 0.0):
            raise ValueError(f"action_prior needs a mean >= 0 and a std > 0 in ratio units, got {self}")

    def ratio(self, action: float, step: int) -> float:
        centre = self.mean if self.centres is None else self.centres[step]
        return centre + self.std * action

    def space(self, pmax: float) -> gym.spaces.Box:
        """The actions that reach every ratio in [0, pmax] at every step."""
        centres = (self.mean,) if self.centres is None else self.centres
        return gym.spaces.Box(-max(centres) / self.std, (pmax - min(centres)) / self.std, (1,), np.float32)


class PruningEnv(gym.Env):
    """Continuous per-layer pruning ratios in [0, pmax]; terminal reward from accuracy and crossbars.

    env_config: the resolved experiment config as a dict (sections model, data, hw, mapping,
    env, paths, seed) plus `epsilon`, the accuracy-loss constraint, and optionally
    `action_prior` ({"mean", "std"} in ratio units, see ActionPrior). Expensive state (data,
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
        self.space = self.evaluator.space
        settings = self.settings
        self.confirmation = BestConfirmation(self.evaluator, settings.confirm_best)
        self.formulation = episode_formulation(settings.formulation, self.space, settings.budget_start_cr,
                                               settings.budget_round_episodes, settings.budget_step)
        layers = [self.context.layers[i] for i in self.space.searchable]
        # Crossbars only fall as a ratio grows, so a layer saves the most at pmax.
        savings = [self.evaluator.saved_crossbars(i, self.settings.pmax) for i in self.space.searchable]
        self.probe_records = self._sensitivity_probe(env_config)
        losses = probe_losses(self.probe_records) if self.probe_records is not None else None
        self._static = static_features(layers, savings, None if losses is None
                                       else sensitivity_feature(losses, settings.epsilon).tolist())
        self._total_dense = float(self.context.layer_dense_crossbars.sum())
        self._searched_dense = self.context.layer_dense_crossbars[list(self.space.searchable)]
        self.observation_space = gym.spaces.Box(0.0, 1.0, (N_FEATURES,), np.float32)
        prior = env_config.get("action_prior")
        self.prior = None
        if prior is not None:
            centres = None if losses is None else tuple(prior_ratios(losses, settings.epsilon, float(prior["mean"]),
                                                                     settings.pmax))
            self.prior = ActionPrior(float(prior["mean"]), float(prior["std"]), centres)
        self.action_space = (self.prior.space(self.settings.pmax) if self.prior is not None
                             else gym.spaces.Box(0.0, self.settings.pmax, (1,), np.float32))
        self._ratios: list[float] = []
        self._saved = 0.0

    @property
    def reference_accuracy(self) -> float:
        """The unpruned model's search accuracy as episodes measure it (pass it on as env_config's
        `reference_accuracy` so other envs of the same config skip measuring it)."""
        return self.evaluator.reference_accuracy

    @property
    def baseline_entry(self) -> Path:
        """The baseline's cache folder, which the driver publishes to env runners on other nodes."""
        return self.context.baseline.entry

    @property
    def probe_episodes(self) -> int:
        """Evaluated episodes the sensitivity probe cost (counted against search.episodes, cached or not)."""
        return 0 if self.probe_records is None else len(self.probe_records)

    def _sensitivity_probe(self, env_config: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        """env.sensitivity_probe's records: handed over by the driver, read from the baseline's cache, or measured."""
        ratio = self.settings.sensitivity_probe
        if ratio is None:
            return None
        given = env_config.get("sensitivity_probe_records")
        if given is not None:
            if len(given) != self.space.size:
                raise ValueError(f"env_config sensitivity_probe_records holds {len(given)} records for "
                                 f"{self.space.size} searchable layers")
            return [dict(record) for record in given]
        settings = self.settings
        key = {"layers": self.space.size, "ratio": float(ratio), "searchable": list(self.space.searchable),
               "scoring": repr(self.evaluator.scoring_key()), "granularity": settings.granularity,
               "packing": settings.packing, "pmax": settings.pmax, "snap": settings.snap,
               "seed": self.context.seed}
        return cached_probe(self.context.baseline.entry, key, lambda: measure_probe(self.evaluator, float(ratio)))

    @property
    def num_layers(self) -> int:
        """Steps per episode: one per layer offered to the search."""
        return self.space.size

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._ratios = []
        self._saved = 0.0
        self.formulation.begin()
        return self._observation(), {}

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        if len(self._ratios) >= self.num_layers:
            raise RuntimeError("step() called after the episode ended; call reset()")
        value = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        step = len(self._ratios)
        if self.prior is not None:
            value = self.prior.ratio(value, step)
        ratio = self.formulation.constrain(step, value)  # snapped, and walled under a budget
        self._saved += self.evaluator.saved_crossbars(self.space.searchable[step], ratio)
        self._ratios.append(ratio)
        if len(self._ratios) < self.num_layers:
            return self._observation(), 0.0, False, False, {}
        result = self.confirmation.review(self.evaluator.evaluate_policy(self._ratios))
        result.budget_cr = self.formulation.target_cr
        self.formulation.finish(result.feasible)
        return self._observation(), result.reward, True, False, result.info()

    def _observation(self) -> np.ndarray:
        """The current layer's static features, then the crossbars pruning has saved so far, those
        of the layers still to come (both as fractions of the dense model's) and the previous action."""
        step = min(len(self._ratios), self.num_layers - 1)
        done = len(self._ratios) >= self.num_layers
        remaining = 0.0 if done else float(self._searched_dense[step + 1:].sum()) / self._total_dense
        previous = self._ratios[-1] / self.settings.pmax if self._ratios else 0.0
        target = self.formulation.target_cr
        return observation(self._static, step, float(np.clip(self._saved / self._total_dense, 0, 1)),
                           remaining, previous, 1.0 / target if target else 0.0)


def given_reference(env_config: Mapping[str, Any]) -> float | None:
    value = env_config.get("reference_accuracy")
    if value is None:
        return None
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"env_config reference_accuracy must be an accuracy in [0, 1], got {value}")
    return float(value)
