"""Random search and TPE over the per-layer ratio vector, through Ray Tune's OptunaSearch.

The searcher is driven directly (``suggest`` / ``on_trial_complete``) inside one trial per
constraint rather than as one Tune trial per episode: an episode costs seconds, while a Tune
trial would rebuild the data, the baseline and the layer table every time.
"""

from __future__ import annotations

import itertools

import optuna
from ray.tune.search.optuna import OptunaSearch

from platform.search.methods.heuristics import Proposals

REWARD = "reward"


def sampler(method: str, seed: int, startup_episodes: int) -> optuna.samplers.BaseSampler:
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_episodes)
    raise ValueError(f"no Optuna sampler for method {method!r}: expected 'random' or 'tpe'")


def layer_key(layer: int) -> str:
    return f"ratio_{layer:04d}"


def optuna_proposals(method: str, layers: int, pmax: float, seed: int, startup_episodes: int = 10) -> Proposals:
    """Yield ratio vectors from the searcher; each received record's reward is what it maximises."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {layer_key(i): optuna.distributions.FloatDistribution(0.0, pmax) for i in range(layers)}
    searcher = OptunaSearch(space=space, metric=REWARD, mode="max",
                            sampler=sampler(method, seed, startup_episodes))
    for index in itertools.count():
        trial_id = str(index)
        suggestion = searcher.suggest(trial_id)
        record = yield [float(suggestion[layer_key(i)]) for i in range(layers)]
        searcher.on_trial_complete(trial_id, {REWARD: float(record["reward"])})
