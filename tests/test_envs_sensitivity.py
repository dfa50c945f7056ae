"""The layer sensitivity probe: what it measures, how it is cached and checked, and what the agent gets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import envs.pruning_env as pruning_env_module
from envs.embedding import STATIC_FEATURES
from envs.pruning_env import ActionPrior, PruningEnv
from envs.sensitivity import (
    PROBE_FILE,
    cached_probe,
    history_records,
    prior_ratios,
    probe_vectors,
    sensitivity_feature,
)
from envs.settings import EnvSettings
from tests.test_envs_pruning_env import env_config

SENSITIVITY = STATIC_FEATURES.index("sensitivity")


def test_each_probe_vector_prunes_one_layer_alone():
    assert probe_vectors(3, 0.5) == [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5]]


def test_the_prior_keeps_its_mean_and_gives_robust_layers_more():
    centres = prior_ratios([0.0, 0.01, 0.03], epsilon=0.01, mean=0.3, pmax=0.8)
    assert centres[0] > centres[1] > centres[2]
    assert np.mean(centres) == pytest.approx(0.3)
    assert centres[0] == pytest.approx(2 * centres[1])  # the layer costing epsilon gets half
    assert max(prior_ratios([0.0, 1.0], epsilon=0.01, mean=0.7, pmax=0.8)) == 0.8  # capped at pmax


def test_the_feature_is_the_loss_in_epsilons_clipped_to_one():
    assert sensitivity_feature([-0.002, 0.005, 0.02], 0.01).tolist() == [0.0, 0.5, 1.0]


def trial_settings(epsilon: float) -> EnvSettings:
    return EnvSettings.from_config({"epsilon": epsilon, "env": {}})


def test_probe_records_enter_a_history_scored_by_each_trials_epsilon():
    records = [{**stored(1)[0], "delta_acc": 0.004, "compression_rate": 1.1, "reward": 7.0}]
    loose, tight = history_records(records, trial_settings(0.01))[0], history_records(records, trial_settings(0.002))[0]
    assert loose["feasible"] and not tight["feasible"] and loose["probe"]
    assert loose["reward"] == pytest.approx(math.log(1.1)) and -1.0 < tight["reward"] < 0.0  # envs/rewards.py


@pytest.mark.parametrize("value", [0.0, -0.1, 0.9, float("nan"), "half"])
def test_a_bad_probe_ratio_is_refused_naming_the_setting(value):
    with pytest.raises(ValueError, match="env.sensitivity_probe"):
        EnvSettings(sensitivity_probe=value, pmax=0.8)


def test_an_action_prior_with_centres_centres_each_step_and_spans_all_ratios():
    prior = ActionPrior(0.3, 0.1, (0.2, 0.4))
    assert prior.ratio(0.0, 0) == pytest.approx(0.2) and prior.ratio(1.0, 1) == pytest.approx(0.5)
    space = prior.space(0.8)
    assert prior.ratio(float(space.low[0]), 1) <= 0.0 and prior.ratio(float(space.high[0]), 0) >= 0.8


def probe_key(layers=2):
    return {"layers": layers, "ratio": 0.5, "scoring": "x"}


def stored(layers=2):
    return [{"delta_acc": 0.01 * i, "compression_rate": 1.0 + i, "crossbars": 5, "vector": [0.5],
             "flops_compression": 1.0, "params_compression": 1.0, "area_efficiency_gain": 1.0,
             "energy_efficiency_gain": 1.0} for i in range(layers)]


def test_the_probe_is_measured_once_then_read_back(tmp_path):
    calls = []
    first = cached_probe(tmp_path, probe_key(), lambda: calls.append(1) or stored())
    again = cached_probe(tmp_path, probe_key(), lambda: calls.append(1) or stored())
    assert first == again == stored() and len(calls) == 1
    assert len(list(tmp_path.glob(PROBE_FILE.format("*")))) == 1


@pytest.mark.parametrize("tamper", ["truncate", "nan", "short", "other-key"])
def test_a_probe_file_that_does_not_check_out_is_measured_again(tmp_path, tamper):
    cached_probe(tmp_path, probe_key(), stored)
    path = next(tmp_path.glob(PROBE_FILE.format("*")))
    content = json.loads(path.read_text())
    if tamper == "truncate":
        path.write_text(path.read_text()[:40])
    else:
        if tamper == "nan":
            content["records"][1]["delta_acc"] = float("nan")
        elif tamper == "short":
            content["records"] = content["records"][:1]
        else:
            content["key"]["ratio"] = 0.4
        path.write_text(json.dumps(content))
    fresh = [{**record, "delta_acc": 0.5} for record in stored()]
    assert cached_probe(tmp_path, probe_key(), lambda: fresh) == fresh


def test_the_env_probes_each_layer_alone_and_shows_the_agent_its_losses(baseline_cache, monkeypatch):
    config = {**env_config(baseline_cache, epsilon=0.02, sensitivity_probe=0.5),
              "action_prior": {"mean": 0.25, "std": 0.1}}
    env = PruningEnv(config)
    records = env.probe_records
    assert env.probe_episodes == len(records) == env.num_layers
    # Each record is the full (not early-stopped) score of that layer alone, as an episode scores it.
    evaluator = env.evaluator
    evaluator.settings.early_stop = False
    for layer, record in enumerate(records):
        vector = [0.0] * env.num_layers
        vector[layer] = 0.5
        assert record["delta_acc"] == pytest.approx(evaluator.evaluate_policy(vector).delta_acc)
    losses = [record["delta_acc"] for record in records]
    observed = [env._static[step, SENSITIVITY] for step in range(env.num_layers)]
    if max(losses) > min(losses):
        assert int(np.argmax(observed)) == int(np.argmax(sensitivity_feature(losses, 0.02)))
    assert env.prior.centres == tuple(prior_ratios(losses, 0.02, 0.25, env.settings.pmax))

    # A second env of the same config reads the probe from the baseline's cache entry.
    monkeypatch.setattr(pruning_env_module, "measure_probe", lambda *a: pytest.fail("measured again"))
    assert PruningEnv(config).probe_records == records
    # ... and one given the driver's records takes them as they are.
    given = PruningEnv({**config, "sensitivity_probe_records": records})
    assert given.probe_records == records


def test_without_the_probe_the_feature_is_zero_and_nothing_is_measured(baseline_cache, monkeypatch):
    monkeypatch.setattr(pruning_env_module, "measure_probe", lambda *a: pytest.fail("probed"))
    env = PruningEnv(env_config(baseline_cache))
    assert env.probe_records is None and env.probe_episodes == 0
    assert not env._static[:, SENSITIVITY].any()


def test_a_history_opened_by_the_probe_plots_and_counts_its_episodes(tmp_path):
    from platform.compare import best_cr_curve
    from platform.reports import plots

    probe = {"iteration": 0, "probe": True, "records": history_records(stored(2), trial_settings(0.005))}
    search = {"iteration": 1, "episodes": 1, "best_cr": 1.5, "reward_mean": -0.1,
              "records": [{"reward": -0.1, "feasible": True, "compression_rate": 1.5}]}
    assert plots.search_curves(tmp_path / "search.png", [probe, search], "t").is_file()
    # The probe's feasible single-layer policy (CR 1.0 here, loss 0) and the search's first episode.
    assert best_cr_curve([probe, search]) == [(1, 1.0), (2, 1.0), (3, 1.5)]
