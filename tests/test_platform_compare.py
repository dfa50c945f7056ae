"""End to end: ``python -m platform.compare +experiment=quickstart`` with every method (slow).

One seed, one constraint, 16 episodes each on the real quickstart harness (digits, small
CNN, 2 env runners for the RL methods). Checks what the issue asks of each baseline: it
runs, its best policy meets the constraint on the search split, it logs its MLflow run,
and it evaluated the number of episodes the config gives it (the budgeted searches all of
them; the converging heuristics no more, with every evaluated episode accounted for).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from platform.config import METHODS, REPO_ROOT
from platform.search.sweep_folders import read_history

pytestmark = pytest.mark.slow
EPSILON, EPISODES = 0.02, 16
CONVERGING = ("uniform", "sre_uniform", "pim_prune")


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, baseline_cache):
    root = tmp_path_factory.mktemp("compare")
    result = subprocess.run(
        [sys.executable, "-m", "platform.compare", "+experiment=quickstart", "ray.num_cpus=2", "compare.seeds=[0]",
         f"compare.constraints=[{EPSILON}]", f"search.episodes={EPISODES}", "final.enabled=false",
         "compare.name=cmp", f"paths.runs_dir={root / 'runs'}", f"paths.cache_dir={baseline_cache}",
         f"tracking.uri=sqlite:///{root / 'mlflow.db'}", f"tracking.artifact_location={(root / 'mlruns').as_uri()}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    (out_dir,) = (root / "runs" / "compare" / "cmp").iterdir()
    runs = {r["method"]: r for r in json.loads((out_dir / "runs.json").read_text())}
    return {"root": root, "out": out_dir, "runs": runs, "stdout": result.stdout}


def test_every_method_ran_and_its_best_policy_meets_the_constraint_on_the_search_split(comparison):
    runs = comparison["runs"]
    assert set(runs) == set(METHODS)
    for method, run in runs.items():
        assert run["status"] == "searched", (method, run)
        assert run["search_delta_acc"] <= EPSILON + 1e-9, (method, run)
        assert run["compression_rate"] >= 1.0, (method, run)


def test_each_method_evaluated_the_episodes_its_budget_allows_and_no_more(comparison):
    for method, run in comparison["runs"].items():
        (sweep,) = (comparison["root"] / "runs" / f"cmp-{method}-s0").iterdir()
        history = read_history(sweep, f"eps_{EPSILON:g}")
        evaluated = sum(len(line.get("records", [])) for line in history)
        assert evaluated == run["episodes"], method
        if method in CONVERGING:
            assert 1 <= run["episodes"] <= EPISODES, method
        else:
            assert run["episodes"] == EPISODES, method


def test_the_table_and_figures_are_written_and_logged(comparison):
    out = comparison["out"]
    table = (out / "table.md").read_text().splitlines()
    assert len(table) == 2 + len(METHODS) and "CR vs PIM-Prune" in table[0]
    assert "| pim_prune | crossbar_row |" in (out / "table.md").read_text()
    for figure in ("cr_vs_delta_acc.png", "learning_curves.png"):
        assert (out / figure).stat().st_size > 10_000
    assert "CR vs PIM-Prune" in comparison["stdout"]
    at_budgets = (out / "learning_curves.md").read_text()
    searches = [m for m in METHODS if m not in CONVERGING]
    assert f"| @{EPISODES} |" in at_budgets.splitlines()[0] and "@64" not in at_budgets  # 64: past the budget
    assert all(f"| {EPSILON:g} | {m} | 1 |" in at_budgets for m in searches), at_budgets
    assert "read at a few budgets" in comparison["stdout"]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{comparison['root'] / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("auto-prune").experiment_id
    runs = client.search_runs([experiment])
    parents = [r for r in runs if not r.data.tags.get("mlflow.parentRunId")]
    logged = {r.data.tags.get("method") for r in parents if r.data.tags.get("kind") != "compare"}
    assert logged == set(METHODS)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert {r.data.tags.get("method") for r in children} == set(METHODS)  # one child per constraint each
    (summary_run,) = [r for r in parents if r.data.tags.get("kind") == "compare"]
    artifacts = {Path(a.path).name for a in client.list_artifacts(summary_run.info.run_id)}
    assert {"table.md", "learning_curves.md", "cr_vs_delta_acc.png", "learning_curves.png", "runs.json"} <= artifacts
    assert summary_run.data.metrics["pim_prune_eps_0.02_cr_vs_reference"] == pytest.approx(1.0)
