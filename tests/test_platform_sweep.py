"""Fault tolerance and resume of the launcher's sweep (slow: local Ray).

An env runner of the real pruning env that dies is replaced and the search finishes. The
resume test runs on the toy env (tests/toy_env.py, which honours the env and
finalize contracts at a millisecond per episode) so that it measures the platform's
interrupt and restore, not a model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from platform.config import REPO_ROOT
from platform.search.sweep_folders import read_history
from tests.toy_env import FAIL_ONCE_MARKER

pytestmark = pytest.mark.slow

TOY = ["+experiment=quickstart", "search.env.path=tests.toy_env.ToyPruningEnv",
       "final.finalize.path=tests.toy_env.toy_finalize", "ray.num_cpus=2"]


def toy_args(tmp_path: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "platform.launch", *TOY, f"paths.runs_dir={tmp_path / 'runs'}",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"tracking.artifact_location={(tmp_path / 'mlruns').as_uri()}", *overrides]


def run(args: list[str], timeout: int = 400, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def sweep_dir(tmp_path: Path) -> Path:
    (found,) = (tmp_path / "runs" / "quickstart").iterdir()
    return found


def mlflow_runs(tmp_path: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("auto-prune")
    return client.search_runs([experiment.experiment_id])


def test_a_search_survives_an_env_runner_that_dies(tmp_path, baseline_cache):
    """The real pruning env: runner 1 exits at its first reset; RLlib restarts it and the search ends."""
    marker = tmp_path / "runner-died"
    result = run([sys.executable, "-m", "platform.launch", "+experiment=quickstart", "ray.num_cpus=2",
                  "search.env.path=tests.toy_env.FailingOncePruningEnv",
                  "search.constraints=[0.05]", "search.episodes=32", "tracking=off",
                  f"paths.runs_dir={tmp_path / 'runs'}", f"paths.cache_dir={baseline_cache}"],
                 env={**os.environ, FAIL_ONCE_MARKER: str(marker)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert marker.is_file(), "env runner 1 never exited: the fault was not injected"
    assert "[eps_0.05] search finished" in result.stdout
    summary = json.loads((sweep_dir(tmp_path) / "summary.json").read_text())
    assert summary[0]["episodes"] >= 32 and summary[0]["status"] in ("done", "no feasible policy")


def signal_when(args: list[str], trigger: str, signum: int) -> tuple[int, str]:
    """Launch, send `signum` to the driver once a line holds `trigger`; (exit code, output)."""
    launch = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in launch.stdout:
        lines.append(line)
        if trigger in line:
            launch.send_signal(signum)
    launch.wait(timeout=300)
    return launch.returncode, "".join(lines)


def test_an_interrupted_sweep_resumes_without_rerunning_its_finished_trial(tmp_path):
    args = toy_args(tmp_path, "search.max_concurrent_trials=1")
    code, out = signal_when(args, "[eps_0.02] search finished", signal.SIGINT)
    assert code == 130, out[-3000:]
    assert "resume=true" in out
    folder = sweep_dir(tmp_path)
    finished_history = (folder / "trials" / "eps_0.02" / "history.jsonl").read_text()
    finished_policy = (folder / "trials" / "eps_0.02" / "policy.json").read_text()

    second = run(args + ["resume=true"])
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "[eps_0.02] started" not in second.stdout and "[eps_0.02] iter" not in second.stdout
    assert "[eps_0.05] search finished" in second.stdout
    assert (folder / "trials" / "eps_0.02" / "history.jsonl").read_text() == finished_history
    assert (folder / "trials" / "eps_0.02" / "policy.json").read_text() == finished_policy
    summary = json.loads((folder / "summary.json").read_text())
    assert [(row["constraint"], row["status"]) for row in summary] == [(0.02, "done"), (0.05, "done")]
    runs = mlflow_runs(tmp_path)
    names = sorted(r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId"))
    assert names == ["eps_0.02", "eps_0.05"], "a resumed sweep appends to its parent and child runs"


def test_a_sweep_stopped_by_sigterm_mid_trial_resumes_with_every_episode_counted_once(tmp_path):
    """`ray job stop` sends the driver SIGTERM: the sweep stops like Ctrl-C, and resume=true finishes it."""
    args = toy_args(tmp_path, "search.max_concurrent_trials=1", "search.constraints=[0.02]")
    code, out = signal_when(args, "[eps_0.02] iter   3", signal.SIGTERM)
    assert code == 130 and "resume=true" in out, out[-3000:]
    assert "[eps_0.02] search finished" not in out

    second = run(args + ["resume=true"])
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    history = read_history(sweep_dir(tmp_path), "eps_0.02")
    episodes = [record for line in history for record in line["records"]]
    assert len(episodes) == 64 == history[-1]["episodes"]  # each iteration once, none lost


def test_resuming_a_sweep_whose_config_keys_changed_says_what_to_do(tmp_path, monkeypatch):
    from ray import tune

    from platform.search.sweep import ResumeError, restore_tuner

    def refuse(*args, **kwargs):
        raise ValueError("Invalid `param_space` input to `Tuner.restore()`.")

    monkeypatch.setattr(tune.Tuner, "can_restore", staticmethod(lambda path: True))
    monkeypatch.setattr(tune.Tuner, "restore", staticmethod(refuse))
    plan = SimpleNamespace(trainable="PPO", space={"env_config": {}})
    with pytest.raises(ResumeError, match="started with other config keys.*without resume=true"):
        restore_tuner(plan, tmp_path, [0.01])
