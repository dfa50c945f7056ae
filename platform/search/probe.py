"""Build the environment once in the driver, before any trial starts.

This fails fast on an invalid env config (the env validates at construction), trains or
loads the cached baseline once with all the driver's cores (instead of in every env
runner at once), and tells the agent the episode length (one step per prunable layer).
"""

from __future__ import annotations

import copy
import gc
import os
from typing import Any

import numpy as np

from platform.search.agents import EpisodeShape

LAYER_ATTRIBUTES = ("num_layers", "n_layers")


def probe_env(env_class: type, env_config: dict[str, Any]) -> EpisodeShape:
    """The episode length of ``env_class``: an attribute when it has one, else one zero-ratio episode."""
    config = copy.deepcopy(env_config)
    config["env"] = {**config["env"], "torch_threads": os.cpu_count() or 1}
    env = env_class(config)
    try:
        for name in LAYER_ATTRIBUTES:
            value = getattr(env, name, None)
            if isinstance(value, int) and value > 0:
                entry = getattr(env, "baseline_entry", None)
                return EpisodeShape(layers=value, reference_accuracy=getattr(env, "reference_accuracy", None),
                                    baseline_entry=str(entry) if entry is not None else None,
                                    probe_records=getattr(env, "probe_records", None))
        env.reset(seed=0)
        action = np.zeros(env.action_space.shape, dtype=env.action_space.dtype)
        steps, done = 0, False
        while not done:
            _, _, terminated, truncated, _ = env.step(action)
            steps += 1
            done = terminated or truncated
        return EpisodeShape(layers=steps)
    finally:
        env.close()
        del env
        gc.collect()
