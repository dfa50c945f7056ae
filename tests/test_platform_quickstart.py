"""End to end: ``python -m platform.launch +experiment=quickstart`` on a local Ray (slow).

Real data (scikit-learn digits), a real small CNN baseline, the real pruning env on 2 env
runners, 2 constraints, finalize, MLflow. Checks what a user reads afterwards: the parent
and child runs with their params, metrics, tags and artifacts, and a layout that loads
back and reproduces the reported crossbar count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from platform.config import REPO_ROOT

pytestmark = pytest.mark.slow
CHILD_ARTIFACTS = {"policy.json", "config.yaml", "history.jsonl", "final.json", "layout_report.json", "search.png",
                   "layers.png", "layout", "model"}
PARENT_ARTIFACTS = {"config.yaml", "pareto.png", "summary.txt", "summary.json"}
METRICS = {"reward_mean", "reward_max", "best_cr", "best_accuracy", "feasible_fraction", "episodes", "wall_time_s"}
TAGS = {"model", "data", "hw", "granularity", "agent", "git_commit"}


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory, baseline_cache):
    root = tmp_path_factory.mktemp("quickstart")
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "platform.launch", "+experiment=quickstart", "ray.num_cpus=2",
         f"paths.runs_dir={root / 'runs'}", f"paths.cache_dir={baseline_cache}",
         f"tracking.uri=sqlite:///{root / 'mlflow.db'}", f"tracking.artifact_location={(root / 'mlruns').as_uri()}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    seconds = time.time() - started
    print(f"quickstart took {seconds:.0f} s")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("auto-prune").experiment_id])
    return {"root": root, "stdout": result.stdout, "seconds": seconds, "client": client, "runs": runs}


def children(q) -> list:
    return sorted((r for r in q["runs"] if r.data.tags.get("mlflow.parentRunId")), key=lambda r: r.info.run_name)


def parent(q):
    (run,) = [r for r in q["runs"] if not r.data.tags.get("mlflow.parentRunId")]
    return run


def test_quickstart_prints_progress_and_a_summary_row_per_constraint(quickstart):
    out = quickstart["stdout"]
    assert "[eps_0.02] iter" in out and "[eps_0.05] search finished" in out
    table = out[out.index("   ε  accuracy"):].splitlines()
    assert [line.split()[0] for line in table[2:4]] == ["0.02", "0.05"]


def test_mlflow_holds_one_parent_and_one_child_per_constraint(quickstart):
    assert [r.info.run_name for r in children(quickstart)] == ["eps_0.02", "eps_0.05"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children(quickstart)} == {parent(quickstart).info.run_id}
    assert all(r.info.status == "FINISHED" for r in quickstart["runs"])


def test_runs_carry_params_tags_and_per_iteration_metrics(quickstart):
    client = quickstart["client"]
    for run in children(quickstart):
        assert TAGS <= set(run.data.tags) and run.data.tags["model"] == "small_cnn"
        assert run.data.params["agent.name"] == "ppo" and "epsilon" in run.data.params
        assert 20 <= len(run.data.params) <= 100
        assert METRICS <= set(run.data.metrics)
        history = client.get_metric_history(run.info.run_id, "episodes")
        assert len(history) >= 2 and history[-1].value >= 64


def test_every_artifact_is_logged(quickstart):
    client = quickstart["client"]
    for run in children(quickstart):
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert CHILD_ARTIFACTS <= names, CHILD_ARTIFACTS - names
        assert {a.path for a in client.list_artifacts(run.info.run_id, "layout")} >= {"layout/manifest.json"}
    assert PARENT_ARTIFACTS <= {a.path for a in client.list_artifacts(parent(quickstart).info.run_id)}


def test_the_logged_layout_loads_back_and_reproduces_the_reported_crossbars(quickstart, tmp_path):
    from mapping.layout import load_layout

    client = quickstart["client"]
    for run in children(quickstart):
        policy = json.loads(Path(client.download_artifacts(run.info.run_id, "policy.json", str(tmp_path))).read_text())
        layout_dir = client.download_artifacts(run.info.run_id, "layout", str(tmp_path / run.info.run_name))
        layout = load_layout(layout_dir)
        assert layout.crossbars == policy["crossbars"]
        assert layout.dense_crossbars == policy["dense_crossbars"]
        assert len(policy["ratios"]) == len(layout.layers) == 4


def test_each_trial_leaves_a_model_that_loads_in_one_call_and_scores_the_reported_test_accuracy(quickstart):
    from envs.model_artifact import load_pruned_model
    from envs.workload.data import load_dataset
    from envs.workload.evaluation import evaluate_split

    (sweep,) = (quickstart["root"] / "runs" / "quickstart").iterdir()
    test = load_dataset("digits").test
    for key in ("eps_0.02", "eps_0.05"):
        folder = sweep / "trials" / key
        final = json.loads((folder / "final.json").read_text())
        loaded = load_pruned_model(folder)
        assert evaluate_split(loaded.model, test).accuracy == final["test_accuracy"]
        assert loaded.layout.crossbars == final["crossbars"] and (folder / "model" / "model.onnx").is_file()


def test_mlflow_lists_each_pruned_model_and_loads_it(quickstart):
    import mlflow.pytorch
    import torch

    mlflow.set_tracking_uri(f"sqlite:///{quickstart['root'] / 'mlflow.db'}")
    images = torch.zeros(3, 1, 8, 8)
    for run in children(quickstart):
        model = mlflow.pytorch.load_model(f"runs:/{run.info.run_id}/pruned_model")
        assert model(images).shape == (3, 10)


def test_the_looser_constraints_finalists_include_the_stricter_trials_episodes(quickstart):
    """search.share_episodes: every policy within 2% on the search prefix is within 5%, so eps_0.05's
    first finalist compresses at least as much as eps_0.02's; each says which trial found it."""
    (sweep,) = (quickstart["root"] / "runs" / "quickstart").iterdir()
    finalists = {key: json.loads((sweep / "trials" / key / "finalists.json").read_text())
                 for key in ("eps_0.02", "eps_0.05")}
    assert {f["found_by"] for rechecked in finalists.values() for f in rechecked} <= {"eps_0.02", "eps_0.05"}
    assert finalists["eps_0.05"][0]["compression_rate"] >= finalists["eps_0.02"][0]["compression_rate"]
    policy = json.loads((sweep / "trials" / "eps_0.05" / "policy.json").read_text())
    assert policy["search"]["found_by"] in ("eps_0.02", "eps_0.05")
