"""The platform's pure parts: running bests, resource arithmetic, history, params and the summary."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys

import pytest

from envs.result import EpisodeResult
from platform.cluster import ResourceError, check_resources, worker_runtime_env
from platform.config import REPO_ROOT
from platform.reports.summary import format_table, summary_row
from platform.reports.tracking import config_params
from platform.search.bests import FINALISTS_KEPT, RunningBests, episode_record
from platform.search.finalists import recheck_finalists
from platform.search.sweep import TrialOutcome
from platform.search.sweep_folders import append_history, read_history, trial_key


def record(cr: float, accuracy: float, feasible: bool, reward: float = 0.0, reason: str = "") -> dict:
    """A complete episode record (envs/result.py) with the fields these tests vary."""
    return EpisodeResult(
        reward=reward, accuracy=accuracy, baseline_accuracy=0.9, delta_acc=0.9 - accuracy, feasible=feasible,
        compression_rate=cr, packing_gain=1.0, pruning_gain=cr, crossbars=10, dense_crossbars=round(10 * cr),
        energy_nj=1.0, area_mm2=1.0, area_efficiency_gain=cr, energy_efficiency_gain=cr, flops_compression=cr,
        params_compression=cr, weight_sparsity=0.15, ratios=[0.1, 0.2], layer_names=["a", "b"], on_hardware=False,
        stopped_early=False, eval_seconds=0.0, episode_seconds=0.0, reason=reason).info()


def test_running_bests_keep_the_highest_feasible_cr_across_iterations():
    bests = RunningBests()
    bests.update([record(2.0, 0.88, True), record(5.0, 0.50, False)])
    bests.update([record(1.5, 0.89, True)])
    assert bests.best_cr == 2.0 and bests.best_episode == 1
    assert bests.episodes == 3 and bests.feasible_fraction == pytest.approx(2 / 3)
    assert bests.history_best_cr == [2.0, 2.0]


def test_equal_cr_prefers_the_more_accurate_policy():
    bests = RunningBests()
    bests.update([record(2.0, 0.85, True), record(2.0, 0.87, True)])
    assert bests.best["accuracy"] == 0.87


def test_an_episode_ended_by_a_nan_loss_is_never_the_best():
    bests = RunningBests()
    bests.update([record(9.0, 0.9, True, reason="nan_loss")])
    assert bests.best is None and bests.best_cr == 0.0


def test_running_bests_survive_a_round_trip_through_a_checkpoint_dict():
    bests = RunningBests()
    bests.update([record(3.0, 0.88, True, reward=1.1)])
    again = RunningBests.from_dict(bests.to_dict())
    assert again == bests and again.metrics([])["best_cr"] == 3.0


def test_iteration_metrics_report_means_of_this_iteration_and_bests_so_far():
    bests = RunningBests()
    records = [record(2.0, 0.88, True, reward=1.0), record(1.0, 0.8, False, reward=-1.0)]
    bests.update(records)
    metrics = bests.metrics(records)
    this_iter = (metrics["reward_mean"], metrics["reward_max"], metrics["feasible_fraction_this_iter"])
    assert this_iter == (0.0, 1.0, 0.5)
    assert metrics["best"]["ratios"] == [0.1, 0.2] and metrics["best"]["episode"] == 1


def test_episode_records_turn_numpy_values_into_python_values():
    import numpy as np

    from tests.toy_env import ToyPruningEnv, toy_config

    env = ToyPruningEnv(toy_config())
    env.reset(seed=0)
    for _ in range(env.num_layers):
        *_, info = env.step(np.array([0.5], np.float32))
    info = {**info, "compression_rate": np.float64(2.0), "feasible": np.bool_(True),
            "ratios": np.array([0.5, 0.25, 0.0, 0.0]), "accuracy": np.float32(0.5), "unrelated": object()}
    rec = episode_record(info, np.float64(0.7))
    assert (rec["compression_rate"], rec["feasible"], rec["ratios"], rec["accuracy"], rec["reward"]) == (
        2.0, True, [0.5, 0.25, 0.0, 0.0], 0.5, 0.7)
    assert type(rec["feasible"]) is bool and type(rec["compression_rate"]) is float
    assert "unrelated" not in rec


def test_an_episode_info_that_lacks_a_field_is_refused_by_name():
    from tests.toy_env import ToyPruningEnv, toy_config

    env = ToyPruningEnv(toy_config())
    env.reset(seed=0)
    for _ in range(env.num_layers):
        *_, info = env.step([0.1])
    del info["pruning_gain"]
    with pytest.raises(ValueError, match="pruning_gain"):
        episode_record(info, 0.0)


def test_two_trials_of_two_cpus_fit_on_four_cpus():
    assert check_resources({"CPU": 2.0}, {"CPU": 4.0, "memory": 1e9}) == 2


def test_a_trial_larger_than_the_cluster_is_refused_with_both_numbers():
    with pytest.raises(ResourceError, match="one trial asks for 9 CPU but the Ray cluster has 2"):
        check_resources({"CPU": 9.0}, {"CPU": 2.0})


def test_workers_get_the_repo_root_first_on_their_pythonpath_and_a_passive_openmp(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert worker_runtime_env("/repo") == {"env_vars": {"PYTHONPATH": "/repo:/elsewhere", "OMP_WAIT_POLICY": "PASSIVE"}}
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # a user's own choice is kept
    assert worker_runtime_env("/repo")["env_vars"]["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.slow  # a subprocess per entry point
@pytest.mark.parametrize("entry_point", ["platform.launch", "platform.compare", "platform.inspect",
                                         "envs.workload.train_baseline"])
def test_entry_points_set_the_openmp_wait_policy_before_torch_loads(entry_point):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    timing = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {entry_point}"], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=120, check=True).stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in timing.splitlines()]
    assert imported.index("envs.openmp") < imported.index("torch")


def test_history_keeps_the_last_line_of_a_replayed_iteration(tmp_path):
    for iteration, value in [(1, 1.0), (2, 2.0), (2, 2.5), (3, 3.0)]:
        append_history(tmp_path, "eps_0.02", {"iteration": iteration, "best_cr": value})
    assert [line["best_cr"] for line in read_history(tmp_path, "eps_0.02")] == [1.0, 2.5, 3.0]


def test_trial_keys_name_the_constraint():
    assert trial_key(0.02) == "eps_0.02" and trial_key(0.1) == "eps_0.1"


def test_params_are_a_small_flat_subset_of_the_config():
    plain = {"seed": 1, "model": {"name": "m"}, "data": {"name": "d"}, "mapping": {"granularity": "ou_row"},
             "env": {"pmax": 0.8}, "final": {"finetune_epochs": 1, "finalize": {"_target_": "f"}},
             "hw": {"name": "isaac", "xbar_rows": 128, "costs": {"adc_energy_pj": 1.0}},
             "agent": {"name": "ppo", "lr": 0.1, "ppo": {"num_epochs": 3}, "sac": {"tau": 0.1}},
             "search": {"episodes": 5, "constraints": [0.1]}, "ray": {"num_env_runners": 2, "address": None},
             "tracking": {"uri": None}, "paths": {"root": "/r"}}
    params = config_params(plain)
    assert params["hw.name"] == "isaac" and params["agent.ppo.num_epochs"] == "3"
    assert params["final.finetune_epochs"] == "1"
    assert not any(k.startswith(("hw.costs", "agent.sac", "tracking", "paths", "final.finalize")) for k in params)
    assert len(params) < 20


def test_summary_table_has_one_row_per_constraint_with_the_final_numbers():
    outcome = TrialOutcome(epsilon=0.02, key="eps_0.02", finished=True, error=None, episodes=24,
                           wall_time_s=30.0, best=record(2.0, 0.88, True), feasible_fraction=0.5,
                           trial_path="/x")
    final = {"test_accuracy": 0.875, "delta_acc": 0.015, "compression_rate": 2.5, "packing_gain": 1.25,
             "pruning_gain": 2.0, "crossbars": 40, "area_efficiency_gain": 2.2, "energy_efficiency_gain": 1.9}
    row = summary_row(outcome, final, finalize_seconds=5.0)
    assert (row.accuracy, row.compression_rate, row.wall_time_s, row.status) == (0.875, 2.5, 35.0, "done")
    assert row.packing_gain * row.pruning_gain == row.compression_rate
    table = format_table([row]).splitlines()
    assert table[0].split() == ["ε", "accuracy", "Δacc", "CR", "packing", "pruning", "crossbars", "area", "eff.",
                                "energy", "eff.", "episodes", "wall", "time", "status"]
    assert table[2].split() == ["0.02", "0.8750", "+0.0150", "2.500", "1.250", "2.000", "40", "2.200", "1.900",
                                "24", "35", "s", "done"]


def test_under_device_variation_the_table_gives_the_winners_varied_accuracy_beside_the_ideal():
    outcome = TrialOutcome(epsilon=0.01, key="eps_0.01", finished=True, error=None, episodes=8,
                           wall_time_s=3.0, best=record(2.0, 0.88, True), feasible_fraction=0.5, trial_path="/x")
    final = {"test_accuracy": 0.875, "delta_acc": 0.015, "compression_rate": 2.0,
             "variation": {"test_accuracy_mean": 0.861, "test_accuracy_worst": 0.84}}
    row = summary_row(outcome, final)
    assert (row.variation_mean, row.variation_worst) == (0.861, 0.84)
    table = format_table([row]).splitlines()
    assert table[0].split()[:6] == ["ε", "accuracy", "acc.", "varied", "(mean)", "(worst)"]
    assert table[2].split()[:4] == ["0.01", "0.8750", "0.8610", "0.8400"]


def test_a_trial_without_a_feasible_policy_says_so():
    outcome = TrialOutcome(epsilon=0.01, key="eps_0.01", finished=True, error=None, episodes=24,
                           wall_time_s=30.0, best=None, feasible_fraction=0.0, trial_path="/x")
    row = summary_row(outcome, None)
    assert row.status == "no feasible policy" and math.isnan(row.compression_rate)


def policy(cr: float, accuracy: float, ratios: list[float], feasible: bool = True) -> dict:
    return {**record(cr, accuracy, feasible), "ratios": ratios}


def test_finalists_are_the_best_distinct_feasible_policies_best_first():
    bests = RunningBests()
    bests.update([policy(2.0, 0.88, [0.1]), policy(3.0, 0.80, [0.2], feasible=False), policy(1.5, 0.89, [0.3])])
    bests.update([policy(2.0, 0.88, [0.1]), policy(2.5, 0.87, [0.4])])  # a repeated policy counts once
    assert [f["ratios"] for f in bests.finalists] == [[0.4], [0.1], [0.3]]
    assert [f["ratios"] for f in bests.metrics([])["finalists"]] == [[0.4], [0.1], [0.3]]


def test_only_the_best_few_finalists_are_kept():
    bests = RunningBests()
    bests.update([policy(1.0 + i / 10, 0.88, [i / 100]) for i in range(FINALISTS_KEPT + 5)])
    assert len(bests.finalists) == FINALISTS_KEPT
    assert bests.finalists[0]["compression_rate"] == pytest.approx(1.0 + (FINALISTS_KEPT + 4) / 10)


def fake_rechecker(monkeypatch, passes) -> list:
    """envs.finalize.rechecker replaced: a policy [r] re-scores at CR 1 + 5r, feasible where passes(r)."""
    import envs.finalize

    calls: list = []

    def rechecker(config, epsilon):
        def check(ratios):
            calls.append(list(ratios))
            feasible = passes(ratios[0])
            return {**policy(1.0 + 5 * ratios[0], 0.89 if feasible else 0.87, list(ratios), feasible), "reward": 0.0}
        return check

    monkeypatch.setattr(envs.finalize, "rechecker", rechecker)
    return calls


def searched(*ratios: float) -> TrialOutcome:
    finalists = [policy(1.0 + 5 * r, 0.89, [r]) for r in ratios]
    return TrialOutcome(epsilon=0.01, key="eps_0.01", finished=True, error=None, episodes=24, wall_time_s=1.0,
                        best=finalists[0], feasible_fraction=0.5, trial_path="/x", finalists=finalists)


def test_the_recheck_keeps_the_best_finalist_that_stays_feasible_on_the_whole_split(monkeypatch, tmp_path):
    calls = fake_rechecker(monkeypatch, lambda r: r < 0.5)  # the noisy winner fails
    plain = {"final": {"recheck": 2}}
    chosen = recheck_finalists(plain, searched(0.5, 0.4, 0.3), tmp_path)
    assert calls == [[0.5], [0.4]]  # final.recheck = 2: the best two only
    assert chosen.best["ratios"] == [0.4] and chosen.best["accuracy"] == 0.89
    assert recheck_finalists(plain, searched(0.5, 0.4, 0.3), tmp_path).best == chosen.best and len(calls) == 2


def test_when_the_best_few_all_fail_a_bisection_finds_the_highest_cr_that_passes(monkeypatch, tmp_path):
    ratios = [0.7 - 0.01 * i for i in range(40)]  # 0.70 down to 0.31, CR descending
    calls = fake_rechecker(monkeypatch, lambda r: r <= 0.525)
    chosen = recheck_finalists({"final": {"recheck": 3}}, searched(*ratios), tmp_path)
    assert chosen.best["ratios"] == [pytest.approx(0.52)]  # the highest passing of the 37 left
    assert len(calls) <= 3 + math.ceil(math.log2(37 + 1))  # not all 40


def test_without_bisection_failing_finalists_mean_no_feasible_policy(monkeypatch, tmp_path):
    calls = fake_rechecker(monkeypatch, lambda r: r <= 0.3)
    assert recheck_finalists({"final": {"recheck": 2, "recheck_bisect": False}}, searched(0.5, 0.4, 0.3),
                             tmp_path).best is None
    assert len(calls) == 2


def test_no_policy_surviving_the_recheck_means_no_feasible_policy(monkeypatch, tmp_path):
    calls = fake_rechecker(monkeypatch, lambda r: False)
    assert recheck_finalists({"final": {"recheck": 1}}, searched(0.5, 0.4, 0.3), tmp_path).best is None
    assert calls == [[0.5], [0.4], [0.3]]  # the best one, then a bisection down the other two


def test_under_noise_the_bisection_stops_at_a_boundary_it_measured():
    from platform.search.finalists import bisect_down

    verdicts = iter([True, False, True])  # not monotone in CR: 0.5 fails between two that pass
    scored = bisect_down([{"ratios": [r]} for r in (0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05)],
                         lambda found: {"ratios": found["ratios"], "feasible": next(verdicts)})
    assert [(s["ratios"][0], s["feasible"]) for s in scored] == [(0.3, True), (0.5, False), (0.4, True)]


def test_the_tracker_points_at_the_runs_table_of_its_experiment(tmp_path):
    from platform.reports.tracking import Tracker, TrackingSettings

    local = Tracker(TrackingSettings(True, "sqlite:////x/mlflow.db", "file:///x/mlruns", "auto-prune"), tmp_path)
    local._experiment_id = "3"
    assert local.where_to_look() == ["MLflow UI: mlflow ui --backend-store-uri sqlite:////x/mlflow.db --port 5000",
                                     "  then open http://127.0.0.1:5000/#/experiments/3/runs"]
    server = Tracker(TrackingSettings(True, "http://mlflow:5000/", "s3://b", "auto-prune"), tmp_path)
    server._experiment_id = "7"
    assert server.where_to_look() == ["MLflow runs: http://mlflow:5000/#/experiments/7/runs"]


def test_progress_lines_project_the_remaining_time_from_the_rate_so_far():
    from envs.workload.training import eta

    assert eta(8, 32, 60.0) == "elapsed 1:00 ETA 3:00"
    assert eta(32, 32, 125.0) == "elapsed 2:05 ETA 0:00"
    assert eta(0, 32, 5.0) == "elapsed 0:05 ETA ?"


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "is not readable JSON"),
    ('{"ratios": [0.5]}', "must hold a list of re-scored records"),
    ('[{"ratios": [0.5], "reward": 0.0}]', "holds a record that is not an episode record"),
    ("[1]", "holds a record that is not an episode record"),
])
def test_a_tampered_finalists_file_is_refused_naming_it(monkeypatch, tmp_path, text, message):
    calls = fake_rechecker(monkeypatch, lambda r: True)
    outcome = searched(0.5, 0.4)
    recheck_finalists({"final": {"recheck": 1}}, outcome, tmp_path)
    saved = next(tmp_path.rglob("finalists.json"))
    saved.write_text(text)
    with pytest.raises(ValueError, match=f"finalists.json {message}.*delete it and resume"):
        recheck_finalists({"final": {"recheck": 1}}, outcome, tmp_path)
    assert len(calls) == 1


def test_a_tampered_final_file_is_refused_naming_it(tmp_path):
    from platform.search.finalists import finalize_trial
    from platform.search.sweep_folders import FINAL, trial_dir

    outcome = searched(0.5)
    saved = trial_dir(tmp_path, outcome.key) / FINAL
    saved.parent.mkdir(parents=True)
    for text in ("[", '{"compression_rate": 2.0}'):
        saved.write_text(text)
        with pytest.raises(ValueError, match="final.json is not .*delete the trial's final.json"):
            finalize_trial({"final": {"enabled": True}}, outcome, tmp_path)


def test_a_finalist_confirmed_on_the_whole_split_is_not_scored_again(monkeypatch, tmp_path):
    calls = fake_rechecker(monkeypatch, lambda r: r < 0.5)
    outcome = searched(0.5, 0.4, 0.3)
    confirmed = {**outcome.finalists[1], "confirmed": True, "stopped_early": False, "accuracy": 0.885}
    outcome = dataclasses.replace(outcome, finalists=[outcome.finalists[0], confirmed, outcome.finalists[2]])
    chosen = recheck_finalists({"final": {"recheck": 3}}, outcome, tmp_path)
    assert calls == [[0.5], [0.3]]
    assert chosen.best == confirmed  # taken as it was scored: no rechecker built for it
